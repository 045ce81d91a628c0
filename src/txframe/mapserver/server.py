"""One serving process: open the sources, listen, serve until SIGTERM/SIGINT, reload
on SIGHUP, stop gracefully. A single process (no ``--workers``) also serves the
metrics and writes the ready file; a worker reports to its supervisor instead (see
:mod:`.supervisor`, which passes ``attach``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from typing import Any, Awaitable, Callable, Iterable

from ..framing import implementation
from . import hooks
from .config import Config, ServeError, format_address
from .keys import folding
from .listeners import BACKLOG, bind_inet, bind_unix, bound, unlink_unix
from .metrics import Collector, MetricsServer, snapshot
from .protocols import MapServer
from .sources import Source, create_all

log = logging.getLogger("txframe.serve_map")

Attach = Callable[[MapServer, dict[str, Any], Callable[[str], None]], Awaitable[None]]


async def open_sources(config: Config) -> list[Source]:
    """Every source of *config*, opened (maps loaded). :raises SourceError:"""
    sources = create_all(config)
    opened: list[Source] = []
    try:
        for source in sources:
            await source.open()
            opened.append(source)
    except BaseException:
        await close_sources(opened)
        raise
    return sources


async def close_sources(sources: Iterable[Source]) -> None:
    for source in sources:
        try:
            await source.close()
        except Exception as error:
            log.warning("map %s: closing: %s", source.name, error)


def runtime() -> dict[str, str]:
    """Which framers and which event loop serve."""
    loop = asyncio.get_running_loop()
    return {
        "framers": implementation,
        "loop": "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio",
    }


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


def status_line(sources: Iterable[Source]) -> str:
    return "serving " + ", ".join(f"{s.name} ({s.describe()})" for s in sources)


def log_sources(sources: Iterable[Source]) -> None:
    for source in sources:
        log.info("map %s: %s", source.name, source.describe())


def log_listening(addresses: dict[str, Any]) -> None:
    info = runtime()
    log.info("txframe %s framers on the %s event loop", info["framers"], info["loop"])
    for entry in addresses["tcp"]:
        log.info("tcp_table map %s on %s", entry["map"], format_address(entry["host"], entry["port"]))
    for entry in addresses["socketmap"]:
        log.info("socketmap on %s", format_address(entry["host"], entry["port"]))
    for path in addresses["unix"]:
        log.info("socketmap on unix:%s", path)
    if addresses.get("metrics"):
        entry = addresses["metrics"]
        log.info("metrics on http://%s/metrics", format_address(entry["host"], entry["port"]))


def write_ready_file(path: str | None, info: dict[str, Any]) -> None:
    """Say, atomically, where we listen and which processes serve."""
    if not path:
        return
    temporary = f"{path}.{os.getpid()}.tmp"
    try:  # (as --user, when given: its directory must let that user write)
        with open(temporary, "w") as handle:
            json.dump(info, handle)
        os.replace(temporary, path)
    except OSError as error:
        raise ServeError(f"--ready-file {path}: {error.strerror or error}") from None


def remove_ready_file(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


class Reloads:
    """SIGHUP: reload every source, at most one round in flight and one more queued
    (a storm of signals makes two rounds, not one per signal)."""

    def __init__(self, config: Config, sources: list[Source], notify: bool = True) -> None:
        self._config = config
        self._sources = sources
        self._notify = notify  # the service hooks: not in a worker (the supervisor's)
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self, why: str = "SIGHUP") -> None:
        if self._task is not None and not self._task.done():
            if not self._again:
                log.info("%s: a reload is running; reloading again after it", why)
            self._again = True
            return
        log.info("%s: reloading every map", why)
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        if self._notify:
            hooks.reloading(self._config)
        while True:
            self._again = False
            await asyncio.gather(*(s.reload() for s in self._sources), return_exceptions=True)
            if not self._again:
                break
        if self._notify:
            hooks.reloaded(self._config, status_line(self._sources))

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def serve(
    config: Config,
    sources: list[Source] | None = None,
    *,
    worker: int | None = None,
    unix_fds: dict[str, int] | None = None,
    attach: Attach | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT (or, for a worker, until ``attach``'s channel says
    the supervisor is gone). *sources* are opened here unless given (opened)."""
    loop = asyncio.get_running_loop()
    if sources is None:
        sources = await open_sources(config)
    if worker is None:
        log_sources(sources)
    server = MapServer(sources, folding(config.key_folding), config.max_query)
    reuse_port = worker is not None
    listeners: list[asyncio.AbstractServer] = []
    listener: asyncio.AbstractServer
    made_unix: list[tuple[str, Any]] = []
    metrics: MetricsServer | None = None
    addresses: dict[str, Any] = {"tcp": [], "socketmap": [], "unix": [], "metrics": None}

    def stop_listening() -> None:
        for listener in listeners:
            listener.close()
        for path, identity in made_unix:
            unlink_unix(path, identity)

    try:
        for name, host, port in config.tcp:
            factory = server.tcp_factory(server.sources[name])
            for sock in bind_inet(host, port, reuse_port):
                listener = await loop.create_server(factory, sock=sock, backlog=BACKLOG)
                listeners.append(listener)
                for address in bound(listener):
                    addresses["tcp"].append({"map": name, "host": address[0], "port": address[1]})
        for host, port in config.socketmap:
            for sock in bind_inet(host, port, reuse_port):
                listener = await loop.create_server(
                    server.socketmap_factory(), sock=sock, backlog=BACKLOG
                )
                listeners.append(listener)
                for address in bound(listener):
                    addresses["socketmap"].append({"host": address[0], "port": address[1]})
        for path in config.unix:
            if unix_fds is not None:
                sock = socket.socket(fileno=unix_fds[path])
            else:
                sock, identity = bind_unix(path, config.unix_access())
                made_unix.append((path, identity))
            listener = await loop.create_unix_server(
                server.socketmap_factory(), sock=sock, backlog=BACKLOG
            )
            listeners.append(listener)
            addresses["unix"].append(path)
        for name, fd in config.inherited:  # socket activation: see systemd.py
            sock = socket.socket(fileno=fd)
            role, _, target = name.partition("=")
            if role == "tcp":
                factory = server.tcp_factory(server.sources[target])
            else:
                factory = server.socketmap_factory()
            if sock.family == socket.AF_UNIX:
                listener = await loop.create_unix_server(factory, sock=sock, backlog=BACKLOG)
                if role == "socketmap":
                    addresses["unix"].append(sock.getsockname())
                else:  # tcp_table on a unix socket: no place in the ready file
                    log.info("tcp_table map %s on unix:%s", target, sock.getsockname())
            else:
                listener = await loop.create_server(factory, sock=sock, backlog=BACKLOG)
                for host, port in bound(listener):
                    entry = {"host": host, "port": port}
                    if role == "tcp":
                        addresses["tcp"].append({"map": target, **entry})
                    else:
                        addresses["socketmap"].append(entry)
            listeners.append(listener)
        if config.metrics and attach is None:

            async def collect() -> list[tuple[int, dict[str, Any]]]:
                return [(0, snapshot(server))]

            metrics = MetricsServer(config.metrics, Collector(collect, loop))
            host, port = metrics.address
            addresses["metrics"] = {"host": host, "port": port}
        hooks.after_binding(config, worker=attach is not None)
    except BaseException:
        stop_listening()
        if metrics is not None:
            metrics.close()
        await close_sources(sources)
        raise

    stop = loop.create_future()

    def stop_now(why: str) -> None:
        if not stop.done():
            log.info("%s: shutting down", why)
            stop.set_result(why)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_now, signal.Signals(signum).name)
    reloads = Reloads(config, sources, notify=attach is None)
    loop.add_signal_handler(signal.SIGHUP, reloads.request)
    sweeper = None
    if config.idle_timeout > 0:
        sweeper = asyncio.ensure_future(_sweep(server, config.idle_timeout / 4))

    if attach is not None:
        await attach(server, addresses, stop_now)
    else:
        info = dict(addresses, pid=os.getpid(), workers=[], **runtime())
        write_ready_file(config.ready_file, info)
        log_listening(addresses)
        hooks.ready(config, status_line(sources))

    try:
        await stop
    finally:
        if attach is None:
            hooks.stopping(config)
        stop_listening()
        if sweeper is not None:
            sweeper.cancel()
        reloads.cancel()
        await close_sources(sources)
        server.close_all()
        deadline = loop.time() + config.shutdown_timeout
        while server.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if server.connections:
            log.warning("closing %d connections still sending", len(server.connections))
            server.abort_all()
            await asyncio.sleep(0)
        if metrics is not None:
            metrics.close()
        if attach is None:
            remove_ready_file(config.ready_file)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    return 0


async def _sweep(server: MapServer, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        server.sweep_idle()


# -- running a loop ---------------------------------------------------------------------


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop *kind* asks for. :raises ServeError: uvloop asked, not installed."""
    from .config import ServeError

    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise ServeError("--loop uvloop: uvloop is not installed (pip install "
                                 "'txframe[uvloop]')") from None
        else:
            # typed with uvloop installed and without it (then uvloop is Any)
            new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return new_loop
    return asyncio.new_event_loop


def run_async(main: Callable[[], Any], kind: str) -> Any:
    factory = loop_factory(kind)
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
