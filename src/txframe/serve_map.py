"""``txframe serve-map``: serve Postfix lookup tables over tcp_table and socketmap.

::

    txframe serve-map [--tcp [NAME=]HOST:PORT]... [--socketmap HOST:PORT]...
                      [--unix PATH]... [--workers N] MAPFILE...

Each MAPFILE, in the text format postmap(1) reads, is served under its file name
without extension. A ``--tcp`` listener speaks tcp_table(5) for one map (NAME, or the
first map); ``--socketmap`` and ``--unix`` listeners speak socketmap_table(5), whose
requests name the map. Maps are reloaded on SIGHUP and when a file changes; a reload
that fails keeps the map served and says why. SIGTERM or SIGINT stops the server
gracefully. The program runs on asyncio (uvloop when installed), over txframe's
framers and :mod:`txframe.mapproto`'s rules (see :mod:`txframe._mapserver`).

With ``--workers N`` (N > 1) a supervising process starts N worker processes. Each
worker listens on the TCP ports itself, with ``SO_REUSEPORT``, so the kernel spreads
connections among them; unix sockets are made by the supervisor and shared. The
supervisor restarts a worker that dies, forwards SIGHUP, stops them all on SIGTERM and
serves the metrics endpoint, asking each worker for its counters.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import socket
import stat
import sys
import time
from typing import Any, Callable

from .framing import LineFramer, implementation
from .mapfile import MapFileError, map_name, open_map, parse_map
from .mapproto import SOCKETMAP_QUERY_LIMIT
from ._mapserver import (
    Built,
    MapServer,
    MetricsProtocol,
    Table,
    render_metrics,
)

log = logging.getLogger("txframe.serve_map")

WORKER_ENV = "TXFRAME_SERVE_MAP_WORKER"
# The worker entry point; a worker gets its configuration in WORKER_ENV.
_WORKER_CODE = "import sys; from txframe.serve_map import worker_main; sys.exit(worker_main())"
_BACKLOG = max(socket.SOMAXCONN, 1024)
_STARTUP_TIMEOUT = 120.0  # for a worker to load its maps and listen


class UsageError(Exception):
    """A bad command line or configuration: the message says what is wrong."""


# -- configuration ------------------------------------------------------------------


def parse_address(text: str) -> tuple[str | None, int]:
    """``HOST:PORT``, ``[IPV6]:PORT``, or ``:PORT`` / ``*:PORT`` for every address."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"write an IPv6 address in brackets: [{host}]:{port_text}")
    return (host if host not in ("", "*") else None), int(port_text)


def format_address(host: str | None, port: int) -> str:
    if host is None:
        return f"*:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclasses.dataclass
