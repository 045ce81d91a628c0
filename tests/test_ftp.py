"""txframe.ftp: the LIST formatter, DTP, DTPFactory and the FTP wiring, in process.

Every test runs on the compiled and the pure LIST formatter (the ``impl`` fixture;
``impl.DTP`` and friends are txframe.ftp's classes bound to it), and compares with
Twisted's own ``DTP`` / ``FTP`` where Twisted is the reference: LIST lines byte for
byte, exceptions by type and message. Twisted's FTP server suite runs against these
classes in test_ftp_twisted_suite.py; real clients (curl, lftp, ftplib) in
test_ftp_peers.py.
"""

from __future__ import annotations

import calendar
import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IListeningPort
from twisted.internet.testing import StringTransport
from twisted.protocols import ftp as twisted_ftp
from twisted.python import filepath
from twisted.python.failure import Failure

from zope.interface import implementer

import txframe
from peer_rule import EXTENSIONS_REQUIRED
from txframe import ftp


LIST_KEYS = ("size", "directory", "permissions", "hardlinks", "modified", "owner", "group")


def outcome(function: Any, *args: Any) -> tuple[Any, ...]:
    """What a call gives: ``("ok", value)`` or ``("raise", type, message)``."""
    try:
        return ("ok", function(*args))
    except Exception as error:  # noqa: BLE001 - compared, not handled
        return ("raise", type(error), str(error))


def twisted_line(name: Any, *attrs: Any) -> bytes:
    """Twisted's LIST line (the reference)."""
    return twisted_ftp.DTP()._formatOneListResponse(name, *attrs)


def twisted_listing(entries: list[Any]) -> bytes:
    """Twisted's LIST output for *entries* (names encoded as txframe.ftp does)."""
    dtp = twisted_ftp.DTP()
    dtp.transport = StringTransport()
    for name, attrs in entries:
        dtp.sendListResponse(ftp._encodeName(name), attrs)
    return dtp.transport.value()


# -- generated directory entries -------------------------------------------------------

NOW = time.time()
THIS_YEAR = time.gmtime(NOW).tm_year
YEAR_START = calendar.timegm((THIS_YEAR, 1, 1, 0, 0, 0))


