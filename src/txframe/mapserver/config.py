"""serve-map's configuration: the command line and a TOML file, checked as a whole and
turned into a :class:`Config`.

A bad command line or file raises :class:`UsageError` (exit status 2); its message is
one line that says what is wrong. Nothing here opens a socket or reads a map.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from typing import Any, NamedTuple, NoReturn

from ..mapfile import map_name
from ..mapproto import SOCKETMAP_QUERY_LIMIT
from .keys import RULES
from .privileges import PrivilegeError, SocketAccess, lookup, socket_access

#: A unix socket path must fit ``sockaddr_un.sun_path`` with its NUL (Linux: 108).
UNIX_PATH_LIMIT = 107


class UsageError(Exception):
    """A bad command line or configuration: the message says what is wrong (status 2)."""


class ServeError(Exception):
    """serve-map cannot run as configured (a port in use, ...): one line (status 1)."""


# -- addresses and map specs -----------------------------------------------------------


def parse_address(text: str, option: str = "") -> tuple[str | None, int]:
    """``HOST:PORT``, ``[IPV6]:PORT``, or ``:PORT`` / ``*:PORT`` for every address."""
    where = f"{option} {text}: " if option else f"{text}: "
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text:
        raise UsageError(f"{where}expected HOST:PORT")
    if not port_text.isdigit():
        raise UsageError(f"{where}expected HOST:PORT, with a port number after the colon")
    if int(port_text) > 65535:
        raise UsageError(f"{where}port {int(port_text)} out of range (0-65535)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"{where}write an IPv6 address in brackets: [{host}]:{port_text}")
    return (host if host not in ("", "*") else None), int(port_text)


def format_address(host: str | None, port: int) -> str:
    if host is None:
        return f"*:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_SCHEME = re.compile(r"^(?:([^=/]+)=)?([A-Za-z][A-Za-z0-9+.-]*)://")


class MapSpec(NamedTuple):
    """A served map as configured: ``PATH`` (a postmap text file, named after its file
    name without extension) or ``[NAME=]SCHEME://...`` (a source registered for
    SCHEME; see :mod:`txframe.mapserver.sources`)."""

    name: str
    scheme: str  # "file" for a path
    target: str  # the absolute path, or the whole ``SCHEME://...``

    @classmethod
    def parse(cls, text: str) -> "MapSpec":
        match = _SCHEME.match(text)
        if match is None:
            path = os.path.abspath(text)
            return cls(map_name(path), "file", path)
        name, scheme = match.group(1), match.group(2).lower()
        target = text[match.end(1) + 1 :] if name else text
        return cls(name or "", scheme, target)


# -- the configuration --------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    """What a serving process needs (JSON-able: workers receive it)."""

    maps: list[str]  # specs: absolute paths, or [NAME=]SCHEME://...
    tcp: list[list[Any]]  # [map name, host, port]
    socketmap: list[list[Any]]  # [host, port]
    unix: list[str]
    unix_mode: int | None = None
    workers: int = 1
    key_folding: str = "utf8"  # one of keys.RULES
    lenient: bool = False
    poll_interval: float = 1.0
    max_query: int = SOCKETMAP_QUERY_LIMIT
    idle_timeout: float = 0.0
    metrics: list[Any] | None = None  # [host, port]
    ready_file: str | None = None
    loop: str = "auto"
    log_level: str = "info"
    shutdown_timeout: float = 5.0
    # running as a service (issue 17's service part: privileges.py, systemd.py, logs.py)
    user: str | None = None
    group: str | None = None
    unix_group: str | None = None
    timestamps: bool | None = None  # None: unless under journald
    inherited: list[list[Any]] = dataclasses.field(default_factory=list)  # [name, fd]

    def specs(self) -> list[MapSpec]:
        return [MapSpec.parse(spec) for spec in self.maps]

    def names(self) -> list[str]:
        return [spec.name for spec in self.specs()]

    def wants_socketmap(self) -> bool:
        return bool(self.socketmap or self.unix) or any(
            name == "socketmap" for name, _ in self.inherited
        )

    def tcp_names(self) -> set[str]:
        return {name for name, _, _ in self.tcp} | {
            name[4:] for name, _ in self.inherited if name.startswith("tcp=")
        }

    def unix_access(self) -> SocketAccess:
        """Owner and mode for the ``--unix`` sockets (``--unix-group``, ``--unix-mode``)."""
        return socket_access(self.unix_group, self.unix_mode, lookup(self.user, self.group))


# -- option types: each says what it wanted ---------------------------------------------


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an octal mode such as 0660, got {text!r}")
    if not 0 <= mode <= 0o7777:
        raise argparse.ArgumentTypeError(f"mode out of range: {text!r}")
    return mode


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds (0 or more), got {text!r}")
    return value


# -- the parser --------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and a :class:`UsageError`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser(prog: str = "txframe serve-map") -> Parser:
    """The options of ``txframe serve-map``."""
    from .. import __version__

    parser = Parser(
        prog=prog,
        description="Serve Postfix lookup tables (MAPFILEs in postmap(1)'s text format) "
        "over tcp_table(5) and socketmap_table(5).",
        epilog="Maps are reloaded on SIGHUP and when their files change; SIGTERM stops "
        "the server gracefully. Exit status: 0 stopped, 1 could not run, 2 bad usage.",
    )
    add_arguments(parser)
    parser.add_argument("--version", action="version", version=f"txframe {__version__}")
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``txframe serve-map``, added to *parser*."""
    parser.add_argument(
        "maps", nargs="*", metavar="MAPFILE",
        help="a map in postmap(1)'s text format (key whitespace value), served under "
        "its file name without extension; or [NAME=]SCHEME://... for a map from "
        "another source",
    )
    parser.add_argument(
        "--config", metavar="FILE",
        help="read settings from a TOML file: the long options' names as keys (maps = "
        "[...], tcp = [...], workers = 2, key_folding = 'utf8', ...); the command line "
        "wins, and listeners from both add up",
    )
    parser.add_argument(
        "--tcp", action="append", default=[], metavar="[NAME=]HOST:PORT",
        help="serve map NAME (default: the first MAPFILE) over tcp_table(5); "
        "query with postmap -q KEY tcp:HOST:PORT",
    )
    parser.add_argument(
        "--socketmap", action="append", default=[], metavar="HOST:PORT",
        help="serve every map over socketmap_table(5); query with "
        "postmap -q KEY socketmap:inet:HOST:PORT:NAME",
    )
    parser.add_argument(
        "--unix", action="append", default=[], metavar="PATH",
        help="serve every map over socketmap on a unix socket; query with "
        "postmap -q KEY socketmap:unix:PATH:NAME",
    )
    parser.add_argument(
        "--unix-mode", type=_mode, metavar="MODE",
        help="permissions of the --unix sockets, in octal (e.g. 0660; default: 0660 with "
        "--unix-group, else from umask)",
    )
    parser.add_argument(
        "--unix-group", metavar="GROUP",
        help="give the --unix sockets to GROUP (e.g. postfix: Postfix looks up as the "
        "postfix user), mode 0660 unless --unix-mode says otherwise",
    )
    parser.add_argument(
        "--user", metavar="USER",
        help="once the sockets are bound, run as USER (a name or uid; started as root "
        "to bind ports below 1024 or in Postfix's chroot)",
    )
    parser.add_argument(
        "--group", metavar="GROUP",
        help="with --user: run as GROUP (default: USER's login group); supplementary "
        "groups are USER's",
    )
    parser.add_argument(
        "--no-timestamps", dest="timestamps", action="store_const", const=False,
        default=None,
        help="log lines without a timestamp (for a supervisor that adds its own; under "
        "journald, the default)",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=1, metavar="N",
        help="serve from N processes sharing the ports (SO_REUSEPORT), under a "
        "supervising process (default 1: a single process)",
    )
    parser.add_argument(
        "--key-folding", choices=RULES, default="utf8",
        help="how keys are folded when a map is loaded and when a key is looked up, as "
        "Postfix folds the keys of its file tables: utf8 (the default: Unicode case "
        "folding, as with smtputf8_enable = yes), ascii (as with smtputf8_enable = no) "
        "or none (keys are case-sensitive)",
    )
    parser.add_argument(
        "--keep-case", dest="key_folding", action="store_const", const="none",
        help="keys are case-sensitive, as postmap -f (--key-folding none)",
    )
    parser.add_argument(
        "--fold-case", dest="key_folding", action="store_const", const="utf8",
        help="fold keys: the default now (--key-folding utf8); kept for old command lines",
    )
    parser.add_argument(
        "--lenient", action="store_true",
        help="as postmap does, skip (and log) map lines without a value and duplicate "
        "keys; by default they make a map invalid: an error at start, a failed reload",
    )
    parser.add_argument(
        "--poll-interval", type=seconds, default=1.0, metavar="SECONDS",
        help="how often to check map files for changes (default 1; 0: only on SIGHUP)",
    )
    parser.add_argument(
        "--max-query", type=positive_int, default=SOCKETMAP_QUERY_LIMIT, metavar="BYTES",
        help="longest socketmap request (name, space and key; default %(default)s); "
        "tcp_table request lines may be 3 x BYTES + 4 long (a key "
        "%%XX-encoded). A longer request is answered with an error and the "
        "connection closed",
    )
    parser.add_argument(
        "--idle-timeout", type=seconds, default=0.0, metavar="SECONDS",
        help="close connections that complete no request for this long (default 0: "
        "never, as Postfix expects)",
    )
    parser.add_argument(
        "--metrics", metavar="HOST:PORT",
        help="serve counters in Prometheus' text format at http://HOST:PORT/metrics "
        "(and /health)",
    )
    parser.add_argument(
        "--ready-file", metavar="PATH",
        help="once listening, write the addresses (actual ports, for port 0) and pids "
        "here as JSON",
    )
    parser.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
        help="event loop (default: uvloop when installed, else asyncio's)",
    )
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info",
        help="logging threshold, to stderr (default info; debug names each client)",
    )
    parser.add_argument(
        "--shutdown-timeout", type=seconds, default=5.0, metavar="SECONDS",
        help="on SIGTERM, how long to let connections finish sending (default 5)",
    )


