"""Line-protocol scenarios over real TCP on 127.0.0.1, one reactor per process.

Usage::

    python line_peer.py SCENARIO IMPL [--seed N]

*IMPL* is ``compiled`` or ``pure``: the txframe classes are bound to that framer as
``tests/conftest.py`` binds them. The process runs one scenario (see ``SCENARIOS``)
on its own reactor (a reactor cannot be restarted inside pytest) and prints one JSON
object on stdout: the scenario's observations, plus ``framer_module`` (which framer
was really used), ``logged_errors`` (every error Twisted logged) and, if something
went wrong, ``error`` (a traceback, or ``"timeout"`` with ``progress``). The tests in
``tests/test_tcp.py`` assert on it.

Only 127.0.0.1 is used; a watchdog stops the reactor after ``WATCHDOG`` seconds.
The test data generators (``echo_lines`` ...) are importable, so the tests recompute
what the peer must report without trusting it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import itertools
import json
import random
import sys
import traceback
from types import SimpleNamespace
from typing import Any, Callable

HOST = "127.0.0.1"
WATCHDOG = 20.0

# Sizes of successive transport.write() calls, one write per reactor turn: single
# bytes (a delimiter split between two writes) up to writes of several TCP segments.
WRITE_SIZES = (1, 1, 2, 3, 7, 64, 1400, 9000, 65536, 200_000)


# -- test data (shared with tests/test_tcp.py) -------------------------------------


def random_line(rng: random.Random, size: int) -> bytes:
    """*size* random bytes (lone CR and LF included) never containing CRLF."""
    return rng.randbytes(size).replace(b"\r\n", b"\r.")


def echo_lines(seed: int, count: int = 20_000) -> list[bytes]:
    """Lines of random lengths: mostly short, some of kilobytes, a few of 70-300 kB
    (several TCP segments each, whatever the loopback MTU)."""
    rng = random.Random(seed)
    lines = []
    for index in range(count):
        if index % 2500 == 1234:
            size = rng.randint(70_000, 300_000)
        elif rng.random() < 0.02:
            size = rng.randint(1000, 8000)
        else:
            size = rng.choice((0, 0, 1, 2)) if rng.random() < 0.1 else rng.randint(0, 120)
        lines.append(random_line(rng, size))
    return lines


def peer_lines(seed: int, count: int = 2000, longest: int = 2000) -> list[bytes]:
    rng = random.Random(seed)
    return [random_line(rng, rng.randint(0, longest)) for _ in range(count)]


def reply(index: int, line: bytes) -> bytes:
    """What the servers of the ``twisted-*`` scenarios answer to their *index*-th line."""
    return b"%d %d %s" % (index, len(line), line)


def http_requests(seed: int, count: int = 60) -> list[tuple[bytes, bytes]]:
    """(path, body) pairs; bodies hold CRLFs, blank lines and things that look like
    requests, so only the Content-Length says where a body ends."""
    rng = random.Random(seed)
    requests = []
    for index in range(count):
        kind = index % 6
        if kind == 0:
            body = b""
        elif kind == 1:
            body = b"\r\n" * rng.randint(1, 50)
        elif kind == 2:
            body = b"POST /fake HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"
        elif kind == 3 and index % 4 == 3:
            body = rng.randbytes(rng.randint(70_000, 250_000))
        else:
            body = rng.randbytes(rng.randint(1, 5000))
        requests.append((b"/r%d" % index, body))
    return requests


def http_request_bytes(path: bytes, body: bytes) -> bytes:
    return (
        b"POST %s HTTP/1.0\r\nContent-Length: %d\r\nX-Note: a\rb\nc\r\n\r\n%s"
        % (path, len(body), body)
    )


def http_reply(path: bytes, body: bytes) -> bytes:
    return b"%s %d %s" % (path, len(body), hashlib.sha256(body).hexdigest().encode())


def long_line_inputs(seed: int, max_length: int) -> tuple[list[bytes], bytes, list[bytes]]:
    """(valid lines, a line too long, lines after it) for the ``too-long`` scenario."""
    rng = random.Random(seed)
    valid = [random_line(rng, rng.randint(0, max_length)) for _ in range(300)]
    valid[10] = valid[200] = b"x" * max_length  # the longest allowed
    valid[150] = random_line(rng, max_length - 1) + b"\r"  # ends like a delimiter
    too_long = b"L" * (max_length * 5)
    after = [b"after %d" % i for i in range(50)]
    return valid, too_long, after


def digest(lines: list[bytes]) -> str:
    """One SHA-256 over the lines (unambiguous: the lines hold no CRLF)."""
    hasher = hashlib.sha256()
    for line in lines:
        hasher.update(line)
        hasher.update(b"\r\n")
    return hasher.hexdigest()


# -- the implementation under test ---------------------------------------------------


def bind(name: str) -> SimpleNamespace:
    """txframe's protocol classes bound to one framer, as tests/conftest.py does."""
    from txframe import basic

    module = importlib.import_module({"compiled": "txframe._lines_c", "pure": "txframe._lines_py"}[name])

    class LineReceiver(basic.LineReceiver):
        _lineFramer = module.LineFramer

    class LineOnlyReceiver(basic.LineOnlyReceiver):
        _lineFramer = module.LineFramer

    return SimpleNamespace(
        name=name,
        LineFramer=module.LineFramer,
        LineReceiver=LineReceiver,
        LineOnlyReceiver=LineOnlyReceiver,
    )