class Shorthand:
    """A permissions object of another kind: ``shorthand()`` returns what it is given."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def shorthand(self) -> Any:
        return self.value


class OwnPermissions(filepath.Permissions):
    def shorthand(self) -> str:
        return "custom!"


def permissions_with(mode: int, flags: list[Any]) -> filepath.Permissions:
    """Twisted Permissions whose RWX flags are replaced by *flags* (any values)."""
    permissions = filepath.Permissions(mode)
    for rwx, values in zip((permissions.user, permissions.group, permissions.other),
                           (flags[0:3], flags[3:6], flags[6:9])):
        rwx.read, rwx.write, rwx.execute = values
    return permissions


def no_shorthand() -> Any:
    permissions = filepath.Permissions(0o644)
    del permissions.group  # shorthand() raises AttributeError
    return permissions


modes = st.integers(0, 0o7777)
permissions = st.one_of(
    modes.map(filepath.Permissions),
    modes.map(filepath.Permissions),
    st.builds(permissions_with, modes, st.lists(
        st.sampled_from([True, False, 1, 0, "", "yes", None]), min_size=9, max_size=9)),
    modes.map(OwnPermissions),
    st.builds(Shorthand, st.one_of(st.text(max_size=12), st.integers(), st.none())),
    st.builds(no_shorthand),
    st.none(),
)
numbers = st.one_of(
    st.integers(0, 10**6),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.sampled_from([None, "12", 2**63, -(2**63) - 1]),
)
good_times = st.one_of(
    st.floats(NOW - 400 * 86400, NOW + 400 * 86400),
    st.floats(YEAR_START - 2, YEAR_START + 2),
    st.integers(YEAR_START - 2, YEAR_START + 2),
    st.floats(-1e12, 1e12),
)
times = st.one_of(
    good_times,
    st.floats(-1e17, 1e17),
    st.floats(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, -0.5, 0.5, 2**55, -(2**55), 2**55 - 1, 1e300, None, "0"]),
)
texts = st.one_of(
    st.sampled_from(["root", "alice", "verylongusername", ""]),
    st.text(max_size=12),
    st.text(st.characters(max_codepoint=255), max_size=12),
    st.binary(max_size=10),
    st.none(),
)
directories = st.one_of(
    st.booleans(), st.none(), st.integers(-2, 2), st.sampled_from(["", "x", [], [0], 0.0])
)
byte_names = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"a b", b"new\nline", b"cr\r\nlf", b"\xff\xfe\x80", b" lead", b""]),
)
names = st.one_of(byte_names, st.just(bytearray(b"array")), st.just("text"), st.none())
attrs = st.tuples(numbers, directories, permissions, numbers, times, texts, texts)


def listdir_name(raw: bytes) -> str:
    """A file name as ``os.listdir`` of a ``str`` path gives it on POSIX: undecodable
    bytes as lone surrogates."""
    return raw.decode("utf-8", "surrogateescape")


def good_attrs() -> Any:
    """Attribute lists as FTPShell gives them (nearly always formattable)."""
    return st.lists(st.tuples(
        st.integers(0, 2**40), st.booleans(), modes.map(filepath.Permissions),
        st.integers(0, 40), st.one_of(good_times, st.floats(NOW - 3e7, NOW)),
        st.sampled_from(["root", "alice", "user123456"]), st.sampled_from(["staff", "wheel"]),
    ).map(list), min_size=1, max_size=1).map(lambda x: x[0])


# -- the formatter ---------------------------------------------------------------------


def test_listing_formatter_loaded():
    """The guard: with TXFRAME_REQUIRE_EXTENSIONS=1 (CI), unless TXFRAME_NO_EXTENSIONS=1
    asks for the pure one, the compiled formatter is the one txframe.ftp uses;
    otherwise the one txframe.framing chose."""
    module = type(ftp.DTP._formatter).__module__
    if EXTENSIONS_REQUIRED and os.environ.get("TXFRAME_NO_EXTENSIONS", "") in ("", "0"):
        assert txframe.implementation == "compiled"
    compiled = txframe.implementation == "compiled"
    assert module == ("txframe._listing_c" if compiled else "txframe._listing_py")


def test_impl_is_bound(impl):
    formatter_module = "txframe._listing_c" if impl.name == "compiled" else "txframe._listing_py"
    assert type(impl.DTP._formatter).__module__ == formatter_module
    assert impl.DTPFactory.protocol is impl.DTP
    assert impl.FTP.dtpFactoryClass is impl.DTPFactory
    assert impl.FTPFactory.protocol is impl.FTP


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(name=names, attrs=attrs)
def test_format_entry_is_twisteds(impl, name, attrs):
    """Any values: the same line as Twisted's _formatOneListResponse, or the same
    exception (type and message)."""
    expected = outcome(twisted_line, name, *attrs)
    assert outcome(impl.formatter.format_entry, name, *attrs) == expected
    assert outcome(impl.DTP()._formatOneListResponse, name, *attrs) == expected


@pytest.mark.parametrize(
    "modified",
    [YEAR_START, YEAR_START - 1, YEAR_START - 0.5, YEAR_START + 0.5, NOW, 0, -1, -86400.5,
     951782400, 4107542400, -62135596800, -62135596801, 2**55 - 1, 2**55, -(2**55)],
)
def test_dates(impl, modified):
    """Year boundaries (this year shows the time, others the year), the epoch, leap
    days, year 1 and 0, and the edges of what C dates itself."""
    attrs = (1, False, filepath.Permissions(0o644), 1, modified, "u", "g")
    expected = outcome(twisted_line, b"n", *attrs)  # time.gmtime's range is the platform's
    assert outcome(impl.formatter.format_entry, b"n", *attrs) == expected


def test_line_layout(impl):
    line = impl.formatter.format_entry(
        b"my file.txt", 1234, True, filepath.Permissions(0o750), 2,
        calendar.timegm((2001, 3, 5, 14, 7, 0)), "alice", "staffmembers",
    )
    assert line == (
        b"drwxr-x---   2 alice     staffmem             1234 Mar 05  2001 my file.txt"
    )


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(
        st.tuples(
            st.one_of(byte_names, st.binary(max_size=20).map(listdir_name), st.text(max_size=8)),
            good_attrs(),
        ),
        max_size=60,
    ),
    limit=st.integers(1, 400),
)
def test_format_lines_is_twisteds_listing(impl, entries, limit):
    """Chunk by chunk, at any limit: Twisted's LIST output for the entries, each chunk
    stopping at the first line that reaches the limit."""
    chunks, index = [], 0
    while index < len(entries):
        chunk, after = impl.formatter.format_lines(entries, index, limit)
        assert after > index
        assert chunk == twisted_listing(entries[index:after])
        assert len(twisted_listing(entries[index:after - 1])) < limit
        assert after == len(entries) or len(chunk) >= limit
        chunks.append(chunk)
        index = after
    assert b"".join(chunks) == twisted_listing(entries)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(st.tuples(byte_names, good_attrs()), max_size=20),
    bad=st.one_of(
        st.tuples(names, attrs),
        st.tuples(byte_names, st.lists(st.integers(), max_size=9)),
        st.just(("lone surrogate \ud800", [1, False, filepath.Permissions(0), 1, 0, "u", "g"])),
        st.sampled_from([(b"x",), None, b"xy", (b"n", [1] * 7, "extra")]),
    ),
    at=st.integers(0, 20),
    limit=st.integers(1, 10_000),
)
def test_format_lines_stops_at_a_bad_entry(impl, entries, bad, at, limit):
    """An entry that cannot be formatted: the lines before it are returned, then the
    call that starts at it raises what Twisted's LIST loop raises there."""
    at = min(at, len(entries))
    entries = entries[:at] + [bad] + entries[at:]

    def twisted_loop() -> bytes:
        dtp = twisted_ftp.DTP()
        dtp.transport = StringTransport()
        for name, attrs_ in entries:
            dtp.sendListResponse(ftp._encodeName(name), attrs_)
        return dtp.transport.value()

    expected = outcome(twisted_loop)
    chunks, index = [], 0
    while True:
        result = outcome(impl.formatter.format_lines, entries, index, limit)
        if result[0] == "raise":
            break
        chunk, index = result[1]
        chunks.append(chunk)
        if index == len(entries):
            break
    if expected[0] == "ok":  # the "bad" entry was fine after all
        assert result[0] == "ok" and b"".join(chunks) == expected[1]
        return
    assert result[0] == "raise" and index == at
    assert b"".join(chunks) == twisted_listing(entries[:at])
    if "positional argument" in expected[2]:  # names the function that was called
        assert result[1] is expected[1]
    else:
        assert result[1:] == expected[1:]


