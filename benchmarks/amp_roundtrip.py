#!/usr/bin/env python
"""One measurement of AMP ``callRemote`` round trips over loopback TCP, for compare.py.

A server and a client of one implementation (``twisted``: ``twisted.protocols.amp.AMP``;
``compiled`` / ``pure``: ``txframe.amp.AMP`` bound to that box codec, see
``workloads.amp_class``) in this process, on this process's reactor: the server
listens on 127.0.0.1 (port 0), the client connects with ``connectTCP``. The client
calls ``workloads.Sum`` (two Integers and a Unicode; the responder answers their sum
as an Integer), keeping ``--window`` calls outstanding: as each answer arrives, the
next call goes out, until ``--calls`` are answered. ``--warmup`` calls are made the
same way first, untimed. The garbage collector is off while timing. Every answer is
checked (their sum, and the server's count of calls).

Prints one line of JSON: the implementation, the calls, the wall and CPU seconds of
the timed calls and the rate. A reactor cannot be restarted, so compare.py runs this
once per measurement, interleaving implementations round by round.

    python benchmarks/amp_roundtrip.py pure --calls 20000
    python benchmarks/amp_roundtrip.py twisted --profile 30   # cProfile of the timed
                                                              # calls, top 30, on stderr
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from twisted.internet import reactor  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.protocol import ClientFactory, Factory  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

import workloads as W  # noqa: E402

TIMEOUT = 300.0  # seconds: give up (and fail) after this


def server_class(impl: str) -> type:
    base = W.amp_class(impl)

    class Server(base):  # type: ignore[misc, valid-type]
        calls = 0

        @W.Sum.responder
        def sum(self, a: int, b: int, text: str) -> dict[str, int]:
            self.calls += 1
            return {"total": a + b}

    return Server


class Driver:
    """Makes *calls* calls of Sum on *proto*, *window* at a time; ``run()`` returns
    a Deferred that fires with (wall seconds, CPU seconds) once all are answered."""

    def __init__(self, proto: Any, first: int, calls: int, window: int) -> None:
        self.proto = proto
        self.next = first
        self.end = first + calls
        self.calls = calls
        self.window = window
        self.answered = 0
        self.total = 0
        self.done: Deferred = Deferred()
        self.started = self.cpu_started = 0.0

    def run(self) -> Deferred:
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()
        for _ in range(min(self.window, self.calls)):
            self._call()
        return self.done

    def _call(self) -> None:
        i = self.next
        self.next = i + 1
        d = self.proto.callRemote(W.Sum, **W.call_arguments(i))
        d.addCallbacks(self._answered, self._failed)

    def _answered(self, result: dict[str, Any]) -> None:
        self.total += result["total"]
        self.answered += 1
        if self.next < self.end:
            self._call()
        elif self.answered == self.calls:
            elapsed = time.perf_counter() - self.started
            cpu = time.process_time() - self.cpu_started
            self.done.callback((elapsed, cpu))

    def _failed(self, failure: Any) -> None:
        if not self.done.called:
            self.done.errback(failure)

    def expected_total(self) -> int:
        return sum(
            kw["a"] + kw["b"]
            for kw in map(W.call_arguments, range(self.end - self.calls, self.end))
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("impl", choices=W.IMPLEMENTATIONS)
    parser.add_argument("--calls", type=int, default=W.ROUNDTRIP_CALLS)
    parser.add_argument("--window", type=int, default=W.ROUNDTRIP_WINDOW)
    parser.add_argument("--warmup", type=int, default=W.ROUNDTRIP_WARMUP)
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N",
        help="cProfile the timed calls; print the top N functions (by own time) to stderr",
    )
    args = parser.parse_args(argv)
    if not W.available(args.impl, "amp"):
        print(json.dumps({"impl": args.impl, "error": "not available"}))
        return 2

    server_type = server_class(args.impl)
    client_type = W.amp_class(args.impl)
    servers: list[Any] = []
    outcome: dict[str, Any] = {}
    connected: Deferred = Deferred()

    class ServerFactory(Factory):
        def buildProtocol(self, addr: Any) -> Any:
            proto = server_type()
            proto.factory = self
            servers.append(proto)
            return proto

    class Client(client_type):  # type: ignore[misc, valid-type]
        def connectionMade(self) -> None:
            super().connectionMade()
            connected.callback(self)

    class Connector(ClientFactory):
        protocol = Client

        def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
            if not connected.called:
                connected.errback(reason)

    port = reactor.listenTCP(0, ServerFactory(), interface="127.0.0.1")
    reactor.connectTCP("127.0.0.1", port.getHost().port, Connector())
    profiler = None

    async def scenario() -> None:
        client = await connected
        if args.warmup:
            await Driver(client, 0, args.warmup, args.window).run()
        nonlocal profiler
        gc.collect()
        gc.disable()
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        try:
            driver = Driver(client, args.warmup, args.calls, args.window)
            elapsed, cpu = await driver.run()
        finally:
            if profiler is not None:
                profiler.disable()
            gc.enable()
        if driver.total != driver.expected_total():
            raise AssertionError(f"answers sum to {driver.total}, not {driver.expected_total()}")
        served = sum(server.calls for server in servers)
        if served != args.warmup + args.calls:
            raise AssertionError(f"the server answered {served} calls")
        outcome.update(
            impl=args.impl,
            calls=args.calls,
            window=args.window,
            warmup=args.warmup,
            seconds=elapsed,
            cpu_seconds=cpu,
            rate=args.calls / elapsed,
            amp="twisted.protocols.amp.AMP" if args.impl == "twisted" else "txframe.amp.AMP",
            box_codec=None if args.impl == "twisted" else type(client)._boxFramer.__module__,
            reactor=f"{type(reactor).__module__}.{type(reactor).__name__}",
        )
        client.transport.loseConnection()

    def stop(result: Any) -> None:
        if isinstance(result, Failure):
            outcome["error"] = result.getTraceback()
        port.stopListening()
        if reactor.running:
            reactor.callLater(0, reactor.stop)

    def timeout() -> None:
        outcome["error"] = f"timed out after {TIMEOUT:g} s"
        reactor.stop()

    deadline = reactor.callLater(TIMEOUT, timeout)
    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(scenario()).addBoth(stop))
    reactor.run()
    if deadline.active():
        deadline.cancel()
    print(json.dumps(outcome))
    if profiler is not None:
        import pstats

        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(args.profile)
    return 1 if "error" in outcome or not outcome else 0


if __name__ == "__main__":
    sys.exit(main())