# -- plumbing ----------------------------------------------------------------------

progress: dict[str, Any] = {}  # dumped if the watchdog fires


def send_in_pieces(reactor: Any, transport: Any, data: bytes, sizes=WRITE_SIZES) -> None:
    """Write *data* in pieces of the cycled *sizes*, one write per reactor turn."""
    size_iter = itertools.cycle(sizes)
    view = memoryview(data)

    def step(offset: int) -> None:
        if offset >= len(data) or transport.disconnecting:
            return
        size = next(size_iter)
        transport.write(bytes(view[offset : offset + size]))
        reactor.callLater(0, step, offset + size)

    step(0)


def listen(reactor: Any, protocol_class: type) -> Any:
    from twisted.internet import protocol

    factory = protocol.ServerFactory.forProtocol(protocol_class)
    return reactor.listenTCP(0, factory, interface=HOST)


def connect(reactor: Any, port: Any, protocol_class: type, factory: Any = None) -> Any:
    """Connect a client (built by *factory*, or a plain factory of *protocol_class*);
    return a Deferred fired with the connected protocol."""
    from twisted.internet import endpoints, protocol

    if factory is None:
        factory = protocol.ClientFactory.forProtocol(protocol_class)
    endpoint = endpoints.TCP4ClientEndpoint(reactor, HOST, port.getHost().port, timeout=10)
    return endpoint.connect(factory)


def reason_name(reason: Any) -> str:
    return reason.type.__name__ if reason is not None else "None"


# -- scenarios -------------------------------------------------------------------------


def gather(waiting: list, ports: list, results: dict) -> Any:
    """A Deferred firing with *results* once every scenario in *waiting* is done and
    every port in *ports* has stopped listening."""
    from twisted.internet import defer

    @defer.inlineCallbacks
    def run() -> Any:
        yield defer.gatherResults(waiting)
        for port in ports:
            yield port.stopListening()
        return results

    return run()