def test_format_lines_takes_lists_and_tuples(impl):
    attrs = [5, False, filepath.Permissions(0o644), 1, 0.0, "u", "g"]
    entries = [(b"a", attrs), [b"b", tuple(attrs)], ("c", attrs), (bytearray(b"d"), attrs)]
    assert impl.formatter.format_lines(entries, 0, 1 << 20) == (twisted_listing(entries), 4)
    assert impl.formatter.format_lines(entries, 4, 1 << 20) == (b"", 4)


def test_undecodable_names_get_their_bytes_back(impl):
    """A name os.listdir gave as text with lone surrogates (non-UTF-8 bytes on disk)
    is sent as those bytes; Twisted's LIST fails on it."""
    raw = b"caf\xe9 \xff.txt"
    name = listdir_name(raw)
    attrs = [5, False, filepath.Permissions(0o644), 1, 0.0, "u", "g"]
    chunk, _ = impl.formatter.format_lines([(name, attrs)], 0, 100)
    assert chunk == twisted_line(raw, *attrs) + b"\r\n"
    with pytest.raises(UnicodeEncodeError):
        twisted_ftp.FTP()._encodeName(name)
    assert impl.FTP()._encodeName(name) == raw
    assert impl.FTP()._encodeName("é") == "é".encode()
    assert impl.FTP()._encodeName(b"\xff") == b"\xff"


# -- DTP: writing ----------------------------------------------------------------------


class Factory:
    """What a DTP needs of its factory."""

    def __init__(self) -> None:
        self.deferred: defer.Deferred[None] = defer.Deferred()


def connected(impl: Any, transport: Any = None) -> Any:
    dtp = impl.DTP()
    dtp.factory = Factory()
    dtp.makeConnection(StringTransport() if transport is None else transport)
    return dtp