class Config:
    """What a serving process needs (JSON-able: workers receive it)."""

    maps: list[str]  # paths, in command-line order
    tcp: list[list[Any]]  # [map name, host, port]
    socketmap: list[list[Any]]  # [host, port]
    unix: list[str]
    unix_mode: int | None = None
    workers: int = 1
    fold_case: bool = False
    lenient: bool = False
    poll_interval: float = 1.0
    max_query: int = SOCKETMAP_QUERY_LIMIT
    idle_timeout: float = 0.0
    metrics: list[Any] | None = None  # [host, port]
    ready_file: str | None = None
    loop: str = "auto"
    log_level: str = "info"
    shutdown_timeout: float = 5.0

    def names(self) -> list[str]:
        return [map_name(path) for path in self.maps]

    def wants_socketmap(self) -> bool:
        return bool(self.socketmap or self.unix)

    def tcp_names(self) -> set[str]:
        return {name for name, _, _ in self.tcp}


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an octal mode such as 0660, got {text!r}")
    if not 0 <= mode <= 0o7777:
        raise argparse.ArgumentTypeError(f"mode out of range: {text!r}")
    return mode


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds (0 or more), got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``txframe serve-map``."""
    parser.add_argument(
        "maps", nargs="+", metavar="MAPFILE",
        help="a map in postmap(1)'s text format (key whitespace value), served under "
        "its file name without extension",
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
        help="permissions of the --unix sockets, in octal (e.g. 0660; default: from umask)",
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=1, metavar="N",
        help="serve from N processes sharing the ports (SO_REUSEPORT), under a "
        "supervising process (default 1: a single process)",
    )
    parser.add_argument(
        "--fold-case", action="store_true",
        help="ASCII-lowercase keys when loading and when looking up (Postfix sends "
        "tcp and socketmap keys as given)",
    )
    parser.add_argument(
        "--lenient", action="store_true",
        help="as postmap does, skip (and log) map lines without a value and duplicate "
        "keys; by default they make a map invalid: an error at start, a failed reload",
    )
    parser.add_argument(
        "--poll-interval", type=_seconds, default=1.0, metavar="SECONDS",
        help="how often to check map files for changes (default 1; 0: only on SIGHUP)",
    )
    parser.add_argument(
        "--max-query", type=_positive_int, default=SOCKETMAP_QUERY_LIMIT, metavar="BYTES",
        help="longest socketmap request (name, space and key; default %(default)s); "
        "tcp_table request lines may be 3 x BYTES + 4 long (a key "
        "%%XX-encoded). A longer request is answered with an error and the "
        "connection closed",
    )
    parser.add_argument(
        "--idle-timeout", type=_seconds, default=0.0, metavar="SECONDS",
        help="close connections that complete no request for this long (default 0: "
        "never, as Postfix expects)",
    )
    parser.add_argument(
        "--metrics", metavar="HOST:PORT",
        help="serve counters in Prometheus' text format at http://HOST:PORT/metrics",
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
        help="logging threshold, to stderr (default info)",
    )
    parser.add_argument(
        "--shutdown-timeout", type=_seconds, default=5.0, metavar="SECONDS",
        help="on SIGTERM, how long to let connections finish sending (default 5)",
    )


def make_config(args: argparse.Namespace) -> Config:
    """Check the command line as a whole and turn it into a :class:`Config`."""
    maps = [os.path.abspath(path) for path in args.maps]
    names = [map_name(path) for path in maps]
    seen: dict[str, str] = {}
    for path, name in zip(maps, names):
        if not name:
            raise UsageError(f"cannot name a map after {path!r}")
        if name in seen:
            raise UsageError(f"two maps named {name!r}: {seen[name]} and {path}")
        seen[name] = path
    if not (args.tcp or args.socketmap or args.unix):
        raise UsageError("nothing to serve on: give --tcp, --socketmap or --unix")
    tcp = []
    for spec in args.tcp:
        name, eq, address = spec.rpartition("=")
        if not eq:
            name = names[0]
        elif name not in seen:
            raise UsageError(f"--tcp {spec}: no map named {name!r} (maps: {', '.join(names)})")
        tcp.append([name, *parse_address(address)])
    socketmap = [list(parse_address(spec)) for spec in args.socketmap]
    for name in names:
        if " " in name and (socketmap or args.unix):
            log.warning("map %r has a space in its name: socketmap cannot ask for it", name)
    unix = [os.path.abspath(path) for path in args.unix]
    if args.unix_mode is not None and not unix:
        raise UsageError("--unix-mode without --unix")
    metrics = list(parse_address(args.metrics)) if args.metrics else None
    return Config(
        maps=maps,
        tcp=tcp,
        socketmap=socketmap,
        unix=unix,
        unix_mode=args.unix_mode,
        workers=args.workers,
        fold_case=args.fold_case,
        lenient=args.lenient,
        poll_interval=args.poll_interval,
        max_query=args.max_query,
        idle_timeout=args.idle_timeout,
        metrics=metrics,
        ready_file=os.path.abspath(args.ready_file) if args.ready_file else None,
        loop=args.loop,
        log_level=args.log_level,
        shutdown_timeout=args.shutdown_timeout,
    )


def setup_logging(level: str, worker: int | None = None) -> None:
    who = "txframe serve-map" if worker is None else f"txframe serve-map worker {worker}"
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format=f"%(asctime)s {who}[%(process)d] %(levelname)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard one: a map server holds a
    connection per Postfix process. Returns the soft limit in force."""
    try:
        import resource
    except ImportError:  # not on a Unix
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError) as error:
            log.warning("cannot raise the open file limit to %d: %s", want, error)
    return soft