def scenario_echo(reactor: Any, impl: SimpleNamespace, seed: int) -> Any:
    """(a) txframe LineReceiver echo server, txframe AccumulatingProtocol client."""
    from twisted.internet import defer, protocol

    from txframe.testing import AccumulatingProtocol

    lines = echo_lines(seed)
    payload = b"".join(line + b"\r\n" for line in lines)
    server_done: defer.Deferred = defer.Deferred()

    class EchoServer(impl.LineReceiver):
        MAX_LENGTH = 1 << 20

        def connectionMade(self) -> None:
            self.count = 0
            self.hasher = hashlib.sha256()

        def lineReceived(self, line: bytes) -> None:
            self.count += 1
            progress["server_lines"] = self.count
            self.hasher.update(line + b"\r\n")
            self.sendLine(line)

        def connectionLost(self, reason: Any) -> None:
            server_done.callback(
                {"lines": self.count, "digest": self.hasher.hexdigest(), "reason": reason_name(reason)}
            )

    class Client(AccumulatingProtocol):
        received = 0

        def dataReceived(self, data: bytes) -> None:
            super().dataReceived(data)
            self.received += len(data)
            progress["client_bytes"] = self.received
            if self.received >= len(payload) and not self.transport.disconnecting:
                self.transport.loseConnection()

    port = listen(reactor, EchoServer)

    factory = protocol.ClientFactory.forProtocol(Client)
    made = factory.protocolConnectionMade = defer.Deferred()  # AccumulatingProtocol fires it
    made_with: list[Any] = []
    made.addCallback(made_with.append)

    @defer.inlineCallbacks
    def run() -> Any:
        client = yield connect(reactor, port, Client, factory)
        closed = client.closedDeferred = defer.Deferred()
        client.transport.setTcpNoDelay(True)
        send_in_pieces(reactor, client.transport, payload)
        yield closed
        server = yield server_done
        data = client.data
        mismatch = next(
            (i for i, (a, b) in enumerate(zip(data, payload)) if a != b),
            None if len(data) == len(payload) else min(len(data), len(payload)),
        )
        yield port.stopListening()
        return {
            "server": server,
            "client": {
                "made": client.made,
                "closed": client.closed,
                "reason": reason_name(client.closedReason),
                "closedDeferred": repr(client.closedDeferred),
                "factory_deferred": repr(factory.protocolConnectionMade),
                "made_fired_with_client": [proto is client for proto in made_with],
                "data_type": type(data).__name__,
                "bytes": len(data),
                "digest": hashlib.sha256(data).hexdigest(),
                "first_mismatch": mismatch,
            },
        }

    return run()


def _reply_server(base: type, done: Any) -> type:
    class ReplyServer(base):  # type: ignore[valid-type, misc]
        def connectionMade(self) -> None:
            self.count = 0

        def lineReceived(self, line: bytes) -> None:
            self.count += 1
            self.sendLine(reply(self.count, line))

        def connectionLost(self, reason: Any) -> None:
            done.callback({"lines": self.count, "reason": reason_name(reason)})

    return ReplyServer


def _reply_client(base: type, lines: list[bytes], done: Any, key: str) -> type:
    class ReplyClient(base):  # type: ignore[valid-type, misc]
        def connectionMade(self) -> None:
            self.replies: list[bytes] = []
            self.transport.setTcpNoDelay(True)
            for line in lines:
                self.sendLine(line)

        def lineReceived(self, line: bytes) -> None:
            self.replies.append(line)
            progress[key] = len(self.replies)
            if len(self.replies) == len(lines):
                self.transport.loseConnection()

        def connectionLost(self, reason: Any) -> None:
            done.callback(
                {"replies": len(self.replies), "digest": digest(self.replies), "reason": reason_name(reason)}
            )

    return ReplyClient


def _twisted_pairs(reactor: Any, pairs: list[tuple[str, type, type]], seed: int) -> Any:
    """Run reply server/client pairs concurrently, each on its own port."""
    from twisted.internet import defer

    lines = peer_lines(seed)
    results: dict[str, Any] = {}
    waiting = []
    ports = []
    for name, server_base, client_base in pairs:
        server_done: defer.Deferred = defer.Deferred()
        client_done: defer.Deferred = defer.Deferred()
        port = listen(reactor, _reply_server(server_base, server_done))
        ports.append(port)
        client = _reply_client(client_base, lines, client_done, name)
        waiting.append(connect(reactor, port, client))

        def record(outcome: list, name: str = name) -> None:
            results[name] = {"server": outcome[0], "client": outcome[1]}

        waiting.append(defer.gatherResults([server_done, client_done]).addCallback(record))

    return gather(waiting, ports, results)


