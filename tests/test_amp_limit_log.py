"""An AMP peer that passes a limit is dropped with one warning in the receiver's log.

A box over ``MAX_BOX_LENGTH``, or a key over 255 bytes, used to drop the connection
with nothing logged on the receiving side (the sender saw a bare ``ConnectionDone``).
Now the receiver logs one warning naming the peer, the limit and what arrived, and the
sender's calls still fail with Twisted's types. Client and server talk over Twisted's
loopback transport (``twisted.test.iosim``: addresses, buffering and disconnection as
TCP), on both implementations, with txframe's and Twisted's AMP as the sender; a box
exactly at the limit is answered, one byte more is not.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.logger import LogLevel, globalLogPublisher
from twisted.protocols import amp as TW
from twisted.python.failure import Failure
from twisted.test import iosim

#: A small limit, so the boxes are small.
LIMIT = 2000
#: What each key/value pair counts beyond its bytes (the README's rule).
PAIR = 2 + 2 + 64


class Echo(TW.Command):
    arguments = [(b"value", TW.String())]
    response = [(b"length", TW.Integer())]


def box_size(box: dict[bytes, bytes]) -> int:
    return sum(len(key) + len(value) + PAIR for key, value in box.items())


SERVER = IPv4Address("TCP", "127.0.0.1", 7001)
CLIENT = IPv4Address("TCP", "127.0.0.1", 54321)


def connect(server: type, client: type) -> tuple[Any, Any, Any]:
    """(client, server, pump) over iosim's loopback, with TCP addresses."""
    return iosim.connectedServerAndClient(
        server, client,
        clientTransportFactory=lambda p: iosim.FakeTransport(p, False, CLIENT, SERVER),
        serverTransportFactory=lambda p: iosim.FakeTransport(p, True, SERVER, CLIENT),
    )


def value_at_limit() -> int:
    """The length of ``value`` that makes the first Echo call's box LIMIT bytes."""
    fixed = box_size({b"_command": b"Echo", b"_ask": b"1", b"value": b""})
    return LIMIT - fixed


@pytest.fixture
def warnings():
    """The warnings txframe.amp logs while the test runs."""
    seen: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "txframe.amp" and event.get("log_level") == LogLevel.warn:
            seen.append(event)

    globalLogPublisher.addObserver(observe)
    yield seen
    globalLogPublisher.removeObserver(observe)


def server_class(impl: Any) -> type:
    class Server(impl.AMP):
        MAX_BOX_LENGTH = LIMIT
        stopped: Failure | None = None

        @Echo.responder
        def echo(self, value: bytes) -> dict[str, int]:
            return {"length": len(value)}

        def stopReceivingBoxes(self, reason: Failure) -> None:
            self.stopped = reason
            super().stopReceivingBoxes(reason)

    return Server


def call(impl: Any, sender: type, value: bytes) -> tuple[Any, Any, list[Any]]:
    """Connect *sender* to a limited server, call Echo(value); (server, client
    transport's peer name, outcome: [result] or [Failure])."""
    client, server, pump = connect(server_class(impl), sender)
    outcome: list[Any] = []
    client.callRemote(Echo, value=value).addBoth(outcome.append)
    pump.flush()
    return server, f"{CLIENT.host}:{CLIENT.port}", outcome


def message(event: dict[str, Any]) -> str:
    from twisted.logger import formatEvent

    return formatEvent(event)


SENDERS = {"twisted-sender": TW.AMP, "txframe-sender": None}


@pytest.mark.parametrize("sender_name", SENDERS)
def test_a_box_at_the_limit_is_answered(impl, sender_name, warnings):
    sender = SENDERS[sender_name] or impl.AMP
    server, _, outcome = call(impl, sender, b"v" * value_at_limit())
    assert outcome == [{"length": value_at_limit()}]
    assert warnings == []
    assert server.stopped is None


@pytest.mark.parametrize("sender_name", SENDERS)
def test_one_byte_over_the_limit_drops_with_one_warning(impl, sender_name, warnings):
    sender = SENDERS[sender_name] or impl.AMP
    server, peer, outcome = call(impl, sender, b"v" * (value_at_limit() + 1))
    # the sender: Twisted's type, as when a Twisted receiver closes the connection
    [failure] = outcome
    assert isinstance(failure, Failure) and failure.type is ConnectionDone
    # the receiver: TooLong (not a key), and one warning that says who, what and why
    assert server.stopped.check(TW.TooLong)
    assert (server.stopped.value.isKey, server.stopped.value.isLocal) == (False, False)
    assert len(warnings) == 1, [message(event) for event in warnings]
    text = message(warnings[0])
    assert peer in text
    assert f"MAX_BOX_LENGTH ({LIMIT} bytes)" in text
    assert f"{LIMIT + 1} bytes so far" in text
    assert (warnings[0]["peer"], warnings[0]["limit"], warnings[0]["length"]) == (peer, LIMIT, LIMIT + 1)


class Raw(Protocol):
    """Writes bytes no AMP peer should, once connected."""

    payload = b""

    def connectionMade(self) -> None:
        self.transport.write(self.payload)


@pytest.mark.parametrize("key_length", [256, 65535])
@pytest.mark.parametrize("then", [b"", b"\x00\x05hello" * 1000])
def test_a_key_over_255_bytes_drops_with_one_warning(impl, key_length, then, warnings):
    sender = type("RawKey", (Raw,), {"payload": key_length.to_bytes(2, "big") + b"k" * key_length + then})
    client, server, pump = connect(server_class(impl), sender)
    pump.flush()
    assert server.stopped.check(TW.TooLong) and server.stopped.value.isKey
    assert len(warnings) == 1, [message(event) for event in warnings]
    text = message(warnings[0])
    assert "127.0.0.1:54321" in text  # the client's address, as the server sees it
    assert f"a key of {key_length} bytes" in text and "limit of 255 bytes" in text


def test_a_box_that_never_ends_logs_once(impl, warnings):
    """Data goes on arriving after the limit (the connection is not closed yet): still
    one warning."""
    pair = b"\x00\x03key" + b"\x00\x10" + b"v" * 16
    client, server, pump = connect(server_class(impl), Raw)
    for _ in range(3):
        for _ in range(LIMIT // len(pair) + 5):
            server.dataReceived(pair)
    pump.flush()
    assert server.stopped.check(TW.TooLong)
    assert len(warnings) == 1
