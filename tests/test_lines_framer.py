"""Framer-level tests: the LineFramer API, driven with a minimal sink.

A framer turns bytes into calls on a *sink* (``delimiter``, ``MAX_LENGTH``,
``transport``, ``lineReceived``, ``rawDataReceived``, ``lineLengthExceeded``). These
tests use a tiny sink that records calls, and run on both implementations through the
``impl`` fixture. No timing is asserted anywhere.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


class Transport:
    """The one thing a framer reads from a transport."""

    def __init__(self, disconnecting=False):
        self.disconnecting = disconnecting


class Sink:
    """Records every callback; optional hooks give the callbacks' return values."""

    def __init__(self, delimiter=b"\r\n", MAX_LENGTH=16384, transport=None):
        self.delimiter = delimiter
        self.MAX_LENGTH = MAX_LENGTH
        self.transport = transport
        self.calls = []
        self.on_line = None
        self.on_raw = None
        self.on_exceeded = None

    def lineReceived(self, line):
        self.calls.append(("line", line))
        return None if self.on_line is None else self.on_line(line)

    def rawDataReceived(self, data):
        self.calls.append(("raw", data))
        return None if self.on_raw is None else self.on_raw(data)

    def lineLengthExceeded(self, data):
        self.calls.append(("exceeded", data))
        return None if self.on_exceeded is None else self.on_exceeded(data)

    @property
    def lines(self):
        return [value for kind, value in self.calls if kind == "line"]


@pytest.fixture(params=[False, True], ids=["line_receiver", "line_only"])
def line_only(request):
    return request.param


# ---------------------------------------------------------------------------
# State: idle, line_mode, paused, buffered(), clear()
# ---------------------------------------------------------------------------


def test_initial_state(impl, line_only):
    framer = impl.LineFramer(line_only)
    assert framer.line_only == line_only
    assert framer.idle is True
    assert framer.line_mode == 1
    assert framer.paused is False
    assert framer.buffered() == b""
    assert framer.clear() == b""
    assert framer.idle is True
    assert impl.LineFramer().line_only == False  # noqa: E712 - the default
    assert impl.LineFramer(line_only=True).line_only == True  # noqa: E712