def scenario_twisted_server(reactor: Any, impl: SimpleNamespace, seed: int) -> Any:
    """(b) a Twisted LineReceiver server; txframe LineOnlyReceiver/LineReceiver clients."""
    from twisted.protocols import basic as twisted_basic

    return _twisted_pairs(
        reactor,
        [
            ("LineOnlyReceiver", twisted_basic.LineReceiver, impl.LineOnlyReceiver),
            ("LineReceiver", twisted_basic.LineReceiver, impl.LineReceiver),
        ],
        seed,
    )


def scenario_twisted_client(reactor: Any, impl: SimpleNamespace, seed: int) -> Any:
    """(b) txframe LineReceiver/LineOnlyReceiver servers; Twisted LineReceiver clients."""
    from twisted.protocols import basic as twisted_basic

    return _twisted_pairs(
        reactor,
        [
            ("LineReceiver", impl.LineReceiver, twisted_basic.LineReceiver),
            ("LineOnlyReceiver", impl.LineOnlyReceiver, twisted_basic.LineReceiver),
        ],
        seed,
    )


PAUSE_EVERY = 400
PAUSE_DELAY = 0.05
PAUSE_LINES = 3000


def scenario_pause(reactor: Any, impl: SimpleNamespace, seed: int) -> Any:
    """(c) servers pause after every PAUSE_EVERY lines and resume PAUSE_DELAY s later."""
    from twisted.internet import defer

    from txframe.testing import AccumulatingProtocol

    lines = peer_lines(seed, PAUSE_LINES, 1000)
    payload = b"".join(line + b"\r\n" for line in lines)
    results: dict[str, Any] = {}

    def server_class(base: type, done: Any, key: str) -> type:
        class PausingServer(base):  # type: ignore[valid-type, misc]
            def connectionMade(self) -> None:
                self.got: list[bytes] = []
                self.pauses = 0
                self.paused_at: float | None = None
                self.gaps: list[float] = []
                self.lines_while_paused = 0
                self.data_while_paused = 0
                self.paused_flag_after_pause: list[bool] = []
                self.resuming = False
                self.lines_on_resume = 0  # delivered from the buffer by resumeProducing

            def dataReceived(self, data: bytes) -> Any:
                if data and self.paused_at is not None:
                    self.data_while_paused += 1
                return super().dataReceived(data)

            def lineReceived(self, line: bytes) -> None:
                if self.paused_at is not None:
                    self.lines_while_paused += 1
                if self.resuming:
                    self.lines_on_resume += 1
                self.got.append(line)
                progress[key] = len(self.got)
                if len(self.got) == len(lines):
                    self.transport.loseConnection()
                elif len(self.got) % PAUSE_EVERY == 0:
                    self.pauses += 1
                    self.pauseProducing()
                    self.paused_flag_after_pause.append(bool(self.paused))
                    self.paused_at = reactor.seconds()
                    reactor.callLater(PAUSE_DELAY, self.resume)

            def resume(self) -> None:
                self.gaps.append(reactor.seconds() - self.paused_at)
                self.paused_at = None
                self.resuming = True
                try:
                    self.resumeProducing()
                finally:
                    self.resuming = False

            def connectionLost(self, reason: Any) -> None:
                done.callback(
                    {
                        "lines": len(self.got),
                        "digest": digest(self.got),
                        "pauses": self.pauses,
                        "paused_flags": self.paused_flag_after_pause,
                        "min_gap": min(self.gaps, default=None),
                        "lines_while_paused": self.lines_while_paused,
                        "data_while_paused": self.data_while_paused,
                        "lines_on_resume": self.lines_on_resume,
                        "reason": reason_name(reason),
                    }
                )

        return PausingServer

    waiting = []
    ports = []
    for key, base in (("LineReceiver", impl.LineReceiver), ("LineOnlyReceiver", impl.LineOnlyReceiver)):
        done: defer.Deferred = defer.Deferred()
        port = listen(reactor, server_class(base, done, key))
        ports.append(port)

        @defer.inlineCallbacks
        def one(port: Any = port, done: Any = done, key: str = key) -> Any:
            client = yield connect(reactor, port, AccumulatingProtocol)
            closed = client.closedDeferred = defer.Deferred()
            half = len(payload) // 2
            client.transport.write(payload[:half])
            # the rest arrives while the server is (most likely) paused
            reactor.callLater(0.1, client.transport.write, payload[half:])
            yield closed
            results[key] = {"server": (yield done), "client_reason": reason_name(client.closedReason)}

        waiting.append(one())

    return gather(waiting, ports, results)


