"""``--workers N``: a supervising process and N worker processes.

Each worker listens on the TCP ports itself, with ``SO_REUSEPORT``, so the kernel
spreads connections among them; unix sockets are made by the supervisor and shared.
The supervisor restarts a worker that dies (and rewrites the ready file with the new
pid), forwards SIGHUP, stops them all on SIGTERM and serves the metrics endpoint,
asking each worker for its counters over a control channel (a socket pair carrying
lines, split by txframe's line framer).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
from typing import Any, Callable

from ..framing import LineFramer
from ..mapfile import MapFileError
from . import hooks
from .config import Config, ServeError, UsageError
from .listeners import bind_inet, bind_unix, unlink_unix
from .metrics import Collector, MetricsServer, snapshot
from .protocols import MapServer
from .server import (
    close_sources,
    log_listening,
    log_sources,
    open_sources,
    raise_open_file_limit,
    remove_ready_file,
    run_async,
    runtime,
    serve,
    setup_logging,
    write_ready_file,
)
from .sources import SourceError

log = logging.getLogger("txframe.serve_map")

WORKER_ENV = "TXFRAME_SERVE_MAP_WORKER"
# The worker entry point; a worker gets its configuration in WORKER_ENV.
_WORKER_CODE = (
    "import sys; from txframe.mapserver.supervisor import worker_main; sys.exit(worker_main())"
)
_STARTUP_TIMEOUT = 120.0  # for a worker to load its maps and listen


def describe_exit(status: int | None) -> str:
    """A process's exit for the logs: "exited with status 3", "was killed by SIGKILL"."""
    if status is None:
        return "exited"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"was killed by {name}"
    return f"exited with status {status}"


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
        self.info: dict[str, Any] = {}  # the ready file's content once serving

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

    def _update_ready_file(self) -> None:
        if self.info:
            self.info["workers"] = [
                w.proc.pid if w.proc is not None else None for w in self.workers
            ]
            write_ready_file(self.config.ready_file, self.info)

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
                "worker %d (pid %d) %s; restarting it in %.1f s",
                worker.index, proc.pid, describe_exit(status), delay,
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
                self._update_ready_file()
                return

    async def collect(self) -> list[tuple[int, dict[str, Any]]]:
        """Every worker's counters; one that is restarting is left out."""
        snapshots = await asyncio.gather(
            *(w.snapshot() for w in self.workers), return_exceptions=True
        )
        answered = []
        for worker, snap in zip(self.workers, snapshots):
            if isinstance(snap, BaseException):
                log.debug("metrics: worker %d: %s", worker.index, snap)
            else:
                answered.append((worker.index, snap))
        return answered

    async def run(self) -> int:
        config = self.config
        loop = asyncio.get_running_loop()
        # a bad map is an error now, not in N workers; and the load summary is logged once
        sources = await open_sources(config)
        log_sources(sources)
        await close_sources(sources)
        status_text = "serving " + ", ".join(f"{s.name} ({s.describe()})" for s in sources)
        del sources

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
            if config.metrics:
                metrics = MetricsServer(config.metrics, Collector(self.collect, loop),
                                        expected=len(self.workers))
            hooks.after_binding(config)
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
                if metrics is not None:
                    host, port = metrics.address
                    addresses["metrics"] = {"host": host, "port": port}
                self.info = dict(addresses, pid=os.getpid(), workers=[], **runtime())
                self._update_ready_file()
                log.info("%d workers serving", len(self.workers))
                log_listening(addresses)
                hooks.ready(config, status_text)
                await stop
        finally:
            self.stopping = True
            hooks.stopping(config)
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
        hooks.reloading(self.config)  # (each worker reloads on its own)
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


def worker_main() -> int:
    """A worker process (started by the supervisor, with ``WORKER_ENV`` set)."""
    spec = json.loads(os.environ.pop(WORKER_ENV))
    config = Config(**spec["config"])
    index = spec["worker"]
    setup_logging(config.log_level, index)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until we can reload: not fatal

    async def attach(server: MapServer, addresses: dict[str, Any],
                     stop_now: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        control: LineChannel | None = None

        def on_line(line: bytes) -> None:
            if line == b"metrics" and control is not None:
                control.send(b"metrics " + json.dumps(snapshot(server)).encode())

        def on_lost() -> None:
            stop_now("the supervisor is gone")

        sock = socket.socket(fileno=spec["control_fd"])
        _, control = await loop.create_unix_connection(
            lambda: LineChannel(on_line, on_lost), sock=sock
        )
        control.send(b"ready " + json.dumps(addresses).encode())

    try:
        raise_open_file_limit()
        return int(
            run_async(
                lambda: serve(
                    config, worker=index, attach=attach,
                    unix_fds={path: int(fd) for path, fd in spec["unix_fds"].items()},
                ),
                config.loop,
            )
        )
    except (UsageError, ServeError, SourceError, MapFileError) as error:
        logging.getLogger("txframe.serve_map").error("%s", error)
        return 1