# -- the TOML file ------------------------------------------------------------------------


def _read_toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
    try:
        with open(path, "rb") as handle:
            settings: dict[str, Any] = tomllib.load(handle)
            return settings
    except OSError as error:
        raise UsageError(f"--config {path}: {error.strerror}")
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"--config {path}: {error}")


def apply_file(parser: argparse.ArgumentParser, path: str) -> None:
    """Make the settings of the TOML file at *path* the defaults of *parser*'s
    options, converted and checked as the command line's are."""
    options = parser._option_string_actions
    positionals = {a.dest: a for a in parser._actions if not a.option_strings}
    defaults: dict[str, Any] = {}
    for key, value in _read_toml(path).items():
        dest = key.replace("-", "_")
        action = options.get("--" + key.replace("_", "-")) or positionals.get(dest)
        if action is not None and action.dest in ("help", "version", "config"):
            action = None
        where = f"--config {path}: {key}"
        if action is None:
            raise UsageError(f"{where}: no such setting")
        if action.nargs == "*" or isinstance(action, argparse._AppendAction):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"{where}: expected a list of strings")
            defaults[action.dest] = [_convert(action, v, where) for v in value]
        elif action.nargs == 0 and action.const is not None and action.const is not True:
            raise UsageError(f"{where}: not a setting (use {action.dest} = ...)")
        elif action.nargs == 0:
            if not isinstance(value, bool):
                raise UsageError(f"{where}: expected true or false")
            defaults[action.dest] = value
        else:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise UsageError(f"{where}: expected a string or a number")
            defaults[action.dest] = _convert(action, str(value), where)
    parser.set_defaults(**defaults)