def test_write_needs_a_connection(impl):
    """write() before the connection is made and after it is lost raises
    DTPNotConnectedError (an FTPError); Twisted's raises a bare Exception."""
    dtp = impl.DTP()
    with pytest.raises(ftp.DTPNotConnectedError, match="data connection is not open"):
        dtp.write(b"x")
    dtp.factory = Factory()
    transport = StringTransport()
    dtp.makeConnection(transport)
    assert dtp.factory.deferred.called
    dtp.write(b"abc")
    dtp.connectionLost(Failure(ConnectionDone()))
    with pytest.raises(ftp.DTPNotConnectedError):
        dtp.write(b"def")
    assert transport.value() == b"abc"
    assert issubclass(ftp.DTPNotConnectedError, twisted_ftp.FTPError)
    with pytest.raises(Exception) as twisted_error:
        twisted_ftp.DTP().write(b"x")
    assert type(twisted_error.value) is Exception


def test_send_line_and_list_response(impl):
    dtp = connected(impl)
    dtp.sendLine(b"line content")
    attrs = [10, True, filepath.Permissions(0o755), 3, NOW, "root", "root"]
    dtp.sendListResponse(b"dir", attrs)
    assert dtp.transport.value() == b"line content\r\n" + twisted_line(b"dir", *attrs) + b"\r\n"


class Sender:
    """A pull producer like Twisted's FileSender: 16 KiB per resumeProducing, then
    unregisters from its consumer at the end."""

    def __init__(self, consumer: Any, size: int) -> None:
        self.consumer, self.left, self.calls, self.stopped = consumer, size, 0, False

    def resumeProducing(self) -> None:
        self.calls += 1
        if self.left == 0:
            self.consumer.unregisterProducer()
            return
        chunk = min(self.left, 16384)
        self.left -= chunk
        self.consumer.write(b"r" * chunk)

    def stopProducing(self) -> None:
        self.stopped = True


def test_pull_producer_is_asked_for_a_batch(impl):
    """RETR: each time the transport wants more, the file sender is asked until
    producerBatch bytes are written (Twisted's DTP: one 16 KiB call per reactor
    turn); at its end it unregisters, which closes the connection."""
    dtp = connected(impl)
    assert dtp.producerBatch == 262144
    sender = Sender(dtp, 600_000)
    dtp.registerProducer(sender, False)
    transport = dtp.transport
    assert transport.streaming is False and transport.producer is not sender
    transport.producer.resumeProducing()
    assert sender.calls == 16 and len(transport.value()) == 262144
    transport.producer.resumeProducing()
    transport.producer.resumeProducing()  # 600,000 bytes sent, then the end
    assert len(transport.value()) == 600_000
    assert transport.producer is None and transport.disconnecting


def test_pull_producer_that_writes_nothing_is_asked_once(impl):
    """One that writes nothing in a call (say, waiting for a disk read) is not asked
    again in that turn: no busy loop."""

    class Waiting:
        calls = 0

        def resumeProducing(self) -> None:
            self.calls += 1

    dtp = connected(impl)
    waiting = Waiting()
    dtp.registerProducer(waiting, False)
    dtp.transport.producer.resumeProducing()
    assert waiting.calls == 1


def test_pull_producer_stops_when_the_transport_does(impl):
    dtp = connected(impl)
    sender = Sender(dtp, 10**9)
    dtp.registerProducer(sender, False)
    dtp.transport.producer.stopProducing()
    assert sender.stopped


def test_streaming_producer_passes_to_transport(impl):
    dtp = connected(impl)
    producer = object()
    dtp.registerProducer(producer, True)
    assert dtp.transport.producer is producer and dtp.transport.streaming is True
    dtp.unregisterProducer()
    assert dtp.transport.producer is None and dtp.transport.disconnecting


def test_consumer_raises_the_read_size(impl):
    """STOR: once a consumer takes the data the transport reads up to
    consumerReadSize at a time (Twisted's TCP: 64 KiB); before, its own size."""
    transport = StringTransport()
    transport.bufferSize = 65536
    dtp = connected(impl, transport)
    dtp.dataReceived(b"early")
    assert transport.bufferSize == 65536
    dtp.registerConsumer(Consumer())
    assert transport.bufferSize == dtp.consumerReadSize == 262144


# -- DTP: receiving (STOR) -------------------------------------------------------------


