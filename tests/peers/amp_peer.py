"""AMP interop over real TCP on 127.0.0.1: a server or a client, Twisted's or txframe's.

Usage::

    python amp_peer.py server SIDE IMPL
    python amp_peer.py client SIDE IMPL --port PORT --locator-port PORT --peer SIDE

*SIDE* is ``twisted`` (``twisted.protocols.amp.AMP``) or ``txframe``
(``txframe.amp.AMP`` bound to the box codec *IMPL*, ``compiled`` or ``pure``, as
``tests/conftest.py`` binds it). Each process runs its own reactor (a reactor cannot
be restarted inside pytest) and both sides import the Commands of
``amp_commands.py``.

The server listens on two ephemeral ports of 127.0.0.1 (an AMP with responders for
every Command, and an AMP dispatching to a separate CommandLocator), prints
``{"port": N, "locator_port": M}`` on a line, and serves until SIGTERM (or its
watchdog, ``SERVER_WATCHDOG`` s); then it prints one JSON object: a record per
connection (keyed by the peer's port: how it ended, what ``stopReceivingBoxes`` was
told, how many commands it ran), and every error Twisted logged.

The client runs every scenario of ``SCENARIOS`` in turn, each on its own
connection(s) and bounded by ``SCENARIO_TIMEOUT``, and prints one JSON object: the
observations per scenario (or its ``error``), and every error logged. The
``raw`` scenario is a misbehaving client (a plain Protocol writing bytes), and
``raw-server`` a misbehaving server answering our client with scripted bytes.
``tests/test_amp_interop.py`` asserts on both outputs.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import os
import random
import sys
import time
import traceback
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import amp_commands as C  # noqa: E402

HOST = "127.0.0.1"
SERVER_WATCHDOG = 28.0
CLIENT_WATCHDOG = 26.0
SCENARIO_TIMEOUT = 12.0
BOX_MODULES = {"compiled": "txframe._boxes_c", "pure": "txframe._boxes_py"}

progress: dict[str, Any] = {}


# -- the AMP class under test --------------------------------------------------------------


def amp_base(side: str, impl: str) -> type:
    """Twisted's AMP, or txframe's bound to the box codec *impl*."""
    if side == "twisted":
        from twisted.protocols import amp

        return amp.AMP
    from txframe import amp as txamp

    boxes = importlib.import_module(BOX_MODULES[impl])
    return type(
        "AMP",
        (txamp.AMP,),
        {
            "_boxFramer": boxes.BoxFramer,
            "_encodeBox": staticmethod(boxes.encode_box),
            "_schemaType": boxes.Schema,
        },
    )


def describe(value: BaseException) -> dict:
    from twisted.protocols import amp

    out: dict[str, Any] = {"type": type(value).__name__, "message": str(value)[:300]}
    if isinstance(value, amp.TooLong):
        out["isKey"] = value.isKey
        out["isLocal"] = value.isLocal
        out["keyName"] = repr(value.keyName)[:60]
    return out


def reason_name(reason: Any) -> str:
    return "None" if reason is None else type(reason.value).__name__


def reason_record(reason: Any) -> dict:
    if reason is None:
        return {"type": "None"}
    # Twisted hands stopReceivingBoxes a bare PeerVerifyError, not a Failure
    return describe(getattr(reason, "value", reason))


# -- the peer (a server, or a client's responders) ------------------------------------------


def make_peer(base: type, reactor: Any, records: dict) -> type:
    """An AMP class (on *base*) with a responder for every Command of amp_commands;
    each connection keeps a record in *records* under its peer's port (its own port,
    for a client). ``dataReceived`` only counts the chunks (so the switch tests can
    tell which bytes came in the chunk of the switch box)."""
    from twisted.internet import defer
    from twisted.protocols import amp
    from twisted.protocols.basic import LineReceiver

    class SwitchedServer(LineReceiver):
        """The line protocol a Switch switches to: greets at once, echoes."""

        def __init__(self, greeting: bytes, outer: Any) -> None:
            self.greeting = greeting
            self.outer = outer
            self.record = outer.record

        def connectionMade(self) -> None:
            self.record["switched"] = True
            self.record["switched_lines"] = 0
            self.switch_chunk = self.outer.chunks
            self.sendLine(self.greeting)

        def dataReceived(self, data: bytes) -> None:
            if "first_data_in_switch_chunk" not in self.record:
                # the bytes that came with the switch box were handed on at once
                self.record["first_data_in_switch_chunk"] = self.outer.chunks == self.switch_chunk
            super().dataReceived(data)

        def lineReceived(self, line: bytes) -> None:
            self.record["switched_lines"] += 1
            if line == b"bye":
                self.sendLine(b"bye")
                self.transport.loseConnection()
            else:
                self.sendLine(b"echo:" + line)

    class Peer(base):  # type: ignore[valid-type, misc]
        commands = 0
        chunks = 0  # dataReceived calls
        by_local_port = False  # records are keyed by the peer's port (a server's)

        def connectionMade(self) -> None:
            super().connectionMade()
            self.hung: list[tuple[int, defer.Deferred]] = []
            self.record: dict[str, Any] = {"commands": 0}
            address = self.transport.getHost() if self.by_local_port else self.transport.getPeer()
            records[str(address.port)] = self.record

        def dataReceived(self, data: bytes) -> None:
            self.chunks += 1
            super().dataReceived(data)

        def stopReceivingBoxes(self, reason: Any) -> None:
            self.record["stop"] = reason_record(reason)
            super().stopReceivingBoxes(reason)

        def connectionLost(self, reason: Any) -> None:
            super().connectionLost(reason)
            self.record["lost"] = reason_name(reason)
            if self.hung:
                reactor.callLater(0.05, self.answer_hung)

        def count(self) -> None:
            self.commands += 1
            self.record["commands"] = self.commands

        def answer_hung(self) -> None:
            """Answer the Hang calls after the connection is gone: nothing may be
            written, and nothing logged."""
            hung, self.hung = self.hung, []
            for n, d in hung:
                d.callback({"n": n})
            self.record["answered_after_loss"] = len(hung)

        # responders

        def echo(self, later: Any = None, **kw: Any) -> Any:
            self.count()
            answer = dict(kw)
            answer["seen"] = C.seen_digest(kw)
            if later:
                d: defer.Deferred = defer.Deferred()
                reactor.callLater(0, d.callback, answer)
                return d
            return answer

        for _command in C.ECHO.values():
            _command.responder(echo)
        del _command

        @C.Stats.responder
        def stats(self) -> dict:
            return {"commands": self.commands}

        @C.Fail.responder
        def fail(self, kind: str) -> Any:
            self.count()
            if kind == "known":
                raise C.KnownError(C.KNOWN_MESSAGE)
            if kind == "known-deferred":
                return later_failure(reactor, C.KnownError(C.KNOWN_MESSAGE))
            if kind == "fatal":
                raise C.FatalError(C.FATAL_MESSAGE)
            if kind == "unknown":
                raise ValueError(C.UNKNOWN_MARKER)
            if kind == "unknown-deferred":
                return later_failure(reactor, ValueError(C.UNKNOWN_MARKER))
            if kind == "remote":
                raise amp.RemoteAmpError(b"CUSTOM", "custom r\u00e9mote")
            if kind == "bad-return":
                return {"wrong": 1}
            if kind == "extra-keys":
                return {"never": 1, "extra": 2}
            return {"never": 0}

        def amp_RAWECHO(self, box_: Any) -> Any:
            """A low-level responder (SimpleStringLocator: ``amp_`` + the name)."""
            self.count()
            return amp.AmpBox(keys=b",".join(sorted(box_)), type=type(box_).__name__.encode())

        @C.Notify.responder
        def notify(self, n: int, text: str) -> dict:
            self.count()
            self.record.setdefault("notified", []).append([n, text])
            return {}

        @C.Reply.responder
        def reply(self, size: int) -> dict:
            self.count()
            return {"data": b"r" * size}

        @C.CallMeBack.responder
        def call_me_back(self) -> Any:
            self.count()
            return self.call_back()

        @defer.inlineCallbacks
        def call_back(self) -> Any:
            calls = [
                (case, expected, settled(self.callRemote(C.ECHO[command], **kw)))
                for case, command, kw, expected in C.callback_cases()
            ]
            failures = []
            for case, expected, d in calls:
                kind, value = yield d
                if kind != "ok":
                    failures.append(f"{case}: {value!r}"[:200])
                    continue
                result = check(value, expected)
                if not result["ok"] or result["seen"] != C.seen_digest(expected).decode():
                    failures.append(f"{case}: {result}"[:200])
            return {"checked": len(calls), "failures": failures[:20]}

        @amp.StartTLS.responder
        def start_tls(self) -> dict:
            self.count()
            from twisted.internet import ssl

            return {"tls_localCertificate": ssl.PrivateCertificate.loadPEM(C.certificate_pem())}

        @C.SwitchMe.responder
        def switch_me(self) -> dict:
            self.count()
            reactor.callLater(0, self.switch_peer)
            return {}

        def switch_peer(self) -> None:
            """Switch the other way round: this side calls Switch and becomes the line
            client, and writes lines right after the switch box."""
            done: defer.Deferred = defer.Deferred()
            factory = _SwitchFactory(done, self)
            d = self.callRemote(C.Switch, factory, greeting=C.GREETING)
            self.transport.write(b"".join(line + b"\r\n" for line in C.EARLY_LINES))
            record = self.record["reverse_switch"] = {}

            def switched(result: Any) -> None:
                record["answer"] = outcome(result)

            def finished(_: Any) -> None:
                record.update(factory.report())

            settled(d).addCallback(switched)
            done.addCallback(finished)

        @C.Slow.responder
        def slow(self, n: int, delay: float) -> Any:
            self.count()
            if delay == 0:
                if n % C.FAIL_EVERY == 0:
                    raise C.KnownError(f"no {n}")
                return {"n": n, "double": 2 * n}
            d: defer.Deferred = defer.Deferred()
            if n % C.FAIL_EVERY == 0:
                reactor.callLater(delay, d.errback, C.KnownError(f"no {n}"))
            else:
                reactor.callLater(delay, d.callback, {"n": n, "double": 2 * n})
            return d

        @C.Hang.responder
        def hang(self, n: int, count: int, abort: bool) -> Any:
            self.count()
            d: defer.Deferred = defer.Deferred()
            self.hung.append((n, d))
            if len(self.hung) == count:
                self.record["dropped"] = "abort" if abort else "close"
                drop = self.transport.abortConnection if abort else self.transport.loseConnection
                reactor.callLater(0.05, drop)
            return d

        @C.Switch.responder
        def switch(self, greeting: bytes) -> Any:
            self.count()
            if greeting == b"refuse":
                raise C.SwitchRefused("refused")
            return SwitchedServer(greeting, self)

    return Peer


def later_failure(reactor: Any, error: Exception) -> Any:
    from twisted.internet import defer

    d: defer.Deferred = defer.Deferred()
    reactor.callLater(0, d.errback, error)
    return d


def make_locator() -> type:
    """A separate CommandLocator (``AMP(locator=...)``) for the echo Commands and
    Stats: txframe's AMP takes Twisted's dispatch path then."""
    from twisted.protocols import amp

    class Locator(amp.CommandLocator):
        commands = 0

        def echo(self, later: Any = None, **kw: Any) -> Any:
            self.commands += 1
            answer = dict(kw)
            answer["seen"] = C.seen_digest(kw)
            return answer

        for _command in C.ECHO.values():
            _command.responder(echo)
        del _command

        @C.Stats.responder
        def stats(self) -> dict:
            return {"commands": self.commands}

    return Locator


def run_server(reactor: Any, side: str, impl: str, output: dict) -> None:
    from twisted.internet import protocol

    from twisted.logger import LogLevel, formatEvent, globalLogPublisher

    records: dict[str, Any] = {}
    output["connections"] = records

    def warned(event: dict) -> None:
        """txframe's warnings about a peer (a limit passed), on its connection's record."""
        if event.get("log_level") == LogLevel.warn and "txframe" in event.get("log_namespace", ""):
            port = str(event.get("peer", "")).rpartition(":")[2]
            records.setdefault(port, {}).setdefault("warnings", []).append(formatEvent(event))

    globalLogPublisher.addObserver(warned)
    base = amp_base(side, impl)
    server = make_peer(base, reactor, records)
    output["box_module"] = box_module(server)
    port = reactor.listenTCP(0, protocol.ServerFactory.forProtocol(server), interface=HOST)
    locator = make_locator()

    class LocatorFactory(protocol.ServerFactory):
        def buildProtocol(self, addr: Any) -> Any:
            proto = base(locator=locator())
            proto.factory = self
            return proto

    locator_port = reactor.listenTCP(0, LocatorFactory(), interface=HOST)
    ports = {"port": port.getHost().port, "locator_port": locator_port.getHost().port}
    sys.stdout.write(json.dumps(ports) + "\n")
    sys.stdout.flush()


def box_module(cls: type) -> str:
    framer = getattr(cls, "_boxFramer", None)
    return "twisted" if framer is None else framer.__module__


# -- the client ------------------------------------------------------------------------------


class Ctx:
    """What every client scenario needs."""

    def __init__(
        self, reactor: Any, side: str, impl: str, port: int, peer: str, locator_port: int
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.locator_port = locator_port
        self.peer = peer
        self.records: dict[str, Any] = {}
        self.client = make_client(make_peer(amp_base(side, impl), reactor, self.records))

    def connect(self, proto: Any, port: int | None = None) -> Any:
        from twisted.internet import endpoints

        endpoint = endpoints.TCP4ClientEndpoint(self.reactor, HOST, port or self.port, timeout=5)
        return endpoints.connectProtocol(endpoint, proto)

    def amp(self, port: int | None = None) -> Any:
        return self.connect(self.client(), port)

    def wait(self, d: Any, seconds: float = 5.0) -> Any:
        return d.addTimeout(seconds, self.reactor)

    def sleep(self, seconds: float) -> Any:
        from twisted.internet import task

        return task.deferLater(self.reactor, seconds, lambda: None)


def make_client(base: type) -> type:
    from twisted.internet import defer

    class Client(base):  # type: ignore[valid-type, misc]
        by_local_port = True

        def connectionMade(self) -> None:
            super().connectionMade()
            self.lost: defer.Deferred = defer.Deferred()
            self.written = 0
            write = self.transport.write

            def counting(data: bytes) -> None:
                self.written += len(data)
                write(data)

            self.transport.write = counting  # counts what reaches the transport

        def connectionLost(self, reason: Any) -> None:
            super().connectionLost(reason)
            self.lost_reason = reason
            self.lost.callback([reason])  # a list: a Failure would errback

    return Client


def attempt(proto: Any, command: Any, *args: Any, **kw: Any) -> tuple[dict | None, Any]:
    """callRemote; (what it raised, None) or (None, its Deferred)."""
    try:
        d = proto.callRemote(command, *args, **kw)
    except Exception as e:
        return {"how": "raised", **describe(e)}, None
    return None, d


def settled(d: Any) -> Any:
    """A Deferred firing with ("ok", result) or ("failed", exception): never fails."""
    return d.addCallbacks(lambda result: ("ok", result), lambda f: ("failed", f.value))


def outcome(pair: tuple) -> dict:
    kind, value = pair
    if kind == "ok":
        return {"how": "ok"}
    return {"how": "failed", **describe(value)}


def after_loss(proto: Any) -> Any:
    """What a callRemote on a lost connection does."""
    from twisted.internet import defer

    raised, d = attempt(proto, C.EchoInteger, value=1)
    if raised is not None:
        return defer.succeed(raised)
    return settled(d).addCallback(outcome)


def check(answer: dict, expected: dict) -> dict:
    got = {key: value for key, value in answer.items() if key != "seen"}
    same = C.canon(got) == C.canon(expected)
    result: dict[str, Any] = {"ok": same, "seen": answer.get("seen", b"").decode()}
    if not same:
        result["got"] = C.canon(got)[:400]
        result["want"] = C.canon(expected)[:400]
    return result


def scenario(function: Callable) -> Callable:
    from twisted.internet import defer

    return defer.inlineCallbacks(function)


@scenario
def sc_echo(ctx: Ctx, port: int | None = None) -> Any:
    """Every echo case, answered at once (a dict) and through a Deferred, pipelined."""
    from twisted.internet import defer

    proto = yield ctx.amp(port)
    cases = C.echo_cases()
    calls = []
    for _, command, kw, _expected in cases:
        for later in (None, True):
            calls.append(proto.callRemote(C.ECHO[command], later=later, **kw))
    answers = yield defer.gatherResults([settled(d) for d in calls])
    results = {}
    for index, (case, _, _, expected) in enumerate(cases):
        pair = {}
        for offset, mode in enumerate(("at-once", "deferred")):
            kind, value = answers[2 * index + offset]
            pair[mode] = check(value, expected) if kind == "ok" else outcome((kind, value))
        results[case] = pair
    stats = yield proto.callRemote(C.Stats)
    proto.transport.loseConnection()
    yield ctx.wait(proto.lost)
    return {"cases": results, "commands": stats["commands"]}


@scenario
def sc_large(ctx: Ctx) -> Any:
    """LargeString / LargeUnicode values up to 10 MiB, one call at a time."""
    proto = yield ctx.amp()
    results = {}
    for case, command, kw, expected in C.large_cases():
        progress["large"] = case
        started = time.monotonic()
        pair = yield settled(proto.callRemote(C.ECHO[command], **kw))
        kind, value = pair
        results[case] = check(value, expected) if kind == "ok" else outcome(pair)
        results[case]["seconds"] = round(time.monotonic() - started, 3)
    stats = yield proto.callRemote(C.Stats)
    proto.transport.loseConnection()
    yield ctx.wait(proto.lost)
    return {"cases": results, "commands": stats["commands"]}


@scenario
def sc_local_errors(ctx: Ctx) -> Any:
    """Calls refused locally: what is raised (or failed), and that nothing is written."""
    proto = yield ctx.amp()
    first = yield proto.callRemote(C.EchoInteger, value=5)
    results = {}
    for case, command, kw in C.local_error_cases():
        before = proto.written
        raised, d = attempt(proto, C.ECHO[command], **kw)
        if raised is None:
            raised = outcome((yield settled(d)))
            raised["how"] = "deferred-" + raised["how"]
        raised["written"] = proto.written - before
        results[case] = raised
    stats = yield proto.callRemote(C.Stats)
    proto.transport.loseConnection()
    yield ctx.wait(proto.lost)
    return {"cases": results, "commands": stats["commands"], "first": first["value"]}


@scenario
def sc_errors(ctx: Ctx) -> Any:
    """Known (mapped), remote-unmapped and unhandled errors keep the connection; fatal
    and unknown ones close it after the answer."""
    out: dict[str, Any] = {}
    proto = yield ctx.amp()
    for kind in ("known", "known-deferred", "remote"):
        out[kind] = outcome((yield settled(proto.callRemote(C.Fail, kind=kind))))
    extra = yield settled(proto.callRemote(C.Fail, kind="extra-keys"))
    out["extra-keys"] = extra[1] if extra[0] == "ok" else outcome(extra)
    out["unhandled"] = outcome((yield settled(proto.callRemote(C.NotThere, x=1))))
    # the low-level API, answered by an amp_RAWECHO method
    raw_answer = yield settled(proto.callRemoteString(b"rawecho", x=b"1", **{"y-z": b""}))
    out["string-command"] = (
        {k.decode(): v.decode() for k, v in raw_answer[1].items() if k != b"type"}
        if raw_answer[0] == "ok"
        else outcome(raw_answer)
    )
    replied = yield settled(proto.callRemote(C.Reply, size=65535))
    out["reply-65535"] = (
        replied[1]["data"] == b"r" * 65535 if replied[0] == "ok" else outcome(replied)
    )
    out["notify"] = [
        repr(proto.callRemote(C.Notify, n=n, text="n\u00e9 %d" % n)) for n in range(3)
    ]
    out["echo-after"] = check((yield proto.callRemote(C.EchoInteger, value=9)), {"value": 9})
    out["commands"] = (yield proto.callRemote(C.Stats))["commands"]
    out["still-open"] = proto.transport is not None and not proto.lost.called
    proto.transport.loseConnection()
    yield ctx.wait(proto.lost)

    closing = {
        "fatal": (C.Fail, {"kind": "fatal"}),
        "unknown": (C.Fail, {"kind": "unknown"}),
        "unknown-deferred": (C.Fail, {"kind": "unknown-deferred"}),
        "bad-return": (C.Fail, {"kind": "bad-return"}),
        "reply-65536": (C.Reply, {"size": 65536}),  # the answer cannot be sent
    }
    for kind, (command, kw) in closing.items():
        proto = yield ctx.amp()
        record = outcome((yield settled(proto.callRemote(command, **kw))))
        [reason] = yield ctx.wait(proto.lost)  # the peer closes: we never do
        record["lost"] = reason_name(reason)
        record["call-after"] = yield after_loss(proto)
        out[kind] = record
    return out


@scenario
def sc_concurrent(ctx: Ctx) -> Any:
    """CONCURRENT_CALLS calls outstanding at once, answered out of order."""
    from twisted.internet import defer

    proto = yield ctx.amp()
    order: list[int] = []
    wrong: list[str] = []
    errors: list[int] = []

    def answered(result: dict, n: int) -> None:
        order.append(n)
        if result != {"n": n, "double": 2 * n}:
            wrong.append(f"{n}: {result!r}"[:200])

    def failed(failure: Any, n: int) -> None:
        order.append(n)
        if failure.check(C.KnownError) and str(failure.value) == f"no {n}":
            errors.append(n)
        else:
            wrong.append(f"{n}: {failure.value!r}"[:200])

    calls = []
    for n in range(C.CONCURRENT_CALLS):
        d = proto.callRemote(C.Slow, n=n, delay=C.slow_delay(n))
        calls.append(d.addCallbacks(answered, failed, callbackArgs=(n,), errbackArgs=(n,)))
    outstanding = len(proto._outstandingRequests)
    yield defer.gatherResults(calls)
    stats = yield proto.callRemote(C.Stats)
    proto.transport.loseConnection()
    yield ctx.wait(proto.lost)
    return {
        "outstanding_at_once": outstanding,
        "answers": len(order),
        "distinct": len(set(order)),
        "in_call_order": order == sorted(order),
        "out_of_place": sum(1 for i, n in enumerate(order) if i != n),
        "known_errors": sorted(errors),
        "wrong": wrong[:10],
        "commands": stats["commands"],
    }


def _connection_loss(abort: bool) -> Callable:
    @scenario
    def run(ctx: Ctx) -> Any:
        from twisted.internet import defer

        proto = yield ctx.amp()
        calls = [
            settled(proto.callRemote(C.Hang, n=n, count=C.HANG_CALLS, abort=abort))
            for n in range(C.HANG_CALLS)
        ]
        results = yield ctx.wait(defer.gatherResults(calls))
        [reason] = yield ctx.wait(proto.lost)
        failures = collections.Counter(
            type(value).__name__ if kind == "failed" else "answered" for kind, value in results
        )
        return {
            "results": dict(failures),
            "lost": reason_name(reason),
            "call-after": (yield after_loss(proto)),
        }

    return run


class _SwitchFactory:
    """A ClientFactory for the calling side of a Switch: its line client writes its
    lines at once, right after the switch, and collects the answers."""

    def __init__(self, done: Any, outer: Any) -> None:
        self.done = done
        self.outer = outer
        self.events: list[str] = []
        self.lines: list[bytes] = []
        self.first_data_in_switch_chunk: bool | None = None

    def report(self) -> dict:
        expected = C.switch_expected()
        got = self.lines
        mismatch = next(
            (i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
            None if len(got) == len(expected) else min(len(got), len(expected)),
        )
        out: dict[str, Any] = {
            "lines": len(got),
            "first_mismatch": mismatch,
            "events": self.events,
            "first_data_in_switch_chunk": self.first_data_in_switch_chunk,
        }
        if mismatch is not None:
            around = got[mismatch : mismatch + 3]
            out["around_mismatch"] = [line.decode("latin-1") for line in around]
        return out

    def buildProtocol(self, addr: Any) -> Any:
        from twisted.protocols.basic import LineReceiver

        factory = self
        self.events.append("buildProtocol")

        class SwitchedClient(LineReceiver):
            def connectionMade(self) -> None:
                self.switch_chunk = factory.outer.chunks
                # written at once, right after the switch
                for line in C.switch_lines():
                    self.sendLine(line)
                self.sendLine(b"bye")

            def dataReceived(self, data: bytes) -> None:
                if factory.first_data_in_switch_chunk is None:
                    # the bytes that came with the answer were handed on at once
                    factory.first_data_in_switch_chunk = factory.outer.chunks == self.switch_chunk
                super().dataReceived(data)

            def lineReceived(self, line: bytes) -> None:
                factory.lines.append(line)

            def connectionLost(self, reason: Any) -> None:
                factory.events.append("inner connectionLost " + reason_name(reason))
                factory.done.callback(None)

        return SwitchedClient()

    def clientConnectionLost(self, connector: Any, reason: Any) -> None:
        self.events.append("clientConnectionLost " + reason_name(reason))

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.events.append("clientConnectionFailed " + reason_name(reason))


@scenario
def sc_switch(ctx: Ctx) -> Any:
    """ProtocolSwitchCommand to a line protocol; lines written right after the switch
    box (before its answer) and right after the switch (both sides) are not lost."""
    from twisted.internet import defer

    out: dict[str, Any] = {}
    proto = yield ctx.amp()
    out["port"] = str(proto.transport.getHost().port)
    proto.transport.setTcpNoDelay(True)
    answer = yield proto.callRemote(C.EchoInteger, value=1)
    done: defer.Deferred = defer.Deferred()
    factory = _SwitchFactory(done, proto)
    d = proto.callRemote(C.Switch, factory, greeting=C.GREETING)
    proto.transport.write(b"".join(line + b"\r\n" for line in C.EARLY_LINES))
    out["answer"] = outcome((yield settled(d)))
    raised, later = attempt(proto, C.EchoInteger, value=2)  # the AMP side is switched
    out["call-after-switch"] = raised if raised is not None else outcome((yield settled(later)))
    yield ctx.wait(done)
    yield ctx.wait(proto.lost)
    out.update(factory.report())
    out["before"] = answer["value"] == 1 and answer["seen"] == C.seen_digest({"value": 1})

    # refused: the AMP connection carries on
    proto = yield ctx.amp()
    done = defer.Deferred()
    factory = _SwitchFactory(done, proto)
    refused = outcome((yield settled(proto.callRemote(C.Switch, factory, greeting=b"refuse"))))
    refused["events"] = factory.events
    refused["echo-after"] = check((yield proto.callRemote(C.EchoInteger, value=3)), {"value": 3})
    refused["commands"] = (yield proto.callRemote(C.Stats))["commands"]
    proto.transport.loseConnection()
    yield ctx.wait(proto.lost)
    out["refused"] = refused
    return out


@scenario
def sc_callback(ctx: Ctx) -> Any:
    """The other side calls every echo case back on us while our call waits."""
    proto = yield ctx.amp()
    port = str(proto.transport.getHost().port)
    answer = yield settled(proto.callRemote(C.CallMeBack))
    out = {"answer": answer[1] if answer[0] == "ok" else outcome(answer)}
    proto.transport.loseConnection()
    yield ctx.wait(proto.lost)
    out["answered_here"] = ctx.records[port]["commands"]
    return out


@scenario
def sc_switch_reverse(ctx: Ctx) -> Any:
    """The other side calls Switch on us (our responder switches to the line server),
    writing lines right after the switch box; we greet at once."""
    proto = yield ctx.amp()
    port = str(proto.transport.getHost().port)
    proto.transport.setTcpNoDelay(True)
    out: dict[str, Any] = {"answer": outcome((yield settled(proto.callRemote(C.SwitchMe))))}
    [reason] = yield ctx.wait(proto.lost)  # our line server closes after "bye"
    out["lost"] = reason_name(reason)
    record = ctx.records[port]
    keys = ("switched", "switched_lines", "first_data_in_switch_chunk", "commands")
    out["here"] = {key: record.get(key) for key in keys}
    out["port"] = port
    return out


@scenario
def sc_mixed(ctx: Ctx) -> Any:
    """Calls of every kind pipelined on one connection (the codec's Schema path, the
    Argument path of LargeString, unanswered ones, errors), answered out of order."""
    from twisted.internet import defer

    proto = yield ctx.amp()
    all_kw = next(kw for case, _, kw, _ in C.echo_cases() if case == "all")
    calls = []
    notified = 0
    for n in range(300):
        kind = n % 6
        if kind == 0:
            calls.append(("slow", n, proto.callRemote(C.Slow, n=n, delay=C.slow_delay(n))))
        elif kind == 1:
            value = C.large_value(65536 + n)
            d = proto.callRemote(C.EchoLargeString, value=value, later=bool(n % 2))
            calls.append(("large", value, d))
        elif kind == 2:
            calls.append(("all", all_kw, proto.callRemote(C.EchoAll, **all_kw)))
        elif kind == 3:
            calls.append(("int", n, proto.callRemote(C.EchoInteger, value=n, later=True)))
        elif kind == 4:
            calls.append(("known", n, proto.callRemote(C.Fail, kind="known")))
        else:
            proto.callRemote(C.Notify, n=n, text="x")
            notified += 1
    results = yield defer.gatherResults([settled(d) for _, _, d in calls])
    wrong = []
    for (kind, detail, _), (how, value) in zip(calls, results):
        if kind == "slow":
            n = detail
            good = (how == "ok" and value == {"n": n, "double": 2 * n}) if n % C.FAIL_EVERY else (
                how == "failed" and isinstance(value, C.KnownError)
            )
        elif kind == "large":
            good = how == "ok" and check(value, {"value": detail})["ok"]
        elif kind == "all":
            good = how == "ok" and check(value, detail)["ok"]
        elif kind == "int":
            good = how == "ok" and value["value"] == detail
        else:
            good = how == "failed" and isinstance(value, C.KnownError)
        if not good:
            wrong.append(f"{kind}: {how} {value!r}"[:200])
    stats = yield proto.callRemote(C.Stats)
    proto.transport.loseConnection()
    yield ctx.wait(proto.lost)
    return {
        "calls": len(calls),
        "notified": notified,
        "wrong": wrong[:10],
        "commands": stats["commands"],
    }


@scenario
def sc_tls(ctx: Ctx) -> Any:
    """StartTLS (no client certificate; the server's self-signed one), with calls
    made while TLS starts (buffered, sent once it has), then calls over TLS."""
    from twisted.internet import defer
    from twisted.internet.interfaces import ISSLTransport
    from twisted.protocols import amp

    proto = yield ctx.amp()
    out: dict[str, Any] = {"tls_before": ISSLTransport.providedBy(proto.transport)}
    before = proto.written
    started = settled(proto.callRemote(amp.StartTLS))
    buffered = [settled(proto.callRemote(C.EchoInteger, value=n)) for n in range(10)]
    out["written_while_starting"] = proto.written - before  # the StartTLS box only
    out["start"] = outcome((yield started))
    answers = yield defer.gatherResults(buffered)
    out["buffered"] = [check(value, {"value": n})["ok"] if how == "ok" else outcome((how, value))
                       for n, (how, value) in enumerate(answers)]
    out["tls_after"] = ISSLTransport.providedBy(proto.transport)
    peer = proto.peerCertificate
    out["peer_common_name"] = None if peer is None else peer.getSubject().commonName.decode()
    value = C.large_value(C.MIB)
    answer = yield proto.callRemote(C.EchoLargeString, value=value)
    out["large"] = check(answer, {"value": value})["ok"]
    kw = next(kw for case, _, kw, _ in C.echo_cases() if case == "all")
    out["all"] = check((yield proto.callRemote(C.EchoAll, **kw)), kw)["ok"]
    out["commands"] = (yield proto.callRemote(C.Stats))["commands"]
    proto.transport.loseConnection()
    yield ctx.wait(proto.lost)
    return out


@scenario
def sc_large_over_limit(ctx: Ctx) -> Any:
    """A LargeString of OVER_LIMIT bytes: a txframe receiver (of the request, or of
    the answer) drops the connection."""
    proto = yield ctx.amp()
    value = b"o" * C.OVER_LIMIT
    out = {"call": outcome((yield settled(proto.callRemote(C.EchoLargeString, value=value))))}
    [reason] = yield ctx.wait(proto.lost, 10.0)
    out["lost"] = reason_name(reason)
    # the server still serves
    proto = yield ctx.amp()
    out["afterwards"] = check((yield proto.callRemote(C.EchoInteger, value=11)), {"value": 11})
    proto.transport.loseConnection()
    yield ctx.wait(proto.lost)
    return out


# -- the misbehaving peer ----------------------------------------------------------------


def box(**items: Any) -> bytes:
    """A box written by Twisted's own AmpBox (keys given as keyword names)."""
    from twisted.protocols import amp

    return amp.AmpBox({key.encode(): value for key, value in items.items()}).serialize()


def raw_pair(key: bytes, value: bytes) -> bytes:
    return len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value


ECHO_BOX = box(_command=b"EchoInteger", _ask=b"1", value=b"12345")


def raw_payloads(peer: str) -> dict[str, tuple[bytes, dict]]:
    """name -> (bytes to write, options)."""
    rng = random.Random(777)
    garbage = bytearray(rng.randbytes(4096))
    garbage[0] |= 0x80  # the first key length is then over 255
    payloads = {
        "raw-valid-bytewise": (
            ECHO_BOX + box(_command=b"Stats", _ask=b"2"),
            {"pieces": 1, "until_boxes": 2},
        ),
        "raw-key-256": (ECHO_BOX + raw_pair(b"k" * 256, b"v") + b"\x00\x00", {}),
        "raw-key-65535": (ECHO_BOX + b"\xff\xff", {}),
        "raw-http": (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", {}),
        "raw-garbage": (bytes(garbage), {}),
        "raw-empty-box": (ECHO_BOX + b"\x00\x00", {}),
        "raw-no-command": (ECHO_BOX + box(foo=b"bar"), {}),
        "raw-unknown-answer": (box(_answer=b"zzz", value=b"1"), {}),
        "raw-bad-argument": (box(_command=b"EchoInteger", _ask=b"1", value=b"abc"), {}),
        "raw-missing-argument": (box(_command=b"EchoInteger", _ask=b"1"), {}),
        "raw-unhandled-then-valid": (
            box(_command=b"Nope", _ask=b"7") + box(_command=b"EchoInteger", _ask=b"8", value=b"8"),
            {"until_boxes": 2},
        ),
        "raw-partial-idle": (ECHO_BOX + raw_pair(b"_command", b"EchoInteger")[:-3], {"idle": True}),
        "raw-odd-tag": (
            box(_command=b"EchoInteger", _ask=b"\x00\xff odd tag", value=b"-0"),
            {"until_boxes": 1},
        ),
        "raw-extra-keys": (
            box(_command=b"EchoInteger", _ask=b"x", value=b"7", extra=b"ignored", zzz=b""),
            {"until_boxes": 1},
        ),
        "raw-duplicate-key": (
            raw_pair(b"_command", b"EchoInteger")
            + raw_pair(b"_ask", b"d")
            + raw_pair(b"value", b"1")
            + raw_pair(b"value", b"2")  # the last one wins (a dict)
            + b"\x00\x00",
            {"until_boxes": 1},
        ),
        "raw-unknown-error": (
            box(_error=b"zzz", _error_code=b"KNOWN", _error_description=b"d"),
            {},
        ),
        "raw-binary-command": (box(_command=b"\xff\xfe\x00", _ask=b"b"), {"until_boxes": 1}),
        "raw-no-ask": (
            box(_command=b"EchoInteger", value=b"1") + box(_command=b"Stats", _ask=b"s"),
            {"until_boxes": 1},
        ),
        "raw-no-ask-failing": (box(_command=b"Fail", kind=b"known"), {}),
        "raw-pipelined": (
            b"".join(
                box(_command=b"EchoInteger", _ask=b"%x" % n, value=b"%d" % n) for n in range(1, 1001)
            ),
            {"until_boxes": 1000},
        ),
    }
    if peer == "txframe":
        from txframe import amp as txamp
        from txframe._boxes_py import PAIR_OVERHEAD

        limit = txamp.BinaryBoxProtocol.MAX_BOX_LENGTH
        items = {b"_command": b"Stats", b"_ask": b"1"}
        at_limit = C.raw_box_padded(items, limit, PAIR_OVERHEAD)
        payloads["raw-box-at-limit"] = (at_limit, {"until_boxes": 1})
        over_limit = C.raw_box_padded(items, limit + 1, PAIR_OVERHEAD)
        payloads["raw-box-over-limit"] = (over_limit, {"wait": 10.0})
    if peer == "txframe":  # Twisted buffers a box that never ends without limit
        pairs = []
        size = 0
        number = 0
        while size <= 17 * C.MIB:
            pair = raw_pair(b"k%06d" % number, b"v" * 65535)
            pairs.append(pair)
            size += len(pair)
            number += 1
        payloads["raw-never-ending"] = (b"".join(pairs), {"wait": 10.0})
    return payloads


def summarize(data: bytes) -> Any:
    from twisted.protocols import amp

    try:
        boxes = amp.parseString(data)
    except Exception as e:
        return {"unparsable": describe(e)}
    return [
        {k.decode("latin-1"): v.decode("latin-1")[:80] for k, v in sorted(b.items())} for b in boxes
    ]


@scenario
def sc_raw(ctx: Ctx) -> Any:
    """Bytes no AMP peer should send; then a fresh AMP connection works."""
    from twisted.internet import defer, protocol

    out: dict[str, Any] = {}

    class Raw(protocol.Protocol):
        def __init__(self, until_boxes: int | None) -> None:
            self.data = bytearray()
            self.closed: defer.Deferred = defer.Deferred()
            self.until_boxes = until_boxes
            self.enough: defer.Deferred = defer.Deferred()

        def dataReceived(self, data: bytes) -> None:
            self.data += data
            if self.until_boxes and not self.enough.called:
                if self.data.count(b"\x00\x00") >= self.until_boxes:  # cheap first
                    boxes = summarize(bytes(self.data))
                    if isinstance(boxes, list) and len(boxes) >= self.until_boxes:
                        self.enough.callback(None)

        def connectionLost(self, reason: Any) -> None:
            self.reason = reason
            self.closed.callback(None)
            if not self.enough.called:
                self.enough.callback(None)

    for name, (payload, options) in raw_payloads(ctx.peer).items():
        progress["raw"] = name
        proto = yield ctx.connect(Raw(options.get("until_boxes")))
        record: dict[str, Any] = {"port": str(proto.transport.getHost().port)}
        proto.transport.setTcpNoDelay(True)
        pieces = options.get("pieces")
        if pieces:
            for start in range(0, len(payload), pieces):
                proto.transport.write(payload[start : start + pieces])
                yield ctx.sleep(0)
        else:
            proto.transport.write(payload)
        if options.get("idle"):
            yield ctx.sleep(0.3)
            record["open_while_idle"] = not proto.closed.called
            # meanwhile the server serves another connection
            other = yield ctx.amp()
            answer = yield other.callRemote(C.EchoInteger, value=4)
            record["other_connection"] = check(answer, {"value": 4})
            other.transport.loseConnection()
            yield ctx.wait(other.lost)
            record["open_after_other"] = not proto.closed.called
        elif options.get("until_boxes"):
            yield ctx.wait(proto.enough, 5.0)
        else:
            try:
                yield ctx.wait(proto.closed, options.get("wait", 5.0))
            except defer.TimeoutError:
                pass
        record["closed_by"] = "server" if proto.closed.called else "client"
        if not proto.closed.called:
            proto.transport.loseConnection()
            yield ctx.wait(proto.closed)
        record["reason"] = reason_name(proto.reason)
        replies = summarize(bytes(proto.data))
        record["reply_count"] = len(replies) if isinstance(replies, list) else None
        record["replies_digest"] = C.seen_digest({"replies": json.dumps(replies)}).decode()
        record["replies"] = replies[:3] if isinstance(replies, list) else replies
        out[name] = record

    # and the server still serves
    proto = yield ctx.amp()
    kw = next(kw for case, _, kw, _ in C.echo_cases() if case == "all")
    out["afterwards"] = check((yield proto.callRemote(C.EchoAll, **kw)), kw)
    proto.transport.loseConnection()
    yield ctx.wait(proto.lost)
    return out


def _answer(box_: Any, **items: bytes) -> bytes:
    return box(_answer=box_[b"_ask"], **items)


def _error(box_: Any, code: bytes, description: bytes) -> bytes:
    return box(_error=box_[b"_ask"], _error_code=code, _error_description=description)


def _echoed(box_: Any) -> bytes:
    """A proper answer to an EchoInteger box."""
    return _answer(box_, value=box_[b"value"], seen=C.seen_digest({"value": int(box_[b"value"])}))


# name -> (the calls: (command, arguments) pairs, sent at once; the raw server's
# script: the boxes received so far -> bytes to write, a list of pieces to write one
# per reactor turn, or "close")
RAW_SERVER_SCRIPTS: dict[str, tuple[list, Callable]] = {
    "answer-wrong-type": (
        [(C.EchoInteger, {"value": 1}), (C.EchoInteger, {"value": 2})],
        lambda boxes: (
            _answer(boxes[-1], value=b"abc", seen=b"") if len(boxes) == 1 else _echoed(boxes[-1])
        ),
    ),
    "answer-missing-key": (
        [(C.EchoInteger, {"value": 1}), (C.EchoInteger, {"value": 2})],
        lambda boxes: _answer(boxes[-1], seen=b"") if len(boxes) == 1 else _echoed(boxes[-1]),
    ),
    "answer-extra-keys": (
        [(C.EchoInteger, {"value": 1})],
        lambda boxes: _answer(boxes[-1], value=b"1", seen=b"s", extra=b"x", zz=b""),
    ),
    "error-known-bad-utf8": (
        [(C.Fail, {"kind": "known"}), (C.EchoInteger, {"value": 2})],
        lambda boxes: (
            _error(boxes[-1], b"KNOWN", b"\xff\xfe bad \xe2\x82")
            if len(boxes) == 1
            else _echoed(boxes[-1])
        ),
    ),
    "error-unknown-code": (
        [(C.Fail, {"kind": "known"}), (C.EchoInteger, {"value": 2})],
        lambda boxes: (
            _error(boxes[-1], b"WHAT", b"what") if len(boxes) == 1 else _echoed(boxes[-1])
        ),
    ),
    "error-unhandled-code": (
        [(C.EchoInteger, {"value": 1}), (C.EchoInteger, {"value": 2})],
        lambda boxes: (
            _error(boxes[-1], b"UNHANDLED", b"no") if len(boxes) == 1 else _echoed(boxes[-1])
        ),
    ),
    "error-fatal-code-left-open": (
        [(C.Fail, {"kind": "fatal"}), (C.EchoInteger, {"value": 2})],
        lambda boxes: _error(boxes[-1], b"FATAL", b"f") if len(boxes) == 1 else _echoed(boxes[-1]),
    ),
    "error-missing-code": (
        [(C.Fail, {"kind": "known"})],
        lambda boxes: box(_error=boxes[-1][b"_ask"], _error_description=b"d"),
    ),
    "answers-reversed": (
        [(C.EchoInteger, {"value": n}) for n in range(1, 4)],
        lambda boxes: b"".join(_echoed(b) for b in reversed(boxes)) if len(boxes) == 3 else b"",
    ),
    "answer-bytewise": (
        [(C.EchoInteger, {"value": 1})],
        lambda boxes: [bytes([byte]) for byte in _echoed(boxes[-1])],
    ),
    "answer-unknown-tag": (
        [(C.EchoInteger, {"value": 1})],
        lambda boxes: box(_answer=b"zzzz", value=b"1", seen=b""),
    ),
    "key-too-long": (
        [(C.EchoInteger, {"value": 1})],
        lambda boxes: raw_pair(b"k" * 256, b"v"),
    ),
    "empty-box": (
        [(C.EchoInteger, {"value": 1})],
        lambda boxes: b"\x00\x00",
    ),
    "close-mid-box": (
        [(C.EchoInteger, {"value": 1})],
        lambda boxes: [_echoed(boxes[-1])[:9], "close"],
    ),
}


# Twisted pops the call before it reads the error code: the call is never answered
RAW_SERVER_HANGS = {"error-missing-code"}


@scenario
def sc_raw_server(ctx: Ctx) -> Any:
    """Our client against a misbehaving server (a plain Protocol answering scripted
    bytes, in this process): what each call gets, and whether the connection lives."""
    from twisted.internet import defer, protocol
    from twisted.protocols import amp

    out: dict[str, Any] = {}

    class RawServer(protocol.Protocol):
        def connectionMade(self) -> None:
            self.data = b""
            self.boxes: list = []

        def dataReceived(self, data: bytes) -> None:
            self.data += data
            boxes = amp.parseString(self.data)
            for box_ in boxes[len(self.boxes) :]:
                self.boxes.append(box_)
                self.play(self.factory.script(self.boxes))

        def play(self, action: Any) -> None:
            if isinstance(action, bytes):
                self.transport.write(action)
                return
            pieces = list(action)

            def step() -> None:
                if not pieces or self.transport.disconnecting:
                    return
                piece = pieces.pop(0)
                if piece == "close":
                    self.transport.loseConnection()
                    return
                self.transport.write(piece)
                ctx.reactor.callLater(0, step)

            step()

    for name, (calls, script) in RAW_SERVER_SCRIPTS.items():
        progress["raw-server"] = name
        factory = protocol.ServerFactory.forProtocol(RawServer)
        factory.script = script
        port = ctx.reactor.listenTCP(0, factory, interface=HOST)
        try:
            endpoint_port = port.getHost().port
            from twisted.internet import endpoints

            endpoint = endpoints.TCP4ClientEndpoint(ctx.reactor, HOST, endpoint_port, timeout=5)
            proto = yield endpoints.connectProtocol(endpoint, ctx.client())
            proto.transport.setTcpNoDelay(True)
            pending = [settled(proto.callRemote(command, **kw)) for command, kw in calls]
            record: dict[str, Any] = {"calls": []}
            if name in RAW_SERVER_HANGS:
                # the call is never answered (Twisted's behaviour, kept): wait for the loss
                yield ctx.wait(proto.lost)
                yield ctx.sleep(0.05)
                record["calls"] = [outcome(d.result) if d.called else "pending" for d in pending]
                for d in pending:
                    d.cancel()
                    d.addErrback(lambda _: None)
            else:
                results = yield ctx.wait(defer.gatherResults(pending), 5.0)
                for how, value in results:
                    record["calls"].append(
                        {"how": "ok", **{k: C.canon(v)[:80] for k, v in value.items()}}
                        if how == "ok"
                        else outcome((how, value))
                    )
            yield ctx.sleep(0.01)  # a connection being dropped is gone by now
            record["open"] = not proto.lost.called
            if not proto.lost.called:
                proto.transport.loseConnection()
            yield ctx.wait(proto.lost)
            record["lost"] = reason_name(proto.lost_reason)
            out[name] = record
        finally:
            yield port.stopListening()
    return out


SCENARIOS: dict[str, Callable] = {
    "echo": sc_echo,
    "echo-locator": lambda ctx: sc_echo(ctx, ctx.locator_port),
    "large": sc_large,
    "local-errors": sc_local_errors,
    "errors": sc_errors,
    "concurrent": sc_concurrent,
    "connection-loss-close": _connection_loss(False),
    "connection-loss-abort": _connection_loss(True),
    "switch": sc_switch,
    "switch-reverse": sc_switch_reverse,
    "callback": sc_callback,
    "mixed": sc_mixed,
    "large-over-limit": sc_large_over_limit,
    "tls": sc_tls,
    "raw": sc_raw,
    "raw-server": sc_raw_server,
}


def run_client(reactor: Any, ctx: Ctx, output: dict) -> Any:
    from twisted.internet import defer

    results: dict[str, Any] = {}
    output["results"] = results

    @defer.inlineCallbacks
    def run() -> Any:
        for name, function in SCENARIOS.items():
            progress["scenario"] = name
            started = time.monotonic()
            try:
                results[name] = yield ctx.wait(function(ctx), SCENARIO_TIMEOUT)
            except Exception:
                results[name] = {
                    "error": traceback.format_exc()[-3000:],
                    "progress": dict(progress),
                }
            results[name]["_seconds"] = round(time.monotonic() - started, 3)

    return run()


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("side", choices=("twisted", "txframe"))
    parser.add_argument("impl", choices=("compiled", "pure"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--locator-port", type=int)
    parser.add_argument("--peer", choices=("twisted", "txframe"))
    args = parser.parse_args(argv)

    from twisted.internet import reactor
    import peerlog

    logged_errors = peerlog.logged_errors(4000)
    output: dict[str, Any] = {"role": args.role, "side": args.side, "impl": args.impl}

    def watchdog() -> None:
        output["error"] = "timeout"
        output["progress"] = dict(progress)
        reactor.stop()

    limit = SERVER_WATCHDOG if args.role == "server" else CLIENT_WATCHDOG
    timer = reactor.callLater(limit, watchdog)

    def start() -> None:
        try:
            if args.role == "server":
                run_server(reactor, args.side, args.impl, output)
                return
            ctx = Ctx(reactor, args.side, args.impl, args.port, args.peer, args.locator_port)
            output["box_module"] = box_module(ctx.client)
            d = run_client(reactor, ctx, output)
        except Exception:
            output["error"] = traceback.format_exc()
            reactor.stop()
            return

        def finish(result: Any) -> None:
            if result is not None:  # a Failure
                output["error"] = result.getTraceback()
            if reactor.running:
                reactor.stop()

        d.addBoth(finish)

    reactor.callWhenRunning(start)
    reactor.run()  # a server stops on SIGTERM
    if timer.active():
        timer.cancel()
    output["logged_errors"] = logged_errors
    sys.stdout.write(json.dumps(output) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