def _convert(action: argparse.Action, text: str, where: str) -> Any:
    try:
        value = action.type(text) if callable(action.type) else text
    except (argparse.ArgumentTypeError, ValueError) as error:
        raise UsageError(f"{where}: {error}")
    if action.choices is not None and value not in action.choices:
        raise UsageError(f"{where}: expected one of {', '.join(map(str, action.choices))}")
    return value


def parse_args(argv: list[str], prog: str = "txframe serve-map") -> argparse.Namespace:
    """Parse serve-map's command line (and the file it names with ``--config``)."""
    parser = build_parser(prog)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        apply_file(parser, known.config)
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    """Check the command line as a whole and turn it into a :class:`Config`."""
    if not args.maps:
        raise UsageError("no map to serve: give at least one MAPFILE")
    specs = [MapSpec.parse(text) for text in args.maps]
    seen: dict[str, str] = {}
    for spec in specs:
        if not spec.name and spec.scheme != "file":
            raise UsageError(f"{spec.target}: name the map: NAME={spec.target}")
        if not spec.name:
            raise UsageError(f"cannot name a map after {spec.target!r}")
        if spec.name in seen:
            raise UsageError(f"two maps named {spec.name!r}: {seen[spec.name]} and {spec.target}")
        seen[spec.name] = spec.target
    names = [spec.name for spec in specs]
    inherited = [list(entry) for entry in getattr(args, "inherited", [])]  # [name, fd]
    if not (args.tcp or args.socketmap or args.unix or inherited):
        raise UsageError("nothing to serve on: give --tcp, --socketmap or --unix")
    for name, _ in inherited:
        role, eq, target = name.partition("=")
        if role == "socketmap" and not eq or role == "tcp" and (not eq or target in seen):
            continue
        raise UsageError(
            f"socket activation: a socket named {name!r}: name each FileDescriptorName="
            f"socketmap or tcp=MAP (maps: {', '.join(names)})"
        )
    if inherited and args.workers > 1:
        raise UsageError("socket activation serves from one process: drop --workers")
    tcp = []
    for text in args.tcp:
        name, eq, address = text.rpartition("=")
        if not eq:
            name = names[0]
        elif name not in seen:
            raise UsageError(f"--tcp {text}: no map named {name!r} (maps: {', '.join(names)})")
        tcp.append([name, *parse_address(address, "--tcp")])
    socketmap = [list(parse_address(text, "--socketmap")) for text in args.socketmap]
    unix = [os.path.abspath(path) for path in args.unix]
    for path in unix:
        size = len(os.fsencode(path))
        if size > UNIX_PATH_LIMIT:
            raise UsageError(
                f"--unix {path}: the path is {size} bytes, over the {UNIX_PATH_LIMIT} "
                "a unix socket's address holds"
            )
    if args.unix_mode is not None and not unix:
        raise UsageError("--unix-mode without --unix")
    if args.unix_group is not None and not unix:
        raise UsageError("--unix-group without --unix")
    try:  # a user or group that does not exist is a usage error, found now
        socket_access(args.unix_group, args.unix_mode, lookup(args.user, args.group))
    except PrivilegeError as error:
        raise UsageError(str(error)) from None
    metrics = list(parse_address(args.metrics, "--metrics")) if args.metrics else None
    return Config(
        maps=[spec.target if spec.scheme == "file" else text
              for spec, text in zip(specs, args.maps)],
        tcp=tcp,
        socketmap=socketmap,
        unix=unix,
        unix_mode=args.unix_mode,
        workers=args.workers,
        key_folding=args.key_folding,
        lenient=args.lenient,
        poll_interval=args.poll_interval,
        max_query=args.max_query,
        idle_timeout=args.idle_timeout,
        metrics=metrics,
        ready_file=os.path.abspath(args.ready_file) if args.ready_file else None,
        loop=args.loop,
        log_level=args.log_level,
        shutdown_timeout=args.shutdown_timeout,
        user=args.user,
        group=args.group,
        unix_group=args.unix_group,
        timestamps=args.timestamps,
        inherited=inherited,
    )
