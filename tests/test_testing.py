"""txframe.testing: AccumulatingProtocol (side by side with Twisted's), chunks, deliver."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, error, protocol
from twisted.internet import testing as twisted_testing
from twisted.internet.testing import StringTransport
from twisted.protocols import basic as twisted_basic
from twisted.python import failure

from txframe import testing
from txframe.testing import AccumulatingProtocol, chunks, deliver

TwistedAccumulatingProtocol = twisted_testing.AccumulatingProtocol
BOTH = pytest.mark.parametrize(
    "cls", [AccumulatingProtocol, TwistedAccumulatingProtocol], ids=["txframe", "twisted"]
)


def lost(reason_type=error.ConnectionDone):
    return failure.Failure(reason_type())


# -- AccumulatingProtocol: the API, on both classes ------------------------------------


def test_exports():
    import twisted.internet.testing

    # txframe's, then the rest of Twisted's module's (tests/test_names.py checks them)
    assert testing.__all__[:3] == ["AccumulatingProtocol", "chunks", "deliver"]
    assert set(testing.__all__[3:]) == set(twisted.internet.testing.__all__) - {"AccumulatingProtocol"}
    assert issubclass(AccumulatingProtocol, protocol.Protocol)


@BOTH
def test_initial_state(cls):
    proto = cls()
    assert proto.made == 0
    assert proto.closed == 0
    assert proto.data == b""
    assert type(proto.data) is bytes
    assert proto.closedReason is None
    assert proto.closedDeferred is None
    assert proto.factory is None
    assert proto.transport is None


@BOTH
def test_made_without_factory(cls):
    proto = cls()
    proto.makeConnection(StringTransport())
    assert proto.made == 1
    assert proto.closed == 0


@BOTH
def test_made_fires_factory_deferred_once(cls):
    factory = protocol.Factory.forProtocol(cls)
    made = factory.protocolConnectionMade = defer.Deferred()
    fired = []
    made.addCallback(fired.append)
    proto = factory.buildProtocol(None)
    assert proto.factory is factory
    assert fired == []
    proto.makeConnection(StringTransport())
    assert fired == [proto]
    assert factory.protocolConnectionMade is None
    # a second protocol built by the factory finds nothing to fire
    other = factory.buildProtocol(None)
    other.makeConnection(StringTransport())
    assert other.made == 1
    assert fired == [proto]


@BOTH
def test_factory_deferred_none(cls):
    factory = protocol.Factory.forProtocol(cls)
    factory.protocolConnectionMade = None
    proto = factory.buildProtocol(None)
    proto.makeConnection(StringTransport())
    assert proto.made == 1
    assert factory.protocolConnectionMade is None


@BOTH
def test_factory_deferred_reset_before_firing(cls):
    """The attribute is None while the callbacks run, so a callback can re-arm it."""
    factory = protocol.Factory.forProtocol(cls)
    seen = []
    rearmed = defer.Deferred()

    def callback(proto):
        seen.append(factory.protocolConnectionMade)
        factory.protocolConnectionMade = rearmed

    factory.protocolConnectionMade = defer.Deferred().addCallback(callback)
    factory.buildProtocol(None).makeConnection(StringTransport())
    assert seen == [None]
    assert factory.protocolConnectionMade is rearmed
    assert not rearmed.called


@BOTH
def test_data_accumulates(cls):
    proto = cls()
    proto.dataReceived(b"abc")
    assert proto.data == b"abc"
    proto.dataReceived(b"")
    proto.dataReceived(b"\x00\r\n")
    assert proto.data == b"abc\x00\r\n"
    assert type(proto.data) is bytes


@BOTH
def test_data_assignable(cls):
    proto = cls()
    proto.dataReceived(b"first")
    proto.data = b""
    assert proto.data == b""
    proto.dataReceived(b"second")
    assert proto.data == b"second"
    proto.data = b"pre-"
    proto.dataReceived(b"third")
    assert proto.data == b"pre-third"


@BOTH
def test_data_many_chunks_with_reads_and_resets(cls):
    rng = random.Random(7)
    proto = cls()
    expected = b""
    for index in range(5000):
        chunk = rng.randbytes(rng.randint(0, 40))
        proto.dataReceived(chunk)
        expected += chunk
        if index % 997 == 0:
            assert proto.data == expected
        if index == 2500:
            proto.data = b""
            expected = b""
    assert proto.data == expected
    assert len(expected) > 40_000


@BOTH
def test_instances_do_not_share_data(cls):
    first, second = cls(), cls()
    first.dataReceived(b"one")
    assert second.data == b""
    second.dataReceived(b"two")
    assert (first.data, second.data) == (b"one", b"two")


@BOTH
def test_data_is_a_bytes_copy(cls):
    """Twisted's keeps bytes: a bytearray passed in (and reused by the caller) is
    neither returned nor aliased."""
    proto = cls()
    buffer = bytearray(b"ab")
    proto.dataReceived(buffer)
    buffer[0:2] = b"zz"
    assert proto.data == b"ab"
    assert type(proto.data) is bytes
    proto.dataReceived(memoryview(b"cd"))
    assert proto.data == b"abcd"
    assert type(proto.data) is bytes


@BOTH
def test_connection_lost(cls):
    proto = cls()
    proto.makeConnection(StringTransport())
    reason = lost()
    proto.connectionLost(reason)
    assert proto.closed == 1
    assert proto.closedReason is reason


@BOTH
def test_connection_lost_default_reason(cls):
    proto = cls()
    proto.connectionLost()
    assert proto.closed == 1
    assert proto.closedReason is None


@BOTH
def test_closed_deferred_fired_with_none_and_reset(cls):
    proto = cls()
    closed = proto.closedDeferred = defer.Deferred()
    results = []
    closed.addCallback(results.append)
    proto.connectionLost(lost())
    assert results == [None]
    assert proto.closedDeferred is None
    # a second connectionLost does not fire it again (it would raise AlreadyCalled)
    reason = lost(error.ConnectionLost)
    proto.connectionLost(reason)
    assert results == [None]
    assert proto.closedReason is reason


@BOTH
def test_closed_deferred_reset_before_firing(cls):
    proto = cls()
    seen = []
    rearmed = defer.Deferred()

    def callback(result):
        seen.append((result, proto.closedDeferred, proto.closed))
        proto.closedDeferred = rearmed

    proto.closedDeferred = defer.Deferred().addCallback(callback)
    reason = lost()
    proto.connectionLost(reason)
    assert seen == [(None, None, 1)]
    assert proto.closedDeferred is rearmed
    assert not rearmed.called


@BOTH
def test_data_survives_connection_lost(cls):
    proto = cls()
    proto.makeConnection(StringTransport())
    proto.dataReceived(b"kept")
    proto.connectionLost(lost())
    assert proto.data == b"kept"
    proto.dataReceived(b"!")
    assert proto.data == b"kept!"


# -- side by side on the same event sequences --------------------------------------------


def run_events(cls, events, read_always=True):
    """Apply *events* to a fresh *cls* protocol; return a snapshot after each one
    (with ``data`` in it after each, or only after "read", "set" and "lost")."""
    factory = protocol.Factory.forProtocol(cls)
    factory.protocolConnectionMade = None
    proto = factory.buildProtocol(None)
    reasons = {}
    fired = []
    snapshots = []
    for event in events:
        kind = event[0]
        if kind == "arm-made":
            factory.protocolConnectionMade = defer.Deferred().addCallback(
                lambda p: fired.append(("made", p is proto))
            )
        elif kind == "arm-closed":
            proto.closedDeferred = defer.Deferred().addCallback(
                lambda r: fired.append(("closed", r))
            )
        elif kind == "made":
            proto.makeConnection(StringTransport())
        elif kind == "data":
            proto.dataReceived(event[1])
        elif kind == "set":
            proto.data = event[1]
        elif kind == "read":
            pass  # the snapshot reads .data
        elif kind == "lost":
            reasons[len(snapshots)] = reason = lost()
            proto.connectionLost(reason)
        snapshots.append(
            {
                "made": (type(proto.made), proto.made),
                "closed": (type(proto.closed), proto.closed),
                "data": (type(proto.data), proto.data)
                if read_always or kind in ("read", "set", "lost")
                else None,
                "closedReason": next(
                    (i for i, r in reasons.items() if r is proto.closedReason), proto.closedReason
                ),
                "closedDeferred": proto.closedDeferred is None,
                "protocolConnectionMade": factory.protocolConnectionMade is None,
                "fired": list(fired),
            }
        )
    return snapshots


EVENT = st.one_of(
    st.tuples(st.sampled_from(["arm-made", "arm-closed", "made", "lost", "read"])),
    st.tuples(st.just("data"), st.binary(max_size=20)),
    st.tuples(st.just("set"), st.binary(max_size=5)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT, max_size=30))
def test_same_as_twisted_on_any_event_sequence(events):
    assert run_events(AccumulatingProtocol, events) == run_events(TwistedAccumulatingProtocol, events)


def test_same_as_twisted_on_a_connection_with_many_chunks():
    rng = random.Random(11)
    events = [("arm-made",), ("arm-closed",), ("made",)]
    for index in range(3000):
        events.append(("data", rng.randbytes(rng.randint(0, 64))))
        if index == 1500:
            events.append(("set", b""))
        elif index == 2200:
            events.append(("set", b"reset"))
        elif index % 250 == 0:
            events.append(("read",))
    events += [("lost",), ("data", b"late"), ("read",)]
    ours = run_events(AccumulatingProtocol, events, read_always=False)
    assert ours == run_events(TwistedAccumulatingProtocol, events, read_always=False)
    assert ours[-1]["fired"] == [("made", True), ("closed", None)]
    assert ours[-1]["data"][0] is bytes
    assert len(ours[-1]["data"][1]) > 20_000
    assert ours[-1]["data"][1].startswith(b"reset")


# -- chunks ----------------------------------------------------------------------------


def test_chunks_default_is_one_byte():
    assert list(chunks(b"abc")) == [b"a", b"b", b"c"]


def test_chunks_int():
    assert list(chunks(b"abcdefg", 3)) == [b"abc", b"def", b"g"]
    assert list(chunks(b"abc", 10)) == [b"abc"]
    assert list(chunks(b"", 3)) == []


@pytest.mark.parametrize("sizes", [[1, 2, 3], (1, 2, 3), range(1, 4)])
def test_chunks_sequence_cycled(sizes):
    assert list(chunks(b"abcdefghijklm", sizes)) == [
        b"a", b"bc", b"def", b"g", b"hi", b"jkl", b"m",
    ]


def test_chunks_single_size_sequence():
    assert list(chunks(b"abcde", [2])) == [b"ab", b"cd", b"e"]


def test_chunks_are_bytes():
    pieces = list(chunks(b"abcdef", (2, 4)))
    assert pieces == [b"ab", b"cdef"]
    assert all(type(piece) is bytes for piece in pieces)


@pytest.mark.parametrize("sizes", [0, -1, [0], [-2, 1], (3, 0), [], (), range(0)])
@pytest.mark.parametrize("data", [b"abcdefgh", b""])
def test_chunks_rejects_empty_sizes_and_sizes_below_one(sizes, data):
    """At the call, before anything is cut (it used to raise RuntimeError, from the
    StopIteration of an empty cycle, or only when the bad size was reached)."""
    with pytest.raises(ValueError, match="chunk sizes"):
        chunks(data, sizes)


@pytest.mark.parametrize("sizes", [1.5, [2, 1.0], "12", None])
def test_chunks_rejects_sizes_that_are_not_ints(sizes):
    with pytest.raises(TypeError):
        chunks(b"abc", sizes)


def test_chunks_takes_any_finite_iterable_of_sizes_once():
    sizes = iter([2, 1])  # an iterator is read once, then its sizes repeat
    assert list(chunks(b"abcdefg", sizes)) == [b"ab", b"c", b"de", b"f", b"g"]


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=200),
    st.one_of(st.integers(1, 50), st.lists(st.integers(1, 50), min_size=1, max_size=8)),
)
def test_chunks_partition_the_data(data, sizes):
    pieces = list(chunks(data, sizes))
    assert b"".join(pieces) == data
    assert all(pieces)
    expected_sizes = [sizes] * len(pieces) if isinstance(sizes, int) else (sizes * len(data))[: len(pieces)]
    assert [len(piece) for piece in pieces[:-1]] == expected_sizes[:-1]
    if pieces:
        assert 1 <= len(pieces[-1]) <= expected_sizes[-1]


# -- deliver ---------------------------------------------------------------------------


class Recorder(protocol.Protocol):
    """Records each chunk; returns its length; loses the connection after *limit* bytes."""

    def __init__(self, limit=None):
        self.received = []
        self.limit = limit

    def dataReceived(self, data):
        self.received.append(data)
        if self.limit is not None and sum(map(len, self.received)) >= self.limit:
            self.transport.loseConnection()
        return len(data)


def test_deliver_one_byte_at_a_time_by_default():
    proto = Recorder()
    proto.makeConnection(StringTransport())
    assert deliver(proto, b"hello") == [1, 1, 1, 1, 1]
    assert proto.received == [b"h", b"e", b"l", b"l", b"o"]


def test_deliver_sizes():
    proto = Recorder()
    proto.makeConnection(StringTransport())
    assert deliver(proto, b"abcdefghij", [1, 3]) == [1, 3, 1, 3, 1, 1]
    assert proto.received == [b"a", b"bcd", b"e", b"fgh", b"i", b"j"]
    proto.received = []
    assert deliver(proto, b"abcdefghij", 4) == [4, 4, 2]


def test_deliver_returns_what_data_received_returned():
    class Answering(protocol.Protocol):
        def dataReceived(self, data):
            return data.upper() if data != b"x" else None

    assert deliver(Answering(), b"axb", 1) == [b"A", None, b"B"]


def test_deliver_without_transport():
    proto = Recorder()
    assert proto.transport is None
    assert deliver(proto, b"abc", 2) == [2, 1]

    class Bare:
        def __init__(self):
            self.got = []

        def dataReceived(self, data):
            self.got.append(data)

    bare = Bare()
    assert deliver(bare, b"abc") == [None, None, None]
    assert bare.got == [b"a", b"b", b"c"]


def test_deliver_nothing():
    proto = Recorder()
    assert deliver(proto, b"", 3) == []
    assert proto.received == []


def test_deliver_stops_once_disconnecting():
    proto = Recorder(limit=5)
    transport = StringTransport()
    proto.makeConnection(transport)
    assert deliver(proto, b"0123456789", 2) == [2, 2, 2]
    assert proto.received == [b"01", b"23", b"45"]
    assert transport.disconnecting


def test_deliver_nothing_to_a_disconnecting_protocol():
    proto = Recorder()
    transport = StringTransport()
    proto.makeConnection(transport)
    transport.loseConnection()
    assert deliver(proto, b"abc") == []
    assert proto.received == []


@pytest.mark.parametrize("sizes", [0, -3, [0]])
def test_deliver_rejects_sizes_below_one(sizes):
    proto = Recorder()
    with pytest.raises(ValueError):
        deliver(proto, b"abc", sizes)
    assert proto.received == []


@pytest.mark.parametrize("sizes", [[2, 0], []])
def test_deliver_rejects_bad_sizes_before_delivering(sizes):
    proto = Recorder()
    with pytest.raises(ValueError):
        deliver(proto, b"abcdef", sizes)
    assert proto.received == []


# -- deliver to txframe's line protocols (both implementations) ---------------------------


def collecting(base):
    class Collector(base):
        def connectionMade(self):
            self.lines = []

        def lineReceived(self, line):
            self.lines.append(line)
            if line == b"QUIT":
                self.transport.loseConnection()

    return Collector


def connected(cls):
    proto = cls()
    proto.makeConnection(StringTransport())
    return proto


LINES = [b"", b"one", b"two\rtwo", b"\nthree", b"x" * 300, b"four\r"]
STREAM = b"".join(line + b"\r\n" for line in LINES)


@pytest.mark.parametrize("kind", ["LineReceiver", "LineOnlyReceiver"])
@pytest.mark.parametrize("sizes", [1, 2, 3, (1, 5, 2), 7, 1000])
def test_deliver_lines(impl, kind, sizes):
    proto = connected(collecting(getattr(impl, kind)))
    results = deliver(proto, STREAM + b"partial", sizes)
    assert proto.lines == LINES
    assert results == [None] * len(results)
    assert len(results) == len(list(chunks(STREAM + b"partial", sizes)))


@pytest.mark.parametrize("kind", ["LineReceiver", "LineOnlyReceiver"])
def test_deliver_one_byte_at_a_time_stops_at_quit(impl, kind):
    data = b"a\r\nQUIT\r\nb\r\nc\r\n"
    proto = connected(collecting(getattr(impl, kind)))
    results = deliver(proto, data, 1)
    assert proto.lines == [b"a", b"QUIT"]
    assert len(results) == data.index(b"QUIT\r\n") + len(b"QUIT\r\n")
    assert proto.transport.disconnecting


def test_deliver_returns_line_receiver_why(impl):
    """LineReceiver passes a truthy lineReceived result back from dataReceived."""

    class Why(impl.LineReceiver):
        def lineReceived(self, line):
            return line if line.startswith(b"!") else None

    data = b"a\r\n!b\r\nc\r\n!d\r\n"
    results = deliver(connected(Why), data, 1)
    expected = [None] * len(data)
    expected[data.index(b"!b\r\n") + 3] = b"!b"
    expected[data.index(b"!d\r\n") + 3] = b"!d"
    assert results == expected


@pytest.mark.parametrize("sizes", [1, 3, (1, 7, 64)])
def test_deliver_line_too_long_same_as_twisted(impl, sizes):
    """A line over MAX_LENGTH drops the connection; deliver stops at the same chunk
    as it does with Twisted's LineReceiver, after the same lines."""

    data = b"ok\r\n" + b"y" * 50 + b"\r\n" + b"z" * 200 + b"\r\nnever\r\n"

    def run(base):
        class Strict(collecting(base)):
            MAX_LENGTH = 50

        proto = connected(Strict)
        return deliver(proto, data, sizes), proto.lines, proto.transport.disconnecting

    ours = run(impl.LineReceiver)
    assert ours == run(twisted_basic.LineReceiver)
    results, lines, disconnecting = ours
    assert lines == [b"ok", b"y" * 50]
    assert disconnecting
    assert len(results) < len(list(chunks(data, sizes)))


@pytest.mark.parametrize("sizes", [1, 2, (3, 1)])
def test_deliver_same_results_as_twisted(impl, sizes):
    """deliver gives a txframe LineReceiver and Twisted's the same calls and results,
    raw mode included."""

    def run(base):
        class Switching(base):
            def connectionMade(self):
                self.events = []

            def lineReceived(self, line):
                self.events.append(("line", line))
                if line == b"RAW":
                    self.setRawMode()

            def rawDataReceived(self, data):
                self.events.append(("raw", data))

        proto = connected(Switching)
        return deliver(proto, b"a\r\nRAW\r\nraw\r\nbytes", sizes), proto.events

    ours = run(impl.LineReceiver)
    assert ours == run(twisted_basic.LineReceiver)
    assert ours[1][:2] == [("line", b"a"), ("line", b"RAW")]
    assert b"".join(data for kind, data in ours[1][2:]) == b"raw\r\nbytes"
