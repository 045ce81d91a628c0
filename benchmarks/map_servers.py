#!/usr/bin/env python
"""The map servers ``maps.py`` compares with ``txframe serve-map``, one per process.

    python benchmarks/map_servers.py KIND --map FILE --ready-file PATH [--port N]

KIND is one of:

``twisted-postfix``
    Twisted's ``twisted.protocols.postfix.PostfixTCPMapServer``, its
    ``PostfixTCPMapDictServerFactory`` holding the map (keys and values as bytes).
``txframe-postfix``
    txframe's drop-in ``txframe.postfix.PostfixTCPMapServer`` on Twisted, its
    ``PostfixTCPMapDictServerFactory`` holding the map.
``twisted-floor``
    Twisted's reactor alone: a bare ``twisted.internet.protocol.Protocol`` whose
    ``dataReceived`` writes the constant reply ``500 \\n`` once per newline received.
    Not ``LineOnlyReceiver``: its line splitting is Python code that costs per request
    on top of the reactor, and the floor is what the reactor itself costs (accept,
    epoll, ``recv``, ``dataReceived``, ``write``, ``send``). With lock-step clients
    every read holds exactly one request, so counting newlines is exact framing.
``asyncio-floor``
    The same on asyncio's event loop, the loop ``txframe serve-map`` runs on
    (uvloop's with ``--loop uvloop``, when it is installed): a bare
    ``asyncio.Protocol``.

Both floors first allocate and free 1 MiB (:func:`prime_malloc`: see there why).
``serve-map``
    ``txframe serve-map`` itself, run in this process (the arguments after ``--``
    are its own); for profiling: ``maps.py`` times the real ``txframe serve-map``
    program.

Each raises its soft limit on open files to the hard limit, as serve-map does. The
four servers of our own listen on 127.0.0.1 (``--port``, default 0: any) and, once
listening, write ``{"port": ..., "pid": ..., ...}`` to the ready file. SIGTERM stops
them. With ``--profile PATH``, SIGUSR1 starts cProfile and SIGUSR2 stops it and writes
its stats to PATH (for ``pstats``), so that only a timed window under load is
profiled, not the loading of the map.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

FLOOR_REPLY = b"500 \n"
KINDS = ("twisted-postfix", "txframe-postfix", "twisted-floor", "asyncio-floor", "serve-map")


def prime_malloc() -> None:
    """Allocate and free 1 MiB, as loading a map does many times over.

    glibc's malloc serves a request of 128 KiB or more with its own mmap until it has
    freed such a chunk, and then raises that threshold to the chunk's size. asyncio's
    own event loop receives into a fresh 256 KiB bytes object each time
    (``sock.recv(256 KiB)``, then shrunk): in a process that never freed a big chunk,
    each request then costs an mmap, an mremap and a munmap, and the page faults --
    several times the loop's real cost. The map servers have freed big chunks by the
    time they serve (loading the map resizes big dicts), so without this the floors
    would be measured in a state the servers compared with them are not in.
    """
    chunk = bytearray(1 << 20)
    del chunk


def raise_open_file_limit() -> None:
    """Soft limit on open files up to the hard one (as serve-map does), for the idle
    connections measurement."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass  # the idle connections measurement will say how many it got


def load_map(path: str) -> dict[bytes, bytes]:
    """The map file maps.py writes: one ``key value`` per line, nothing else."""
    entries = {}
    with open(path, "rb") as f:
        for line in f:
            key, value = line.split(None, 1)
            entries[key] = value.rstrip(b"\n")
    return entries


def write_ready(path: str, info: dict[str, Any]) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        json.dump(info, f)
    os.replace(temporary, path)


def install_profiler(path: str | None) -> None:
    """SIGUSR1: start profiling; SIGUSR2: stop and write the stats to *path*."""
    if not path:
        return
    import cProfile

    profiler = cProfile.Profile()

    def start(signum: int, frame: Any) -> None:
        profiler.enable()

    def stop(signum: int, frame: Any) -> None:
        profiler.disable()
        profiler.dump_stats(path)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


# -- on Twisted -------------------------------------------------------------------------


def run_twisted(kind: str, args: argparse.Namespace) -> int:
    from twisted.internet import protocol, reactor

    if kind == "twisted-floor":
        prime_malloc()

        class Floor(protocol.Protocol):
            def dataReceived(self, data: bytes) -> None:
                n = data.count(b"\n")
                if n == 1:
                    self.transport.write(FLOOR_REPLY)
                elif n:
                    self.transport.write(FLOOR_REPLY * n)

        factory: Any = protocol.Factory.forProtocol(Floor)
        factory.noisy = False
        what = "twisted.internet.protocol.Protocol (constant reply per newline)"
    else:
        if kind == "twisted-postfix":
            from twisted.protocols import postfix
        else:
            from txframe import postfix  # type: ignore[no-redef]
        factory = postfix.PostfixTCPMapDictServerFactory()
        factory.data = load_map(args.map)  # UserDict: its dict, unchanged
        factory.noisy = False
        what = f"{postfix.__name__}.PostfixTCPMapServer"
    port = reactor.listenTCP(args.port, factory, backlog=4096, interface="127.0.0.1")
    install_profiler(args.profile)

    def ready() -> None:
        write_ready(args.ready_file, {
            "kind": kind,
            "port": port.getHost().port,
            "pid": os.getpid(),
            "server": what,
            "reactor": f"{type(reactor).__module__}.{type(reactor).__name__}",
        })

    reactor.callWhenRunning(ready)
    reactor.run()
    return 0


# -- on asyncio -------------------------------------------------------------------------


class AsyncioFloor(asyncio.Protocol):
    __slots__ = ("write",)

    def connection_made(self, transport: Any) -> None:
        self.write = transport.write

    def data_received(self, data: bytes) -> None:
        n = data.count(b"\n")
        if n == 1:
            self.write(FLOOR_REPLY)
        elif n:
            self.write(FLOOR_REPLY * n)


def run_asyncio_floor(args: argparse.Namespace) -> int:
    prime_malloc()
    factory = asyncio.new_event_loop
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(AsyncioFloor, "127.0.0.1", args.port, backlog=4096)
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
        install_profiler(args.profile)
        write_ready(args.ready_file, {
            "kind": "asyncio-floor",
            "port": server.sockets[0].getsockname()[1],
            "pid": os.getpid(),
            "server": "asyncio.Protocol (constant reply per newline)",
            "loop": f"{type(loop).__module__}.{type(loop).__name__}",
        })
        await stop
        server.close()

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rest: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, rest = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--map", help="the map file (twisted-postfix, txframe-postfix)")
    parser.add_argument("--ready-file", help="where to write the port and pid")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--profile", metavar="PATH", help="profile between SIGUSR1 and SIGUSR2")
    args = parser.parse_args(argv)
    raise_open_file_limit()
    if args.kind == "serve-map":
        install_profiler(args.profile)
        from txframe.__main__ import main as txframe_main

        return txframe_main(["serve-map", *rest])
    if not args.ready_file:
        parser.error("--ready-file is required")
    if args.kind == "asyncio-floor":
        return run_asyncio_floor(args)
    if not args.map and args.kind != "twisted-floor":
        parser.error(f"{args.kind} needs --map")
    return run_twisted(args.kind, args)


if __name__ == "__main__":
    sys.exit(main())