# -- maps ---------------------------------------------------------------------------


class FileChanging(Exception):
    """The map file changed while it was read: read it again later."""


def file_signature(path: str) -> Any:
    """What tells a changed file: device, inode, size and mtime; None if missing."""
    try:
        return stat_signature(os.stat(path))
    except OSError:
        return None


def stat_signature(st: os.stat_result) -> Any:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def build_map(path: str, config: Config, tcp: bool) -> Built:
    """Load the map file at *path* and format its replies (runs in a thread at reload).

    The version read is the one opened: a file replaced (renamed over) meanwhile is
    read whole and the next poll picks up the new one. Only a file written in place
    while it is read is refused.

    :raises MapFileError: unreadable, or (unless ``config.lenient``) with bad lines.
    :raises FileChanging: if the file changed while it was read.
    """
    with open_map(path) as handle:
        before = stat_signature(os.fstat(handle.fileno()))
        loaded = parse_map(handle, config.fold_case)
        if stat_signature(os.fstat(handle.fileno())) != before:
            raise FileChanging(path)
    problems = [f"{path}, line {p.line}: {p.message}" for p in loaded.problems]
    if problems and not config.lenient:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise MapFileError(f"{shown}{more} (--lenient skips such lines)")
    built = Built(loaded.entries, before, tcp, config.wants_socketmap())
    built.problems = problems
    return built


def report_built(table: Table, built: Built) -> None:
    for problem in built.problems[:20]:
        log.warning("skipped: %s", problem)
    if len(built.problems) > 20:
        log.warning("skipped %d more lines of %s", len(built.problems) - 20, table.path)
    if built.too_long:
        keys = ", ".join(repr(key)[2:-1] for key in built.too_long[:5])
        log.warning(
            "map %s: %d value(s) too long for a reply, answered with an error instead "
            "(keys: %s%s)", table.name, len(built.too_long), keys,
            ", ..." if len(built.too_long) > 5 else "",
        )


def load_tables(config: Config) -> list[Table]:
    """Every map of *config*, loaded. :raises MapFileError: for the first bad one."""
    tcp_names = config.tcp_names()
    tables = []
    for path, name in zip(config.maps, config.names()):
        table = Table(name, path)
        built = build_map_retrying(path, config, name in tcp_names)
        table.install(built)
        report_built(table, built)
        tables.append(table)
    return tables


def build_map_retrying(path: str, config: Config, tcp: bool) -> Built:
    for _ in range(20):
        try:
            return build_map(path, config, tcp)
        except FileChanging:
            time.sleep(0.1)
    raise MapFileError(f"map file {path!r} keeps changing while it is read")