def scenario_raw(reactor: Any, impl: SimpleNamespace, seed: int) -> Any:
    """(d) a tiny HTTP: header lines, then a raw body of Content-Length bytes."""
    from twisted.internet import defer

    requests = http_requests(seed)
    stream = b"".join(http_request_bytes(path, body) for path, body in requests)
    server_done: defer.Deferred = defer.Deferred()
    client_done: defer.Deferred = defer.Deferred()

    class TinyHTTPServer(impl.LineReceiver):
        MAX_LENGTH = 4096

        def connectionMade(self) -> None:
            self.headers: list[bytes] = []
            self.length = 0
            self.body: list[bytes] = []
            self.remaining = 0
            self.requests = 0
            self.raw_calls = 0
            self.bad_headers: list[str] = []

        def lineReceived(self, line: bytes) -> None:
            if line:
                if not self.headers and not line.startswith(b"POST /r"):
                    self.bad_headers.append(repr(line[:60]))
                self.headers.append(line)
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    self.length = int(value)
                return
            if self.length == 0:
                self.respond(b"")
            else:
                self.remaining = self.length
                self.body = []
                self.setRawMode()

        def rawDataReceived(self, data: bytes) -> None:
            self.raw_calls += 1
            taken = data[: self.remaining]
            self.body.append(taken)
            self.remaining -= len(taken)
            if self.remaining == 0:
                self.respond(b"".join(self.body))
                self.setLineMode(data[len(taken) :])

        def respond(self, body: bytes) -> None:
            if len(self.headers) != 3:
                self.bad_headers.append(repr(self.headers[:4])[:200])
            path = self.headers[0].split()[1] if self.headers else b"?"
            self.requests += 1
            progress["server_requests"] = self.requests
            self.sendLine(http_reply(path, body))
            self.headers = []
            self.length = 0

        def connectionLost(self, reason: Any) -> None:
            server_done.callback(
                {
                    "requests": self.requests,
                    "raw_calls": self.raw_calls,
                    "bad_headers": self.bad_headers,
                    "line_mode_at_end": self.line_mode,
                    "reason": reason_name(reason),
                }
            )

    class Client(impl.LineOnlyReceiver):
        MAX_LENGTH = 4096

        def connectionMade(self) -> None:
            self.replies: list[bytes] = []
            self.transport.setTcpNoDelay(True)
            send_in_pieces(reactor, self.transport, stream)

        def lineReceived(self, line: bytes) -> None:
            self.replies.append(line)
            progress["client_replies"] = len(self.replies)
            if len(self.replies) == len(requests):
                self.transport.loseConnection()

        def connectionLost(self, reason: Any) -> None:
            client_done.callback(
                {"replies": len(self.replies), "digest": digest(self.replies), "reason": reason_name(reason)}
            )

    port = listen(reactor, TinyHTTPServer)

    @defer.inlineCallbacks
    def run() -> Any:
        yield connect(reactor, port, Client)
        client = yield client_done
        server = yield server_done
        yield port.stopListening()
        return {"server": server, "client": client}

    return run()


TOO_LONG_MAX = 1000