def test_feed_delivers_lines_and_keeps_the_partial_one(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()
    assert framer.feed(sink, b"one\r\ntwo\r\nthr") is None
    assert sink.calls == [("line", b"one"), ("line", b"two")]
    assert framer.buffered() == b"thr"
    assert framer.idle is False
    assert framer.feed(sink, b"ee\r\n") is None
    assert sink.lines == [b"one", b"two", b"three"]
    assert framer.buffered() == b""
    assert framer.idle is True


def test_empty_feed(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()
    assert framer.feed(sink, b"") is None
    assert sink.calls == []
    assert framer.idle is True


def test_buffered_keeps_and_clear_removes(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()
    framer.feed(sink, b"a\r\npartial")
    assert framer.buffered() == b"partial"
    assert framer.buffered() == b"partial"
    assert type(framer.buffered()) is bytes
    assert framer.clear() == b"partial"
    assert framer.buffered() == b""
    assert framer.clear() == b""
    assert framer.idle is True
    framer.feed(sink, b"new\r\n")
    assert sink.lines == [b"a", b"new"]


def test_paused_framer_buffers_everything(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()
    framer.paused = True
    assert framer.idle is False  # a paused framer is state worth keeping
    assert framer.feed(sink, b"a\r\nb\r\nc") is None
    assert sink.calls == []
    assert framer.buffered() == b"a\r\nb\r\nc"
    framer.paused = False
    assert framer.feed(sink, b"") is None
    assert sink.lines == [b"a", b"b"]
    assert framer.buffered() == b"c"


def test_pause_from_a_callback_keeps_complete_lines(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()

    def pause(line):
        if line == b"pause":
            framer.paused = True

    sink.on_line = pause
    framer.feed(sink, b"pause\r\nb\r\nc\r\nd")
    assert sink.lines == [b"pause"]
    assert framer.buffered() == b"b\r\nc\r\nd"
    framer.paused = False
    framer.feed(sink, b"\r\n")
    assert sink.lines == [b"pause", b"b", b"c", b"d"]
    assert framer.idle is True


def test_setters_coerce(impl):
    framer = impl.LineFramer()
    framer.paused = 1
    assert framer.paused is True
    framer.paused = ""
    assert framer.paused is False
    framer.line_mode = False
    assert framer.line_mode == 0 and type(framer.line_mode) is int
    framer.line_mode = "yes"
    assert framer.line_mode == 1 and type(framer.line_mode) is int


def test_raw_mode(impl):
    framer = impl.LineFramer()
    sink = Sink()
    framer.line_mode = 0
    assert framer.idle is False  # raw mode is state worth keeping
    assert framer.feed(sink, b"a\r\nb") is None
    assert sink.calls == [("raw", b"a\r\nb")]
    assert framer.buffered() == b""
    assert framer.idle is False
    sink.on_raw = lambda data: data.upper()
    assert framer.feed(sink, b"xy") == b"XY"


def test_switching_modes_inside_callbacks(impl):
    framer = impl.LineFramer()
    sink = Sink()

    def to_raw(line):
        if line == b"raw":
            framer.line_mode = 0

    def to_lines(data):
        framer.line_mode = 1
        return framer.feed(sink, data[1:])  # re-entrant: held for the running loop

    sink.on_line = to_raw
    sink.on_raw = to_lines
    framer.feed(sink, b"a\r\nraw\r\n#b\r\nraw\r\n#c\r\nd")
    assert sink.calls == [
        ("line", b"a"),
        ("line", b"raw"),
        ("raw", b"#b\r\nraw\r\n#c\r\nd"),
        ("line", b"b"),
        ("line", b"raw"),
        ("raw", b"#c\r\nd"),
        ("line", b"c"),
    ]
    assert framer.buffered() == b"d"


def test_idle_is_false_during_a_callback(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()
    seen = []
    sink.on_line = lambda line: seen.append(framer.idle)
    framer.feed(sink, b"x\r\n")
    assert seen == [False]
    assert framer.idle is True


def test_reentrant_feed_is_delivered_in_order(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()
    inner = []

    def reenter(line):
        if line == b"first":
            inner.append(framer.feed(sink, b"inner\r\nlast"))

    sink.on_line = reenter
    framer.feed(sink, b"first\r\nsecond\r\nthi")
    assert inner == [None]
    assert sink.lines == [b"first", b"second", b"thiinner"]
    assert framer.buffered() == b"last"


def test_buffered_inside_a_callback(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()
    seen = []
    sink.on_line = lambda line: seen.append(framer.buffered())
    framer.feed(sink, b"a\r\nb\r\nc\r\nd")
    assert seen == [b"b\r\nc\r\nd", b"c\r\nd", b"d"]
    assert sink.lines == [b"a", b"b", b"c"]
    assert framer.buffered() == b"d"


def test_clear_inside_a_callback(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()
    cleared = []

    def clear(line):
        if line == b"clear":
            cleared.append(framer.clear())

    sink.on_line = clear
    framer.feed(sink, b"a\r\nclear\r\nb\r\nc")
    assert cleared == [b"b\r\nc"]
    assert sink.lines == [b"a", b"clear"]
    assert framer.buffered() == b""
    assert framer.idle is True
    framer.feed(sink, b"d\r\n")
    assert sink.lines == [b"a", b"clear", b"d"]


def test_clear_then_feed_inside_a_callback(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()

    def replace(line):
        if line == b"replace":
            framer.clear()
            framer.feed(sink, b"new\r\n")

    sink.on_line = replace
    framer.feed(sink, b"replace\r\nold\r\n")
    assert sink.lines == [b"replace", b"new"]


def test_two_framers_are_independent(impl, line_only):
    first, second = impl.LineFramer(line_only), impl.LineFramer(line_only)
    sink1, sink2 = Sink(), Sink(delimiter=b"\n")
    first.feed(sink1, b"a\r\nb")
    second.feed(sink2, b"x\ny")
    first.paused = True
    assert second.paused is False
    assert first.buffered() == b"b" and second.buffered() == b"y"
    second.feed(sink2, b"z\n")
    assert sink1.lines == [b"a"] and sink2.lines == [b"x", b"yz"]


# ---------------------------------------------------------------------------
# The sink's attributes
# ---------------------------------------------------------------------------


def test_delimiter_read_before_each_line(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()

    def switch(line):
        if line == b"switch":
            sink.delimiter = b"|"
        elif line == b"back":
            sink.delimiter = b"\r\n"

    sink.on_line = switch
    framer.feed(sink, b"a\r\nswitch\r\nb|back|c\r\nd|e\r\nf")
    assert sink.lines == [b"a", b"switch", b"b", b"back", b"c", b"d|e"]
    assert framer.buffered() == b"f"
    sink.delimiter = b"f"
    framer.feed(sink, b"")  # a change between calls applies to what is buffered
    assert sink.lines[-1] == b""


def test_delimiter_change_between_calls_with_lines_held(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink(delimiter=b"\n")
    framer.paused = True
    framer.feed(sink, b"a\nb;c\nd;")
    sink.delimiter = b";"
    framer.paused = False
    framer.feed(sink, b"")
    assert sink.lines == [b"a\nb", b"c\nd"]


def test_max_length_read_before_each_line(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink(MAX_LENGTH=10)
    sink.on_exceeded = lambda data: None  # keep going

    def tighten(line):
        if line == b"tighten":
            sink.MAX_LENGTH = 2

    sink.on_line = tighten
    framer.feed(sink, b"tighten\r\nab\r\nabc\r\nxy\r\n")
    if line_only:
        assert sink.calls == [
            ("line", b"tighten"),
            ("line", b"ab"),
            ("exceeded", b"abc"),
            ("line", b"xy"),
        ]
    else:
        assert sink.calls == [
            ("line", b"tighten"),
            ("line", b"ab"),
            ("exceeded", b"abc\r\nxy\r\n"),
        ]
    assert framer.buffered() == b""


def test_bad_delimiters(impl, line_only):
    for bad, error in (("\r\n", TypeError), (b"", ValueError), (None, TypeError)):
        framer = impl.LineFramer(line_only)
        sink = Sink(delimiter=bad)
        with pytest.raises(error):
            framer.feed(sink, b"a\r\nb")
        assert sink.calls == []
    framer = impl.LineFramer(line_only)
    sink = Sink()
    sink.on_line = lambda line: setattr(sink, "delimiter", "\n")
    with pytest.raises(TypeError):
        framer.feed(sink, b"a\r\nb\r\n")
    assert sink.lines == [b"a"]
    sink.delimiter = b"\r\n"
    sink.on_line = None
    framer.feed(sink, b"")
    assert sink.lines == [b"a", b"b"]


def test_equal_bytearray_delimiter_from_a_callback_is_refused(impl, line_only):
    """A bytearray equal to the delimiter, switched in while split lines wait, is the
    documented TypeError too (the pure framer took it before issue 16)."""
    framer = impl.LineFramer(line_only)
    sink = Sink()
    sink.on_line = lambda line: setattr(sink, "delimiter", bytearray(b"\r\n"))
    with pytest.raises(TypeError, match="delimiter must be bytes"):
        framer.feed(sink, b"a\r\nb\r\nc\r\n")
    assert sink.lines == [b"a"]
    sink.delimiter = b"\r\n"
    sink.on_line = None
    framer.feed(sink, b"")
    assert sink.lines == [b"a", b"b", b"c"]


def test_invalid_delimiter_from_the_last_line_raises_when_it_is_needed(impl, line_only):
    """An invalid delimiter set by the callback of the buffer's last line raises when the
    framer next needs it (the next data), in both twins: found by the lines fuzzer,
    where the pure twin raised from the same call and the compiled one from the next."""
    framer = impl.LineFramer(line_only)
    sink = Sink()
    sink.on_line = lambda line: setattr(sink, "delimiter", bytearray(b"\r\n"))
    assert framer.feed(sink, b"a\r\n") is None
    with pytest.raises(TypeError, match="delimiter must be bytes"):
        framer.feed(sink, b"b\r\n")
    assert sink.lines == [b"a"]


# ---------------------------------------------------------------------------
# Return values, too-long lines, exceptions
# ---------------------------------------------------------------------------


def test_return_values(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()
    sink.on_line = lambda line: b"why" if line == b"stop" else None
    returned = framer.feed(sink, b"a\r\nstop\r\nb\r\n")
    if line_only:  # LineOnlyReceiver ignores lineReceived's return value
        assert returned is None
        assert sink.lines == [b"a", b"stop", b"b"]
    else:
        assert returned == b"why"
        assert sink.lines == [b"a", b"stop"]
        assert framer.buffered() == b"b\r\n"
        assert framer.feed(sink, b"") is None
        assert sink.lines == [b"a", b"stop", b"b"]


def test_line_length_exceeded_complete_line(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink(MAX_LENGTH=3)
    sink.on_exceeded = lambda data: ("exceeded", data)
    returned = framer.feed(sink, b"abc\r\nabcd\r\nef\r\ngh")
    if line_only:  # the offending line alone, and delivery goes on
        assert sink.calls == [("line", b"abc"), ("exceeded", b"abcd"), ("line", b"ef")]
        assert returned == ("exceeded", b"abcd")
        assert framer.buffered() == b"gh"
    else:  # the rest of the buffer from the long line on, which is cleared
        assert sink.calls == [("line", b"abc"), ("exceeded", b"abcd\r\nef\r\ngh")]
        assert returned == ("exceeded", b"abcd\r\nef\r\ngh")
        assert framer.buffered() == b""


def test_line_length_exceeded_unterminated_line(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink(MAX_LENGTH=3)
    framer.feed(sink, b"ab\r\nxyz")
    framer.feed(sink, b"\r")  # len 4 < MAX_LENGTH + len(delimiter)
    assert sink.calls == [("line", b"ab")]
    framer.feed(sink, b"\n")  # a line of exactly MAX_LENGTH
    assert sink.calls == [("line", b"ab"), ("line", b"xyz")]
    framer.feed(sink, b"xyzw")
    assert sink.calls[2:] == []
    framer.feed(sink, b"v")  # 5 >= 3 + 2
    assert sink.calls[2:] == [("exceeded", b"xyzwv")]
    assert framer.buffered() == b""
    assert framer.idle is True


def test_exception_in_a_callback(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()

    def bad(line):
        if line.startswith(b"bad"):
            raise ZeroDivisionError(line)

    sink.on_line = bad
    with pytest.raises(ZeroDivisionError):
        framer.feed(sink, b"a\r\nbad\r\nb\r\nc")
    assert framer.buffered() == b"b\r\nc"
    # not left "busy": the next feed delivers instead of only buffering
    assert framer.feed(sink, b"\r\n") is None
    assert sink.lines == [b"a", b"bad", b"b", b"c"]
    assert framer.idle is True
    with pytest.raises(ZeroDivisionError):
        framer.feed(sink, b"bad2\r\n")
    framer.feed(sink, b"d\r\n")
    assert sink.lines[-2:] == [b"bad2", b"d"]


# ---------------------------------------------------------------------------
# Transport
# ---------------------------------------------------------------------------


def test_no_transport(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink(transport=None)
    framer.feed(sink, b"a\r\nb\r\n")
    assert sink.lines == [b"a", b"b"]


def test_disconnecting_transport_discards_line_data(impl, line_only):
    transport = Transport()
    framer = impl.LineFramer(line_only)
    sink = Sink(transport=transport)
    framer.feed(sink, b"a\r\npar")
    transport.disconnecting = True
    assert framer.feed(sink, b"tial\r\nb\r\n") is None
    assert sink.lines == [b"a"]
    assert framer.buffered() == b"par"


def test_disconnect_from_a_callback_stops_delivery(impl, line_only):
    transport = Transport()
    framer = impl.LineFramer(line_only)
    sink = Sink(transport=transport)

    def quit(line):
        if line == b"quit":
            transport.disconnecting = True

    sink.on_line = quit
    framer.feed(sink, b"a\r\nquit\r\nb\r\nc")
    assert sink.lines == [b"a", b"quit"]
    assert framer.buffered() == b"b\r\nc"


def test_disconnecting_transport_raw_data_still_delivered(impl):
    transport = Transport(disconnecting=True)
    framer = impl.LineFramer()
    framer.line_mode = 0
    sink = Sink(transport=transport)
    framer.feed(sink, b"raw")
    assert sink.calls == [("raw", b"raw")]


# ---------------------------------------------------------------------------
# Data types
# ---------------------------------------------------------------------------


def test_bytes_like_data(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink()
    framer.feed(sink, bytearray(b"a\r\nb"))
    framer.feed(sink, memoryview(b"__c\r\nd")[2:])
    assert sink.lines == [b"a", b"bc"]
    assert all(type(line) is bytes for line in sink.lines)
    assert framer.buffered() == b"d" and type(framer.buffered()) is bytes
    framer.line_mode = 0
    framer.feed(sink, bytearray(b"raw"))
    assert sink.calls[-1] == ("raw", b"draw") and type(sink.calls[-1][1]) is bytes


def test_bytes_like_data_is_copied(impl):
    framer = impl.LineFramer()
    sink = Sink()
    data = bytearray(b"abc")
    framer.feed(sink, data)
    data[:] = b"XYZ"
    framer.feed(sink, b"\r\n")
    assert sink.lines == [b"abc"]


@pytest.mark.parametrize("bad", ["a\r\n", None, 42, [b"a"]], ids=repr)
def test_non_bytes_data_rejected(impl, line_only, bad):
    framer = impl.LineFramer(line_only)
    sink = Sink()
    framer.feed(sink, b"par")
    with pytest.raises(TypeError, match="bytes"):
        framer.feed(sink, bad)
    framer.feed(sink, b"tial\r\n")
    assert sink.lines == [b"partial"]


# ---------------------------------------------------------------------------
# Bad input and bounded memory
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1024, 700])
def test_memory_bounded_without_delimiter(impl, line_only, size):
    framer = impl.LineFramer(line_only)
    sink = Sink(MAX_LENGTH=1000)
    chunk = b"\r" * size  # every chunk ends inside a (never completed) delimiter
    total = 0
    exceeded = 0
    sink.on_exceeded = lambda data: None
    while total < 10 * 1024 * 1024:
        framer.feed(sink, chunk)
        total += size
        assert len(framer.buffered()) <= 1000 + 2 + size
        if len(sink.calls) > 64:  # keep the record small; count what we drop
            exceeded += sum(len(data) for _, data in sink.calls)
            sink.calls.clear()
    assert all(kind == "exceeded" for kind, _ in sink.calls)
    exceeded += sum(len(data) for _, data in sink.calls)
    assert exceeded + len(framer.buffered()) == total


def test_long_line_one_byte_at_a_time(impl, line_only):
    framer = impl.LineFramer(line_only)
    sink = Sink(delimiter=b"\r\n\r\n", MAX_LENGTH=50_000)
    line = bytes(range(256)).replace(b"\r", b"").replace(b"\n", b"") * 100
    stream = line + b"\r\n\r" + b"\n"
    for k in range(len(stream)):
        framer.feed(sink, stream[k : k + 1])
        if k < len(line) and k % 97 == 0:
            assert len(framer.buffered()) == k + 1
    assert sink.calls == [("line", line)]
    assert framer.idle is True


@pytest.mark.parametrize("limit", [0, 2**70, float("inf"), 2.5, float("nan")], ids=repr)
def test_max_length_edge_values(impl, line_only, limit):
    framer = impl.LineFramer(line_only)
    sink = Sink(MAX_LENGTH=limit)
    sink.on_exceeded = lambda data: None
    framer.feed(sink, b"\r\nab\r\nabc\r\n" + b"x" * 100_000 + b"\r\n")
    lines = {0: [b""], 2.5: [b"", b"ab"]}.get(limit, [b"", b"ab", b"abc", b"x" * 100_000])
    assert sink.lines == lines


# ---------------------------------------------------------------------------
# Against a model: delivered lines and buffered() at every step
# ---------------------------------------------------------------------------

DELIMITERS = [b"\r\n", b"\n", b"\x00", b"ab", b"aba", b"aa", b"\r\n\r\n"]


@settings(max_examples=150, deadline=None)
@given(
    delimiter=st.sampled_from(DELIMITERS),
    pieces=st.lists(st.lists(st.sampled_from(b"ab\r\n\x00x")).map(bytes), max_size=10),
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=8),
    only=st.booleans(),
)
def test_model(impl, delimiter, pieces, sizes, only):
    """For any stream and chunking (no long lines): after each feed, the lines so far
    are the fed prefix split on the delimiter, less the last piece, which is buffered()."""
    stream = delimiter.join(pieces)
    framer = impl.LineFramer(only)
    sink = Sink(delimiter=delimiter, MAX_LENGTH=len(stream))
    fed = 0
    index = 0
    while fed < len(stream):
        size = sizes[index % len(sizes)]
        index += 1
        framer.feed(sink, stream[fed : fed + size])
        fed += size
        split = stream[:fed].split(delimiter)
        assert sink.lines == split[:-1]
        assert framer.buffered() == split[-1]
        assert framer.idle == (split[-1] == b"")
    assert all(kind == "line" for kind, _ in sink.calls)