class Reloader:
    """Reload maps whose files changed (checked every ``poll_interval``) or all of them
    (SIGHUP). Files are read in a thread; each new map is installed in one step of
    the event loop. A map that fails to load stays as it was, and the failure is
    logged once per version of the file."""

    def __init__(self, server: MapServer, config: Config) -> None:
        self._server = server
        self._config = config
        self._tcp_names = config.tcp_names()
        self._pending: dict[str, None] = {}  # the maps to reload, in order
        self._loading: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def poll(self) -> None:
        while True:
            await asyncio.sleep(self._config.poll_interval)
            self.check()

    def check(self) -> None:
        for table in self._server.tables.values():
            signature = file_signature(table.path)
            if (
                signature != table.signature
                and signature != table.failed_signature
                and table.name != self._loading
            ):
                self._pending[table.name] = None
        self._start()

    def reload_all(self) -> None:
        log.info("SIGHUP: reloading every map")
        for name in self._server.tables:
            self._pending[name] = None
        self._start()

    def _start(self) -> None:
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            name = next(iter(self._pending))
            del self._pending[name]
            table = self._server.tables[name]
            signature = file_signature(table.path)
            self._loading = name
            try:
                built = await loop.run_in_executor(
                    None, build_map, table.path, self._config, name in self._tcp_names
                )
            except FileChanging:
                log.info("map file %s changed while being read: trying again", table.path)
                await asyncio.sleep(0.2)
                self._pending[name] = None
                continue
            except Exception as error:  # MapFileError, MemoryError, ...
                table.reload_failures += 1
                table.failed_signature = signature
                log.error(
                    "reloading map %s failed; still serving the %d entries loaded at %s: %s",
                    name, table.entries,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(table.loaded_at)),
                    error,
                )
                continue
            finally:
                self._loading = None
            table.install(built)
            table.reloads += 1
            report_built(table, built)
            log.info("reloaded map %s from %s: %d entries", name, table.path, table.entries)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


# -- listening ----------------------------------------------------------------------


def bind_inet(host: str | None, port: int, reuse_port: bool) -> list[socket.socket]:
    """Sockets bound (not listening) to every address of *host* (every interface for
    None) on *port*; for port 0, all on the port the first one got."""
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except OSError as error:
        for sock in sockets:
            sock.close()
        raise UsageError(f"cannot listen on {format_address(host, port)}: {error.strerror}")
    return sockets