class Consumer:
    """An IConsumer recording what it gets; optionally pausing its producer after
    every write, or failing on the Nth."""

    def __init__(self, pause: bool = False, fail_at: int | None = None) -> None:
        self.chunks: list[bytes] = []
        self.producer: Any = None
        self.events: list[str] = []
        self.pause = pause
        self.fail_at = fail_at

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming
        self.producer = producer
        self.events.append("register")

    def unregisterProducer(self) -> None:
        self.events.append("unregister")
        self.producer = None

    def write(self, data: bytes) -> None:
        if self.fail_at is not None and len(self.chunks) == self.fail_at:
            raise OSError("disk full")
        self.chunks.append(data)
        if self.pause:
            self.producer.pauseProducing()

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def results(d: defer.Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def test_data_before_the_consumer_is_bounded_and_kept(impl):
    """Data arriving before registerConsumer is held up to bufferLimit, then the
    transport is paused; registerConsumer delivers all of it, in order, and resumes."""
    dtp = connected(impl)
    limit = dtp.bufferLimit
    assert limit == 65536
    chunks = [bytes([i % 251]) * 1000 for i in range(limit // 1000 + 1)]
    for i, chunk in enumerate(chunks):
        assert dtp.transport.producerState == "producing", i
        dtp.dataReceived(chunk)
    assert dtp.transport.producerState == "paused"
    assert dtp._heldBytes == len(b"".join(chunks)) < limit + 1000
    consumer = Consumer()
    done = results(dtp.registerConsumer(consumer))
    assert consumer.data == b"".join(chunks)
    assert dtp.transport.producerState == "producing"
    dtp.dataReceived(b"more")
    dtp.connectionLost(Failure(ConnectionDone()))
    assert consumer.data == b"".join(chunks) + b"more"
    assert done == [None] and consumer.events == ["register", "unregister"]


def test_twisteds_dtp_buffers_without_limit():
    """The defect fixed: Twisted's DTP keeps everything and never pauses."""
    dtp = twisted_ftp.DTP()
    dtp.factory = Factory()
    dtp.makeConnection(StringTransport())
    for _ in range(100):
        dtp.dataReceived(b"x" * 65536)
    assert dtp.transport.producerState == "producing"
    assert sum(map(len, dtp._buffer)) == 100 * 65536


def test_a_transport_that_ignores_pausing_is_cut_off(impl):
    """A transport that goes on delivering after being paused: at 16 x bufferLimit
    held the connection is aborted and the transfer fails with
    DTPBufferOverflowError; nothing more is held."""
    dtp = connected(impl)
    dtp.bufferLimit = 1000
    for _ in range(16):
        dtp.dataReceived(b"y" * 1000)
    assert not dtp.transport.disconnecting
    dtp.dataReceived(b"y")
    assert dtp.transport.disconnected  # StringTransport's abortConnection
    dtp.dataReceived(b"z" * 10_000)
    assert dtp._heldBytes == 0
    consumer = Consumer()
    done = results(dtp.registerConsumer(consumer))
    assert done[0].check(ftp.DTPBufferOverflowError)
    assert consumer.data == b"" and consumer.events == ["register", "unregister"]


def test_consumer_pausing_pauses_the_transport(impl):
    """A consumer that pauses after every write gets one chunk per resumeProducing;
    what arrives meanwhile is held, in order; the transport follows its state."""
    dtp = connected(impl)
    consumer = Consumer(pause=True)
    done = results(dtp.registerConsumer(consumer))
    dtp.dataReceived(b"a")
    assert dtp.transport.producerState == "paused"
    dtp.dataReceived(b"b")
    dtp.dataReceived(b"c")
    assert consumer.data == b"a"
    dtp.connectionLost(Failure(ConnectionDone()))
    assert done == []  # not before everything is written
    dtp.resumeProducing()
    assert consumer.data == b"ab"
    dtp.resumeProducing()
    assert consumer.data == b"abc" and done == [None]
    assert consumer.events == ["register", "unregister"]


def test_registering_after_the_connection_closed(impl):
    """Client sent everything and closed before STOR: all of it is delivered, and
    the Deferred has fired when registerConsumer returns (as Twisted's)."""
    dtp = connected(impl)
    dtp.dataReceived(b"all ")
    dtp.dataReceived(b"of it")
    dtp.connectionLost(Failure(ConnectionDone()))
    consumer = Consumer()
    done = results(dtp.registerConsumer(consumer))
    assert consumer.data == b"all of it" and done == [None]
    assert consumer.events == ["register", "unregister"]


def test_transport_none(impl):
    """As in Twisted's FTPCloseTests: a DTP connected to no transport at all."""
    dtp = impl.DTP()
    dtp.factory = Factory()
    dtp.makeConnection(None)
    consumer = Consumer(pause=True)
    done = results(dtp.registerConsumer(consumer))
    dtp.dataReceived(b"some")
    dtp.dataReceived(b" data")
    dtp.resumeProducing()
    dtp.connectionLost("reason is ignored")
    assert consumer.data == b"some data" and done == [None]


def test_reset_fails_the_transfer(impl):
    """A connection reset is not stream mode's end of file: the Deferred fails (the
    server answers 426); Twisted's reports success."""
    dtp = connected(impl)
    consumer = Consumer()
    done = results(dtp.registerConsumer(consumer))
    dtp.dataReceived(b"partial")
    dtp.connectionLost(Failure(ConnectionLost("Connection reset by peer")))
    assert done[0].check(ConnectionLost) and consumer.data == b"partial"
    assert consumer.events == ["register", "unregister"]


def test_consumer_failure_aborts(impl):
    """consumer.write raising: the Deferred fails with its exception, the connection
    is aborted, later data is dropped, the consumer is unregistered once."""
    dtp = connected(impl)
    consumer = Consumer(fail_at=1)
    done = results(dtp.registerConsumer(consumer))
    dtp.dataReceived(b"one")
    dtp.dataReceived(b"two")
    assert done[0].check(OSError) and "disk full" in str(done[0].value)
    assert dtp.transport.disconnected
    dtp.dataReceived(b"three")
    dtp.connectionLost(Failure(ConnectionLost()))
    assert consumer.data == b"one" and consumer.events == ["register", "unregister"]


def test_second_consumer_is_an_error(impl):
    dtp = connected(impl)
    dtp.registerConsumer(Consumer())
    with pytest.raises(RuntimeError, match="already has a consumer"):
        dtp.registerConsumer(Consumer())


def test_stop_producing(impl):
    dtp = connected(impl)
    dtp.dataReceived(b"held")
    consumer = Consumer(pause=True)
    dtp.registerConsumer(consumer)
    dtp.dataReceived(b"more")
    dtp.stopProducing()
    assert dtp.transport.producerState == "stopped"
    dtp.dataReceived(b"after")
    assert dtp._heldBytes == 0 and consumer.data == b"held"


# -- DTP: streaming a listing ----------------------------------------------------------


def entries_of(count: int) -> list[Any]:
    perms = [filepath.Permissions(m) for m in (0o644, 0o755)]
    return [
        (f"entry {i:05d}", [i * 7, i % 9 == 0, perms[i % 2], 1, NOW - i * 86400.0, "u", "g"])
        for i in range(count)
    ]


def drive(transport: StringTransport, limit: int = 10_000) -> int:
    """Play a TCP transport asking its pull producer for more; the number of calls."""
    calls = 0
    while transport.producer is not None and calls < limit:
        transport.producer.resumeProducing()
        calls += 1
    return calls


def test_send_list_responses_streams(impl):
    """A chunk per resumeProducing, so that memory holds one chunk however slow the
    client; the whole is Twisted's listing; the Deferred fires at the end."""
    dtp = connected(impl)
    entries = entries_of(5000)
    done = results(dtp.sendListResponses(entries))
    transport = dtp.transport
    assert transport.producer is not None and transport.streaming is False
    assert transport.value() == b""
    sizes = []
    while transport.producer is not None:
        before = len(transport.value())
        transport.producer.resumeProducing()
        sizes.append(len(transport.value()) - before)
    assert len(sizes) > 3
    assert all(dtp.listChunkSize <= size < dtp.listChunkSize + 200 for size in sizes[:-1])
    assert 0 < sizes[-1] < dtp.listChunkSize + 200
    assert transport.value() == twisted_listing(entries)
    assert done == [None] and not transport.disconnecting


def test_send_list_responses_connection_lost(impl):
    dtp = connected(impl)
    done = results(dtp.sendListResponses(entries_of(5000)))
    dtp.transport.producer.resumeProducing()
    dtp.transport.producer.stopProducing()  # what the transport does when it is lost
    assert done[0].check(ConnectionLost)


def test_send_list_responses_bad_entry(impl):
    dtp = connected(impl)
    entries = entries_of(10)
    entries[6] = (b"bad", [1, False, filepath.Permissions(0), 1, 0, None, "g"])
    done = results(dtp.sendListResponses(entries))
    drive(dtp.transport)
    assert done[0].check(TypeError)
    assert dtp.transport.value() == twisted_listing(entries[:6])
    assert dtp.transport.producer is None


def test_send_list_responses_honours_subclasses(impl):
    """A DTP subclass that formats or sends lines its own way gets its own methods
    called, entry by entry."""

    class Loud(impl.DTP):
        def sendLine(self, line: bytes) -> None:
            self.transport.write(line.upper() + b"\n")

    dtp = connected(SimpleImpl(Loud))
    entries = entries_of(600)
    done = results(dtp.sendListResponses(entries))
    drive(dtp.transport)
    expected = b"".join(
        twisted_line(ftp._encodeName(n), *a).upper() + b"\n" for n, a in entries
    )
    assert dtp.transport.value() == expected and done == [None]
    assert impl.DTP._plainListing and not Loud._plainListing


def test_another_encoding_is_twisteds(impl):
    """A subclass with another ``_encoding`` for owner and group gets Twisted's lines
    for it, one by one or streamed."""

    class Utf8(impl.DTP):
        _encoding = "utf-8"

    class TwistedUtf8(twisted_ftp.DTP):
        _encoding = "utf-8"

    attrs = [1, False, filepath.Permissions(0o644), 1, 0.0, "\u00e9\u4e2d", "g"]
    expected = TwistedUtf8()._formatOneListResponse(b"n", *attrs)
    assert Utf8()._formatOneListResponse(b"n", *attrs) == expected
    dtp = connected(SimpleImpl(Utf8))
    dtp.sendListResponses([(b"n", attrs)])
    drive(dtp.transport)
    assert dtp.transport.value() == expected + b"\r\n"


class SimpleImpl:
    def __init__(self, dtp: type) -> None:
        self.DTP = dtp


# -- DTPFactory ------------------------------------------------------------------------


class PI:
    dtpInstance = None


def test_factory_builds_its_protocol_once(impl):
    clock = task.Clock()
    factory = impl.DTPFactory(PI(), None, clock)
    factory.setTimeout(10)
    factory.setTimeout(10)  # replaces the first one (Twisted's would leave two)
    assert len(clock.calls) == 1
    dtp = factory.buildProtocol(None)
    assert type(dtp) is impl.DTP and factory.pi.dtpInstance is dtp and dtp.pi is factory.pi
    assert clock.calls == []
    assert factory.buildProtocol(None) is None


def test_factory_timeout(impl):
    clock = task.Clock()
    factory = impl.DTPFactory(PI(), None, clock)
    failed = results(factory.deferred)
    factory.setTimeout(6)
    clock.advance(5)
    assert failed == []
    clock.advance(1)
    assert failed[0].check(twisted_ftp.PortConnectionError)
    assert factory.buildProtocol(None) is None
    factory.clientConnectionFailed(None, None)  # nothing more happens


# -- FTP -------------------------------------------------------------------------------


def test_twisteds_commands_get_txframes_factory(impl):
    """PASV/EPSV/PORT/EPRT assign a Twisted DTPFactory to dtpFactory: an equivalent
    dtpFactoryClass instance takes its place; anything else is kept."""
    server = impl.FTP()
    clock = task.Clock()
    server.dtpFactory = twisted_ftp.DTPFactory(server, "10.0.0.1", clock)
    factory = server.dtpFactory
    assert type(factory) is impl.DTPFactory
    assert (factory.pi, factory.peerHost, factory._reactor) == (server, "10.0.0.1", clock)
    mine = impl.DTPFactory(server)
    server.dtpFactory = mine
    assert server.dtpFactory is mine
    server.dtpFactory = None
    assert server.dtpFactory is None


@implementer(IListeningPort)
class FakePort:
    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.stopped = False

    def getHost(self) -> Any:
        return type("Address", (), {"port": 1234, "host": "127.0.0.1"})()

    def stopListening(self) -> None:
        self.stopped = True


@pytest.fixture
def server(impl):
    """txframe's FTP, logged in, on a StringTransport; PASV listens on FakePorts."""
    factory = impl.FTPFactory()
    factory.timeOut = None
    proto = factory.buildProtocol(None).wrappedProtocol
    proto.makeConnection(StringTransport())
    proto.ports = []

    def listen(port: int, factory: Any, interface: str = "") -> FakePort:
        proto.ports.append(FakePort(factory))
        return proto.ports[-1]

    proto.listenFactory = listen
    proto.state = proto.AUTHED
    proto.workingDirectory = []
    yield proto
    proto.setTimeout(None)
    if proto.dtpFactory is not None:
        proto.dtpFactory.cancelTimeout()


def pasv(server: Any) -> Any:
    """PASV, and the data connection it waits for: the DTP, on a StringTransport."""
    done = results(server.ftp_PASV())
    assert type(server.dtpFactory).__name__ == "DTPFactory"
    dtp = server.ports[-1].factory.buildProtocol(None)
    dtp.makeConnection(StringTransport())
    assert done == [None] and server.dtpInstance is dtp
    return dtp


class Shell:
    def __init__(self, entries: list[Any]) -> None:
        self.entries = entries
        self.asked: list[Any] = []

    def list(self, path: Any, keys: Any = ()) -> defer.Deferred[Any]:
        self.asked.append((path, keys))
        return defer.succeed(self.entries)


def test_pasv_makes_a_txframe_dtp(impl, server):
    dtp = pasv(server)
    assert type(dtp) is impl.DTP and type(server.dtpFactory) is impl.DTPFactory


def test_list_streams_twisteds_listing(impl, server):
    server.shell = Shell(entries_of(3000))
    dtp = pasv(server)
    done = results(server.ftp_LIST("-la"))
    assert server.shell.asked == [([], LIST_KEYS)]
    assert server.transport.value().endswith(
        b"125 Data connection already open, starting transfer\r\n"
    )
    drive(dtp.transport)
    assert done == [(twisted_ftp.TXFR_COMPLETE_OK,)]
    assert dtp.transport.value() == twisted_listing(server.shell.entries)
    assert dtp.transport.disconnecting


def test_list_aborted_by_the_client(impl, server):
    server.shell = Shell(entries_of(3000))
    dtp = pasv(server)
    done = results(server.ftp_LIST(""))
    dtp.transport.producer.resumeProducing()
    dtp.transport.producer.stopProducing()
    assert done == [(twisted_ftp.CNX_CLOSED_TXFR_ABORTED,)]


def test_list_with_an_entry_it_cannot_format(impl, server):
    """The lines before it are sent and the data connection is closed (Twisted's
    leaves it open, and the client waiting); the command fails as in Twisted."""
    entries = entries_of(5)
    entries[3] = ("bad", [1, False, None, 1, 0, "u", "g"])
    server.shell = Shell(entries)
    dtp = pasv(server)
    done = results(server.ftp_LIST(""))
    drive(dtp.transport)
    assert done[0].check(AttributeError)
    assert dtp.transport.value() == twisted_listing(entries[:3])
    assert dtp.transport.disconnecting


def test_list_honours_an_encode_name_override(impl, server):
    class Upper(impl.FTP):
        def _encodeName(self, name: Any) -> bytes:
            return name.upper().encode()

    server.__class__ = Upper
    server.shell = Shell(entries_of(3))
    dtp = pasv(server)
    done = results(server.ftp_LIST(""))
    assert done == [(twisted_ftp.TXFR_COMPLETE_OK,)]  # Twisted's LIST, all at once
    expected = [(name.upper(), attrs) for name, attrs in entries_of(3)]
    assert dtp.transport.value() == twisted_listing(expected)


def test_list_without_a_data_connection(impl, server):
    server.shell = Shell([])
    done = results(server.ftp_LIST(""))
    assert done[0].check(twisted_ftp.BadCmdSequenceError)


def test_new_data_connection_closes_the_old_one(impl, server):
    """A data connection left open (say, by a client that sent data and never the
    command) is closed when the next PASV replaces it, or when the control
    connection closes. Twisted's stays open."""
    first = pasv(server)
    first.dataReceived(b"never stored")
    second = pasv(server)
    assert first.transport.disconnecting and not second.transport.disconnecting
    assert server.ports[0].stopped
    server.connectionLost(Failure(ConnectionDone()))
    assert second.transport.disconnecting


def test_module_is_twisteds_for_everything_else():
    assert ftp.FTPRealm is twisted_ftp.FTPRealm
    assert ftp.RESPONSE is twisted_ftp.RESPONSE
    assert ftp.toSegments is twisted_ftp.toSegments
    from txframe.ftp import FTPAnonymousShell  # through the module's __getattr__

    assert FTPAnonymousShell is twisted_ftp.FTPAnonymousShell

    with pytest.raises(AttributeError):
        ftp.no_such_name  # noqa: B018
    for name in ("DTP", "DTPFactory", "FTP", "FTPFactory"):
        ours, theirs = getattr(ftp, name), getattr(twisted_ftp, name)
        assert ours is not theirs and issubclass(ours, theirs)