def scenario_too_long(reactor: Any, impl: SimpleNamespace, seed: int) -> Any:
    """(e) a line longer than MAX_LENGTH makes the server drop the connection.

    Four connections: LineReceiver and LineOnlyReceiver servers, each sent the long
    line with its delimiter (and more lines after it) or without any delimiter (the
    client then just waits to be disconnected).
    """
    from twisted.internet import defer

    from txframe.testing import AccumulatingProtocol

    valid, too_long, after = long_line_inputs(seed, TOO_LONG_MAX)
    prefix = b"".join(line + b"\r\n" for line in valid)
    streams = {
        "delimited": prefix + too_long + b"\r\n" + b"".join(line + b"\r\n" for line in after),
        "undelimited": prefix + too_long,
    }
    results: dict[str, Any] = {}

    def server_class(base: type, done: Any) -> type:
        class StrictServer(base):  # type: ignore[valid-type, misc]
            MAX_LENGTH = TOO_LONG_MAX

            def connectionMade(self) -> None:
                self.got: list[bytes] = []
                self.exceeded: list[bytes] = []

            def lineReceived(self, line: bytes) -> None:
                self.got.append(line)

            def lineLengthExceeded(self, line: bytes) -> Any:
                self.exceeded.append(line)
                return super().lineLengthExceeded(line)

            def connectionLost(self, reason: Any) -> None:
                done.callback(
                    {
                        "lines": len(self.got),
                        "digest": digest(self.got),
                        "exceeded": [len(line) for line in self.exceeded],
                        "exceeded_digests": [hashlib.sha256(line).hexdigest() for line in self.exceeded],
                        "reason": reason_name(reason),
                    }
                )

        return StrictServer

    waiting = []
    ports = []
    for base in (impl.LineReceiver, impl.LineOnlyReceiver):
        for variant, stream in streams.items():
            key = f"{base.__bases__[0].__name__}-{variant}"
            done: defer.Deferred = defer.Deferred()
            port = listen(reactor, server_class(base, done))
            ports.append(port)

            @defer.inlineCallbacks
            def one(port: Any = port, done: Any = done, key: str = key, stream: bytes = stream) -> Any:
                client = yield connect(reactor, port, AccumulatingProtocol)
                closed = client.closedDeferred = defer.Deferred()
                client.transport.setTcpNoDelay(True)
                send_in_pieces(reactor, client.transport, stream, (1, 500, 3000, 7))
                yield closed  # the client never closes: the server must
                results[key] = {
                    "server": (yield done),
                    "client": {"closed": client.closed, "reason": reason_name(client.closedReason)},
                }
                progress[key] = "done"

            waiting.append(one())

    return gather(waiting, ports, results)


SCENARIOS: dict[str, Callable[..., Any]] = {
    "echo": scenario_echo,
    "twisted-server": scenario_twisted_server,
    "twisted-client": scenario_twisted_client,
    "pause": scenario_pause,
    "raw": scenario_raw,
    "too-long": scenario_too_long,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("impl", choices=("compiled", "pure"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from twisted.internet import defer, reactor
    import peerlog

    logged_errors = peerlog.logged_errors()

    impl = bind(args.impl)
    output: dict[str, Any] = {
        "impl": impl.name,
        "framer_module": impl.LineReceiver._lineFramer.__module__,
    }

    def finish(result: Any) -> None:
        if isinstance(result, dict):
            output["result"] = result
        else:  # a Failure
            output["error"] = result.getTraceback()
        if reactor.running:
            reactor.stop()

    def watchdog() -> None:
        output["error"] = "timeout"
        output["progress"] = dict(progress)
        reactor.stop()

    timer = reactor.callLater(WATCHDOG, watchdog)

    def start() -> None:
        try:
            d = SCENARIOS[args.scenario](reactor, impl, args.seed)
        except Exception:
            output["error"] = traceback.format_exc()
            reactor.stop()
            return
        defer.maybeDeferred(lambda: d).addBoth(finish)

    reactor.callWhenRunning(start)
    reactor.run()
    if timer.active():
        timer.cancel()
    output["logged_errors"] = logged_errors
    sys.stdout.write(json.dumps(output) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