def bind_unix(path: str, mode: int | None) -> tuple[socket.socket, Any]:
    """A listening unix socket at *path* with *mode*; a stale socket file left there
    by a dead server is replaced. Returns the socket and the file's (dev, ino)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise UsageError(f"--unix {path}: exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # nobody listens there: a leftover
        else:
            raise UsageError(f"--unix {path}: another server is listening there")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o777 & ~mode) if mode is not None else None
    try:
        sock.bind(path)
    except OSError as error:
        sock.close()
        raise UsageError(f"cannot listen on {path}: {error.strerror}")
    finally:
        if umask is not None:
            os.umask(umask)
    if mode is not None:
        os.chmod(path, mode)
    sock.listen(_BACKLOG)
    st = os.stat(path)
    return sock, (st.st_dev, st.st_ino)


def unlink_unix(path: str, identity: Any) -> None:
    """Remove our socket file, unless another server has replaced it since."""
    try:
        st = os.stat(path)
        if (st.st_dev, st.st_ino) == identity:
            os.unlink(path)
    except OSError:
        pass


def write_ready_file(path: str | None, info: dict[str, Any]) -> None:
    if not path:
        return
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        json.dump(info, handle)
    os.replace(temporary, path)


def remove_ready_file(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def _bound(server: asyncio.AbstractServer) -> list[tuple[str, int]]:
    return [sock.getsockname()[:2] for sock in server.sockets]  # type: ignore[attr-defined]


class LineChannel(asyncio.Protocol):
    """The supervisor's channel to a worker (either end): lines, split by txframe's
    line framer. *on_line* gets each line; *on_lost* the end."""

    delimiter = b"\n"
    MAX_LENGTH = 64 * 1024 * 1024
    transport = None  # the framer's view

    def __init__(self, on_line: Callable[[bytes], None], on_lost: Callable[[], None]) -> None:
        self._on_line = on_line
        self._on_lost = on_lost
        self._framer = LineFramer(True)
        self._transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._framer.feed(self, data)

    def lineReceived(self, line: bytes) -> None:
        self._on_line(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        log.error("control channel: line too long")
        self._transport.close()

    def send(self, line: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(line + b"\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._on_lost()


# -- a serving process ----------------------------------------------------------------


async def serve(
    config: Config,
    tables: list[Table],
    worker: int | None = None,
    control_fd: int | None = None,
    unix_fds: dict[str, int] | None = None,
) -> int:
    """Serve *tables* until SIGTERM/SIGINT (or, for a worker, until the supervisor
    goes away). A single process (``worker`` None) also serves the metrics and
    writes the ready file; a worker reports to the supervisor instead."""
    loop = asyncio.get_running_loop()
    server = MapServer(tables, config.fold_case, config.max_query)
    reuse_port = worker is not None
    listeners: list[asyncio.AbstractServer] = []
    listener: asyncio.AbstractServer
    made_unix: list[tuple[str, Any]] = []
    addresses: dict[str, Any] = {"tcp": [], "socketmap": [], "unix": [], "metrics": None}
    try:
        for name, host, port in config.tcp:
            factory = server.tcp_factory(server.tables[name])
            for sock in bind_inet(host, port, reuse_port):
                listener = await loop.create_server(factory, sock=sock, backlog=_BACKLOG)
                listeners.append(listener)
                for address in _bound(listener):
                    addresses["tcp"].append({"map": name, "host": address[0], "port": address[1]})
        for host, port in config.socketmap:
            for sock in bind_inet(host, port, reuse_port):
                listener = await loop.create_server(
                    server.socketmap_factory(), sock=sock, backlog=_BACKLOG
                )
                listeners.append(listener)
                for address in _bound(listener):
                    addresses["socketmap"].append({"host": address[0], "port": address[1]})
        for path in config.unix:
            if unix_fds is not None:
                sock = socket.socket(fileno=unix_fds[path])
            else:
                sock, identity = bind_unix(path, config.unix_mode)
                made_unix.append((path, identity))
            listener = await loop.create_unix_server(
                server.socketmap_factory(), sock=sock, backlog=_BACKLOG
            )
            listeners.append(listener)
            addresses["unix"].append(path)
        if config.metrics and worker is None:

            async def collect() -> bytes:
                return render_metrics([(0, server.snapshot())])

            listener = await _metrics_server(config.metrics, collect)
            listeners.append(listener)
            host, port = _bound(listener)[0]
            addresses["metrics"] = {"host": host, "port": port}
    except BaseException:
        for listener in listeners:
            listener.close()
        for path, identity in made_unix:
            unlink_unix(path, identity)
        raise

    stop = loop.create_future()

    def stop_now(why: str) -> None:
        if not stop.done():
            log.info("%s: shutting down", why)
            stop.set_result(why)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_now, signal.Signals(signum).name)
    reloader = Reloader(server, config)
    loop.add_signal_handler(signal.SIGHUP, reloader.reload_all)
    tasks = []
    if config.poll_interval > 0:
        tasks.append(asyncio.ensure_future(reloader.poll()))
    if config.idle_timeout > 0:
        tasks.append(asyncio.ensure_future(_sweep(server, config.idle_timeout / 4)))

    control: LineChannel | None = None
    if control_fd is not None:

        def on_line(line: bytes) -> None:
            if line == b"metrics":
                assert control is not None  # the supervisor asks once we said ready
                control.send(b"metrics " + json.dumps(server.snapshot()).encode())

        def on_lost() -> None:
            stop_now("the supervisor is gone")

        sock = socket.socket(fileno=control_fd)
        _, control = await loop.create_unix_connection(
            lambda: LineChannel(on_line, on_lost), sock=sock
        )
        control.send(b"ready " + json.dumps(addresses).encode())
    else:
        info = dict(addresses, pid=os.getpid(), workers=[], **_runtime())
        write_ready_file(config.ready_file, info)
        _log_listening(addresses, server.tables.values())

    try:
        await stop
    finally:
        for listener in listeners:
            listener.close()
        for path, identity in made_unix:
            unlink_unix(path, identity)
        for task in tasks:
            task.cancel()
        reloader.cancel()
        server.close_all()
        deadline = loop.time() + config.shutdown_timeout
        while server.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if server.connections:
            log.warning("closing %d connections still sending", len(server.connections))
            server.abort_all()
            await asyncio.sleep(0)
        if worker is None:
            remove_ready_file(config.ready_file)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    return 0


async def _sweep(server: MapServer, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        server.sweep_idle()


async def _metrics_server(
    address: list[Any], collect: Callable[[], Any]
) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    host, port = address
    try:
        return await loop.create_server(
            lambda: MetricsProtocol(collect), host or None, port, backlog=64,
            reuse_address=True,
        )
    except OSError as error:
        raise UsageError(
            f"cannot serve metrics on {format_address(host, port)}: {error.strerror}"
        )


def _runtime() -> dict[str, str]:
    """Which framers and which event loop serve."""
    loop = asyncio.get_running_loop()
    return {
        "framers": implementation,
        "loop": "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio",
    }


def _log_listening(addresses: dict[str, Any], tables: Any) -> None:
    runtime = _runtime()
    log.info("txframe %s framers on the %s event loop", runtime["framers"], runtime["loop"])
    for table in tables:
        log.info("map %s: %d entries from %s", table.name, table.entries, table.path)
    for entry in addresses["tcp"]:
        log.info("tcp_table map %s on %s", entry["map"], format_address(entry["host"], entry["port"]))
    for entry in addresses["socketmap"]:
        log.info("socketmap on %s", format_address(entry["host"], entry["port"]))
    for path in addresses["unix"]:
        log.info("socketmap on unix:%s", path)
    if addresses["metrics"]:
        entry = addresses["metrics"]
        log.info("metrics on http://%s/metrics", format_address(entry["host"], entry["port"]))


# -- the supervisor ------------------------------------------------------------------


class Worker:
    """One worker process, as the supervisor sees it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.channel: LineChannel | None = None
        self.ready: asyncio.Future[dict[str, Any]] | None = None
        self.started = 0.0
        self.delay = 0.5  # before a restart; doubles while it keeps dying young
        self._answers: list[asyncio.Future[dict[str, Any]]] = []
        self._lock = asyncio.Lock()

    def on_line(self, line: bytes) -> None:
        word, _, rest = line.partition(b" ")
        if word == b"ready" and self.ready is not None and not self.ready.done():
            self.ready.set_result(json.loads(rest))
        elif word == b"metrics" and self._answers:
            answer = self._answers.pop(0)
            if not answer.done():
                answer.set_result(json.loads(rest))

    def on_lost(self) -> None:
        self.channel = None
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(RuntimeError(f"worker {self.index} exited while starting"))
        for answer in self._answers:
            if not answer.done():
                answer.set_exception(RuntimeError(f"worker {self.index} is gone"))
        self._answers.clear()

    async def snapshot(self) -> dict[str, Any]:
        async with self._lock:
            if self.channel is None:
                raise RuntimeError(f"worker {self.index} is not running")
            answer = asyncio.get_running_loop().create_future()
            self._answers.append(answer)
            self.channel.send(b"metrics")
            return await asyncio.wait_for(answer, 5.0)


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.workers = [Worker(i) for i in range(config.workers)]
        self.worker_config: dict[str, Any] = {}
        self.unix_fds: dict[str, int] = {}
        self.stopping = False
        self.stop: asyncio.Future[str] | None = None

    async def start_worker(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        worker.ready = loop.create_future()
        env = dict(os.environ)
        env[WORKER_ENV] = json.dumps(
            {
                "config": self.worker_config,
                "worker": worker.index,
                "control_fd": theirs.fileno(),
                "unix_fds": self.unix_fds,
            }
        )
        try:
            worker.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _WORKER_CODE,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=[theirs.fileno(), *self.unix_fds.values()],
                env=env,
            )
        finally:
            theirs.close()
        worker.started = loop.time()
        _, worker.channel = await loop.create_unix_connection(
            lambda: LineChannel(worker.on_line, worker.on_lost), sock=ours
        )
        asyncio.ensure_future(self._watch(worker, worker.proc))

    async def _watch(self, worker: Worker, proc: asyncio.subprocess.Process) -> None:
        """Restart the worker if *proc*, once serving, exits (one dying while it
        starts is reported by whoever started it)."""
        status = await proc.wait()
        ready = worker.ready
        if (
            self.stopping
            or worker.proc is not proc
            or ready is None
            or not ready.done()
            or ready.cancelled()
            or ready.exception() is not None
        ):
            return
        loop = asyncio.get_running_loop()
        while not self.stopping:
            lived = loop.time() - worker.started
            delay = worker.delay = 0.5 if lived > 30 else min(30.0, 2.0 * worker.delay)
            log.error(
                "worker %d (pid %d) exited with status %s; restarting it in %.1f s",
                worker.index, proc.pid, status, delay,
            )
            await asyncio.sleep(delay)
            if self.stopping:
                return
            try:
                await self.start_worker(worker)
                assert worker.ready is not None and worker.proc is not None
                await asyncio.wait_for(asyncio.shield(worker.ready), _STARTUP_TIMEOUT)
            except Exception as error:
                proc = worker.proc
                log.error("worker %d did not restart: %s", worker.index, error)
                if proc is not None and proc.returncode is None:
                    proc.kill()
                status = await proc.wait() if proc is not None else None
            else:
                log.info("worker %d restarted (pid %d)", worker.index, worker.proc.pid)
                return

    async def collect(self) -> bytes:
        """Every worker's counters; one that is restarting is left out."""
        snapshots = await asyncio.gather(
            *(w.snapshot() for w in self.workers), return_exceptions=True
        )
        answered = []
        for worker, snapshot in zip(self.workers, snapshots):
            if isinstance(snapshot, BaseException):
                log.debug("metrics: worker %d: %s", worker.index, snapshot)
            else:
                answered.append((worker.index, snapshot))
        return render_metrics(answered)

    async def run(self) -> int:
        config = self.config
        loop = asyncio.get_running_loop()
        self.stop = stop = loop.create_future()

        def stop_now(why: str) -> None:
            self.stopping = True  # workers exiting from now on are not restarted
            if not stop.done():
                log.info("%s: stopping the workers", why)
                stop.set_result(why)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop_now, signal.Signals(signum).name)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)

        # Resolve the ports (for port 0) and hold them while the workers run: these
        # sockets are bound, never listening, so the kernel gives them no connections.
        held: list[socket.socket] = []
        made_unix: list[tuple[str, Any]] = []
        metrics = None
        status = 0
        try:
            tcp = []
            for name, host, port in config.tcp:
                socks = bind_inet(host, port, reuse_port=True)
                held.extend(socks)
                tcp.append([name, host, socks[0].getsockname()[1]])
            socketmap = []
            for host, port in config.socketmap:
                socks = bind_inet(host, port, reuse_port=True)
                held.extend(socks)
                socketmap.append([host, socks[0].getsockname()[1]])
            for path in config.unix:
                sock, identity = bind_unix(path, config.unix_mode)
                held.append(sock)
                made_unix.append((path, identity))
                self.unix_fds[path] = sock.fileno()
            self.worker_config = dataclasses.asdict(
                dataclasses.replace(config, tcp=tcp, socketmap=socketmap, metrics=None,
                                    ready_file=None)
            )
            for worker in self.workers:
                await self.start_worker(worker)
            ready = asyncio.gather(*[w.ready for w in self.workers])  # type: ignore[arg-type]
            await asyncio.wait([ready, stop], timeout=_STARTUP_TIMEOUT,
                               return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                ready.cancel()
            if stop.done():
                pass
            elif not ready.done() or ready.cancelled() or ready.exception():
                why = "timed out" if not ready.done() or ready.cancelled() else ready.exception()
                log.error("the workers did not start (%s): stopping", why)
                status = 1
            else:
                addresses = ready.result()[0]
                if config.metrics:
                    metrics = await _metrics_server(config.metrics, self.collect)
                    host, port = _bound(metrics)[0]
                    addresses["metrics"] = {"host": host, "port": port}
                info = dict(
                    addresses, pid=os.getpid(),
                    workers=[w.proc.pid for w in self.workers],  # type: ignore[union-attr]
                    **_runtime(),
                )
                write_ready_file(config.ready_file, info)
                log.info("%d workers serving", len(self.workers))
                _log_listening(addresses, [])
                await stop
        finally:
            self.stopping = True
            if metrics is not None:
                metrics.close()
            await self._stop_workers()
            for sock in held:
                sock.close()
            for path, identity in made_unix:
                unlink_unix(path, identity)
            remove_ready_file(config.ready_file)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
        return status

    def _forward(self, signum: int) -> None:
        log.info("%s: passing it on to the workers", signal.Signals(signum).name)
        for worker in self.workers:
            if worker.proc is not None and worker.proc.returncode is None:
                worker.proc.send_signal(signum)

    async def _stop_workers(self) -> None:
        procs = [w.proc for w in self.workers if w.proc is not None]
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        if not procs:
            return
        _, pending = await asyncio.wait(
            [asyncio.ensure_future(p.wait()) for p in procs],
            timeout=self.config.shutdown_timeout + 5,
        )
        for proc in procs:
            if proc.returncode is None:
                log.warning("worker pid %d did not stop: killing it", proc.pid)
                proc.kill()
        if pending:
            await asyncio.wait(pending, timeout=5)


# -- entry points ---------------------------------------------------------------------


def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise UsageError("--loop uvloop: uvloop is not installed (pip install "
                                 "'txframe[uvloop]')")
        else:
            # typed with uvloop installed and without it (then uvloop is Any)
            new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return new_loop
    return asyncio.new_event_loop


def run_async(main: Callable[[], Any], kind: str) -> Any:
    factory = _loop_factory(kind)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            log.debug("event loop: %s", type(runner.get_loop()).__module__)
            return runner.run(main())
    loop = factory()  # pragma: no cover - Python 3.10
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def run(args: argparse.Namespace) -> int:
    """``txframe serve-map``, from parsed arguments; returns the exit status."""
    setup_logging(args.log_level)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until we can reload: not fatal
    try:
        config = make_config(args)
        _loop_factory(config.loop)  # fail early if the loop asked for is missing
        raise_open_file_limit()
        if config.workers == 1:
            tables = load_tables(config)
            return int(run_async(lambda: serve(config, tables), config.loop))
        load_tables(config)  # a bad map is an error now, not in N workers
        return int(run_async(lambda: Supervisor(config).run(), config.loop))
    except (UsageError, MapFileError) as error:
        log.error("%s", error)
        return 1


def worker_main() -> int:
    """A worker process (started by the supervisor, with ``WORKER_ENV`` set)."""
    spec = json.loads(os.environ.pop(WORKER_ENV))
    config = Config(**spec["config"])
    setup_logging(config.log_level, spec["worker"])
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until we can reload: not fatal
    try:
        raise_open_file_limit()
        tables = load_tables(config)
        return int(
            run_async(
                lambda: serve(
                    config, tables, worker=spec["worker"], control_fd=spec["control_fd"],
                    unix_fds={path: int(fd) for path, fd in spec["unix_fds"].items()},
                ),
                config.loop,
            )
        )
    except (UsageError, MapFileError) as error:
        log.error("%s", error)
        return 1


def main(argv: list[str] | None = None) -> int:
    """``txframe serve-map ARGS`` (see :mod:`txframe.__main__` for ``txframe``)."""
    from .__main__ import main as txframe_main

    return txframe_main(["serve-map", *(sys.argv[1:] if argv is None else argv)])
