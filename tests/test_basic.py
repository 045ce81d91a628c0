"""Protocol-level tests of txframe's drop-in LineReceiver and LineOnlyReceiver.

Every test that frames bytes takes the ``impl`` fixture, so it runs on both the compiled
and the pure framer. Most behaviour is checked against Twisted's own classes
(``twisted.protocols.basic``), differentially: the same scripted subclass of Twisted's
class and of txframe's class are fed the same chunks, and every callback, argument,
return value and exception must match. The deliberate differences from Twisted (see
the README) are tested as txframe behaviour, each marked ``# Difference N``:

1. data received while ``transport.disconnecting`` (line mode) is discarded;
2. LineOnlyReceiver honours pauseProducing / resumeProducing / stopProducing;
3. LineOnlyReceiver applies a delimiter change from the next line, and re-entrant
   dataReceived keeps the order of the stream;
4. LineOnlyReceiver keeps delivering after a too-long line, accepts a line of exactly
   MAX_LENGTH whatever the chunking, and clears the buffer of an unterminated long line;
5. works without a transport;
6. bytes-like data accepted, str data / str delimiter / empty delimiter rejected.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import protocol
from twisted.internet.testing import StringTransport
from twisted.protocols import basic as twisted_basic

from txframe import framing

from scripted import Boom, as_kind, chunk_ops, exception_record, typed


class SpyTransport(StringTransport):
    """A StringTransport that also records which write method was used."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def write(self, data):
        self.calls.append(("write", data))
        super().write(data)

    def writeSequence(self, seq):
        seq = tuple(seq)
        self.calls.append(("writeSequence", seq))
        super().writeSequence(seq)


# ---------------------------------------------------------------------------
# A plain recording subclass, with optional per-instance hooks.
# ---------------------------------------------------------------------------


def recorder(base, *, keep_open=False, **attrs):
    """A subclass of *base* recording callbacks in ``self.events``.

    ``on_line(proto, line)`` / ``on_raw(proto, data)`` instance hooks, if set, run
    inside the callbacks and their return value is the callback's. With *keep_open*,
    lineLengthExceeded records and does not drop the connection; otherwise it records
    and runs the default (which drops it).
    """

    def __init__(self):
        self.events = []

    def lineReceived(self, line):
        self.events.append(("line", line))
        if self.on_line is not None:
            return self.on_line(self, line)
        return None

    def rawDataReceived(self, data):
        self.events.append(("raw", data))
        if self.on_raw is not None:
            return self.on_raw(self, data)
        return None

    def lineLengthExceeded(self, line):
        self.events.append(("exceeded", line))
        if keep_open:
            return None
        return base.lineLengthExceeded(self, line)

    namespace = {
        "__init__": __init__,
        "lineReceived": lineReceived,
        "lineLengthExceeded": lineLengthExceeded,
        "on_line": None,
        "on_raw": None,
    }
    if hasattr(base, "rawDataReceived"):
        namespace["rawDataReceived"] = rawDataReceived
    namespace.update(attrs)
    return type(f"Recorder_{base.__module__}_{base.__name__}", (base,), namespace)


def connect(cls, transport=None, **attrs):
    proto = cls()
    for name, value in attrs.items():
        setattr(proto, name, value)
    transport = StringTransport() if transport is None else transport
    proto.makeConnection(transport)
    return proto, transport


def lines_of_events(events):
    return [value for kind, value in events if kind == "line"]


def lines_of(proto):
    return lines_of_events(proto.events)


def feed(proto, chunks):
    """Feed chunks, stopping once the transport is disconnecting; return the results."""
    results = []
    for chunk in chunks:
        if proto.transport is not None and proto.transport.disconnecting:
            break
        results.append(proto.dataReceived(chunk))
    return results


def every_chunking(data, max_pieces=3):
    """*data* split at every position into 1, 2 and 3 pieces, and one byte at a time."""
    yield [data]
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]
    if max_pieces >= 3:
        for i, j in itertools.combinations(range(len(data) + 1), 2):
            yield [data[:i], data[i:j], data[j:]]
    yield [data[k : k + 1] for k in range(len(data))]


# ---------------------------------------------------------------------------
# The scripted protocol for differential tests against Twisted.
# ---------------------------------------------------------------------------

#: Upper-case letters in received data script actions (see Scripted._script).
LR_COMMANDS = b"RKLPUSDMCFXETZ"
CONTENT = b"abxy\r\n\x00"
DELIMITERS = [b"\r\n", b"\n", b"\x00", b"ab", b"aba", b"aa", b"xyx", b"\r\n\r\n", b"a"]


class Scripted:
    """Mixin (put it first) recording every callback of a line protocol.

    Upper-case letters in a line or a raw chunk are actions, run left to right:

    ``R`` setRawMode; ``K`` setLineMode(); ``L`` (raw only) setLineMode(rest of the
    chunk, or nothing once disconnecting), then stop; ``P``/``U``/``S``
    pause/resume/stopProducing; ``D`` swap ``delimiter`` and ``other_delimiter``;
    ``M`` swap ``MAX_LENGTH`` and ``other_max``; ``C`` clearLineBuffer; ``F`` (first one only, and not once disconnecting) re-enter
    dataReceived with the rest (plus the delimiter in line mode); ``X``
    transport.loseConnection(); ``E`` raise Boom; ``T`` return the data (truthy);
    ``Z`` return 0.
    """

    other_delimiter = b"\n"
    other_max = 5

    def __init__(self):
        self.events = []

    def lineReceived(self, line):
        self.events.append(("line", type(line).__name__, line))
        return self._script(line, raw=False)

    def rawDataReceived(self, data):
        self.events.append(("raw", type(data).__name__, data))
        return self._script(data, raw=True)

    def lineLengthExceeded(self, line):
        self.events.append(("exceeded", type(line).__name__, line))
        return super().lineLengthExceeded(line)  # default: drop the connection

    def _script(self, data, raw):
        why = None
        fed = False
        for i, byte in enumerate(data):
            rest = data[i + 1 :]
            if byte == 0x52:  # R
                self.setRawMode()
            elif byte == 0x4B:  # K
                self.events.append(("setLineMode", typed(self.setLineMode())))
            elif byte == 0x4C and raw:  # L
                if self.transport.disconnecting:
                    rest = b""  # no feeding once disconnecting: see Difference 1
                self.events.append(("setLineMode", typed(self.setLineMode(rest))))
                break
            elif byte == 0x50:  # P
                self.pauseProducing()
            elif byte == 0x55:  # U
                self.resumeProducing()
            elif byte == 0x53:  # S
                self.stopProducing()
            elif byte == 0x44:  # D
                self.delimiter, self.other_delimiter = self.other_delimiter, self.delimiter
            elif byte == 0x4D:  # M
                self.MAX_LENGTH, self.other_max = self.other_max, self.MAX_LENGTH
            elif byte == 0x43:  # C
                self.events.append(("cleared", self.clearLineBuffer()))
            elif byte == 0x46 and not fed and not self.transport.disconnecting:  # F
                # (no feeding once disconnecting, like the driver: see Difference 1)
                fed = True
                more = rest if raw else rest + self.delimiter
                self.events.append(("reentered", typed(self.dataReceived(more))))
            elif byte == 0x58:  # X
                self.transport.loseConnection()
            elif byte == 0x45:  # E
                raise Boom(data)
            elif byte == 0x54:  # T
                why = data
            elif byte == 0x5A:  # Z
                why = 0
        return why


class TwistedScripted(Scripted, twisted_basic.LineReceiver):
    pass


class TwistedScriptedLineOnly(Scripted, twisted_basic.LineOnlyReceiver):
    pass


def scripted(base):
    return type(f"Scripted_{base.__name__}", (Scripted, base), {})


def drive(cls, scenario):
    """Run *scenario* on a fresh instance of *cls*; return everything observable."""
    proto = cls()
    proto.delimiter = scenario["delimiter"]
    proto.MAX_LENGTH = scenario["max_length"]
    proto.other_delimiter = scenario["other_delimiter"]
    proto.other_max = scenario["other_max"]
    transport = StringTransport()
    proto.makeConnection(transport)
    events = proto.events
    for op, arg in scenario["ops"]:
        if transport.disconnecting:
            break  # as a real transport would; see Difference 1
        try:
            if op == "data":
                kind, chunk = arg
                events.append(("returned", typed(proto.dataReceived(as_kind(kind, chunk)))))
            elif op == "pause":
                proto.pauseProducing()
                events.append(("paused",))
            elif op == "resume":
                proto.resumeProducing()
                events.append(("resumed",))
            elif op == "delim":
                proto.delimiter, proto.other_delimiter = proto.other_delimiter, proto.delimiter
            elif op == "max":
                proto.MAX_LENGTH, proto.other_max = proto.other_max, proto.MAX_LENGTH
        except Exception as exc:  # recorded, compared, and the stream goes on
            events.append(exception_record(exc))
    paused = proto.paused
    events.append(
        (
            "end",
            int(getattr(proto, "line_mode", 1)),
            bool(paused),
            transport.producerState,
            transport.disconnecting,
            proto.clearLineBuffer(),
            transport.value(),
        )
    )
    return events


@st.composite
def lr_scenarios(
    draw,
    commands=LR_COMMANDS,
    extra_ops=("pause", "resume", "delim", "max", "empty"),
    blank=8,
    small_chunks=True,
    quiet=6,
):
    """Scripted LineReceiver runs.

    *commands* are the script letters used; *extra_ops* what the driver may do between
    chunks (``"empty"`` feeds b""); *blank* weighs command-free choices against the
    commands; *small_chunks* mixes chunks of 1-4 bytes with larger ones, else every
    chunk is at least a quarter of the stream; *quiet* weighs "nothing" against the
    extra ops. Stops between chunks are covered by the ``S`` command.
    """
    max_length = draw(st.integers(0, 40))
    delimiter = draw(st.sampled_from(DELIMITERS))
    other_delimiter = draw(st.sampled_from(DELIMITERS))
    other_max = draw(st.integers(0, 40))
    command_choices = [b""] * blank + [bytes([c]) for c in commands]
    parts = []
    for _ in range(draw(st.integers(2, 14))):
        if draw(st.integers(0, 9)):
            length = draw(st.integers(0, min(6, max_length)))
        else:  # around MAX_LENGTH
            length = max(0, max_length + draw(st.integers(-1, 1)))
        body = bytearray(draw(st.lists(st.sampled_from(CONTENT), min_size=length, max_size=length)))
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
            command = draw(st.sampled_from(command_choices))
            if command:
                if body:  # replace, so the line keeps its length
                    body[draw(st.integers(0, len(body) - 1))] = command[0]
                else:
                    body += command
        terminator = draw(
            st.sampled_from([delimiter] * 20 + [delimiter[:-1], other_delimiter, b""])
        )
        parts.append(bytes(body) + terminator)
    stream = b"".join(parts)
    sizes = draw(
        st.lists(
            st.one_of(st.integers(1, 4), st.integers(1, max(len(stream), 1)))
            if small_chunks
            else st.integers(len(stream) // 4 + 1, max(len(stream), 1)),
            min_size=1,
            max_size=20,
        )
    )
    extras = draw(
        st.lists(st.sampled_from([None] * quiet + list(extra_ops)), min_size=1, max_size=20)
    )
    kinds = draw(
        st.lists(st.sampled_from(["bytes"] * 4 + ["bytearray", "memoryview"]), min_size=1, max_size=5)
    )
    ops = chunk_ops(stream, sizes, extras, kinds)
    ops.append(("resume", None))  # flush whatever a pause held back
    return {
        "delimiter": delimiter,
        "max_length": max_length,
        "other_delimiter": other_delimiter,
        "other_max": other_max,
        "ops": ops,
    }


# ---------------------------------------------------------------------------
# A. Differential property tests against Twisted's LineReceiver.
# ---------------------------------------------------------------------------


@settings(max_examples=250, deadline=None)
@given(scenario=lr_scenarios())
def test_line_receiver_matches_twisted(impl, scenario):
    expected = drive(TwistedScripted, scenario)
    assert drive(scripted(impl.LineReceiver), scenario) == expected


@settings(max_examples=100, deadline=None)
@given(scenario=lr_scenarios(commands=b"RKLTZX", extra_ops=("empty",)))
def test_line_receiver_mode_switching_matches_twisted(impl, scenario):
    """Raw/line switching and return values only, so long runs go on undisturbed."""
    expected = drive(TwistedScripted, scenario)
    assert drive(scripted(impl.LineReceiver), scenario) == expected


@settings(max_examples=150, deadline=None)
@given(
    scenario=lr_scenarios(
        commands=b"DMPTEC",
        extra_ops=("pause", "resume", "delim", "max", "empty"),
        blank=2,
        small_chunks=False,
        quiet=2,
    )
)
def test_line_receiver_attribute_changes_match_twisted(impl, scenario):
    """delimiter / MAX_LENGTH changes mixed with pauses, exceptions and return values."""
    expected = drive(TwistedScripted, scenario)
    assert drive(scripted(impl.LineReceiver), scenario) == expected


class LineOnlyModel(protocol.Protocol):
    """txframe's LineOnlyReceiver rules, written plainly after Twisted's LineReceiver.

    Differences 1-4: nothing is taken in while the transport is disconnecting;
    pause/resume/stop; the delimiter is read for every line and re-entrant data is
    appended; a too-long complete line goes to lineLengthExceeded alone and delivery
    goes on, an unterminated one once it reaches MAX_LENGTH + len(delimiter), clearing
    the buffer. Return values of lineReceived are ignored; dataReceived returns what
    the last lineLengthExceeded returned.
    """

    delimiter = b"\r\n"
    MAX_LENGTH = 16384
    paused = False
    _buffer = b""
    _busy = False

    def dataReceived(self, data):
        data = bytes(data)
        if self.transport is not None and self.transport.disconnecting:
            return None
        self._buffer += data
        if self._busy:
            return None
        self._busy = True
        result = None
        try:
            while self._buffer and not self.paused:
                delimiter = self.delimiter
                try:
                    line, self._buffer = self._buffer.split(delimiter, 1)
                except ValueError:
                    if len(self._buffer) >= self.MAX_LENGTH + len(delimiter):
                        line, self._buffer = self._buffer, b""
                        return self.lineLengthExceeded(line)
                    return result
                if len(line) > self.MAX_LENGTH:
                    result = self.lineLengthExceeded(line)
                else:
                    self.lineReceived(line)
                if self.transport is not None and self.transport.disconnecting:
                    return result
            return result
        finally:
            self._busy = False

    def clearLineBuffer(self):
        data, self._buffer = self._buffer, b""
        return data

    def lineLengthExceeded(self, line):
        return self.transport.loseConnection()

    def pauseProducing(self):
        self.paused = True
        self.transport.pauseProducing()

    def resumeProducing(self):
        self.paused = False
        self.transport.resumeProducing()
        self.dataReceived(b"")

    def stopProducing(self):
        self.paused = True
        self.transport.stopProducing()


class ScriptedLineOnlyModel(Scripted, LineOnlyModel):
    pass


@settings(max_examples=200, deadline=None)
@given(scenario=lr_scenarios(commands=b"PUSDMCFXETZ"))
def test_line_only_receiver_matches_model(impl, scenario):
    """LineOnlyReceiver, fully scripted, against the plain model of its rules."""
    expected = drive(ScriptedLineOnlyModel, scenario)
    assert drive(scripted(impl.LineOnlyReceiver), scenario) == expected


def test_line_only_model_is_twisted_where_twisted_is_sound():
    """The model agrees with Twisted's LineOnlyReceiver on a plain stream."""
    stream = b"alpha\r\nbeta\r\n\r\ngamma\rdelta\r\nXstop\r\nlost\r\n"
    for chunks in every_chunking(stream, max_pieces=2):
        scenario = {
            "delimiter": b"\r\n",
            "max_length": 40,
            "ops": [("data", ("bytes", chunk)) for chunk in chunks],
        }
        assert drive_line_only(ScriptedLineOnlyModel, scenario) == drive_line_only(
            TwistedScriptedLineOnly, scenario
        )


# ---------------------------------------------------------------------------
# B. Every split point against Twisted.
# ---------------------------------------------------------------------------

FIXED_STREAMS = {
    "crlf": (
        b"\r\n",
        10,
        b"one\r\n\r\ntwoZ\r\nRgo raw\r\nraw\rdataLthree\r\nDswap\nfour\nDback\r\n"
        b"Ppause\r\nfiveT\r\nsix\r\nE\r\nseven\r\n" + b"x" * 11 + b"\r\ntail",
    ),
    "overlapping": (
        b"aba",
        6,
        b"xxababaabababaxyaba" + b"abxyab" + b"aba" + b"Caba" + b"left",
    ),
    "reentrant": (
        b"\n",
        8,
        b"a\nFin\nb\nFx\n\nRrawKback\nlast\nMm\nlong line\nxyz",
    ),
    "clear": (b"\n", 8, b"one\ntwo\nCgone\nthree\nfour\n"),
    "lengths": (
        b"\r\n",
        5,
        b"12345\r\n1234\r\n\r\n12345\r\n1234\r\n123456",
    ),
}


def fixed_scenario(name, chunks):
    delimiter, max_length, _ = FIXED_STREAMS[name]
    ops = [("data", ("bytes", chunk)) for chunk in chunks]
    ops.append(("resume", None))
    return {
        "delimiter": delimiter,
        "max_length": max_length,
        "other_delimiter": b"\n" if delimiter != b"\n" else b"\r\n",
        "other_max": 3,
        "ops": ops,
    }


@pytest.mark.parametrize("name", sorted(FIXED_STREAMS))
def test_every_split_point_matches_twisted(impl, name):
    stream = FIXED_STREAMS[name][2]
    cls = scripted(impl.LineReceiver)
    for chunks in every_chunking(stream):
        scenario = fixed_scenario(name, chunks)
        assert drive(cls, scenario) == drive(TwistedScripted, scenario), chunks


def test_every_split_point_line_only_matches_twisted(impl):
    """LineOnlyReceiver, where Twisted's defects don't apply (short lines, X only)."""
    stream = b"alpha\r\nbeta\r\n\r\ngamma\rdelta\r\nXstop\r\nlost\r\n"
    cls = scripted(impl.LineOnlyReceiver)
    for chunks in every_chunking(stream):
        scenario = {
            "delimiter": b"\r\n",
            "max_length": 40,
            "other_delimiter": b"\n",
            "other_max": 40,
            "ops": [("data", ("bytes", chunk)) for chunk in chunks],
        }
        ours = drive_line_only(cls, scenario)
        assert ours == drive_line_only(TwistedScriptedLineOnly, scenario), chunks
        assert [e[2] for e in ours if e[0] == "line"] == [
            b"alpha",
            b"beta",
            b"",
            b"gamma\rdelta",
            b"Xstop",
        ]


# ---------------------------------------------------------------------------
# E. LineOnlyReceiver (and LineReceiver) against a model, and against Twisted.
# ---------------------------------------------------------------------------


def drive_line_only(cls, scenario):
    """Like drive(), for classes without the producer API (Twisted's LineOnlyReceiver)."""
    proto = cls()
    proto.delimiter = scenario["delimiter"]
    proto.MAX_LENGTH = scenario["max_length"]
    transport = StringTransport()
    proto.makeConnection(transport)
    for op, (kind, chunk) in scenario["ops"]:
        if transport.disconnecting:
            break
        proto.events.append(("returned", typed(proto.dataReceived(as_kind(kind, chunk)))))
    if not transport.disconnecting:
        # Twisted's LineOnlyReceiver drops the rest of a chunk after a disconnect, so
        # only the buffer of an open connection is comparable.
        clear = getattr(proto, "clearLineBuffer", None)
        proto.events.append(("buffered", proto._buffer if clear is None else clear()))
    proto.events.append(("end", transport.disconnecting))
    return proto.events


@st.composite
def split_model_cases(draw):
    delimiter = draw(st.sampled_from(DELIMITERS))
    pieces = draw(st.lists(st.binary(max_size=12).map(lambda b: bytes(CONTENT[c % len(CONTENT)] for c in b)), max_size=12))
    stream = delimiter.join(pieces) + draw(st.sampled_from([b"", delimiter, delimiter[:-1]]))
    split = stream.split(delimiter)
    max_length = max(len(p) for p in split) + draw(st.sampled_from([0, 0, 1, 5]))
    sizes = draw(st.lists(st.integers(1, max(len(stream), 1)), min_size=1, max_size=10))
    one_byte = draw(st.booleans())
    return delimiter, stream, max_length, [1] if one_byte else sizes


@pytest.mark.parametrize("cls_name", ["LineReceiver", "LineOnlyReceiver"])
@settings(max_examples=150, deadline=None)
@given(case=split_model_cases())
def test_lines_equal_split_model(impl, cls_name, case):
    """Lines all within MAX_LENGTH: delivered == stream.split(delimiter)[:-1], any chunking."""
    delimiter, stream, max_length, sizes = case
    proto, transport = connect(
        recorder(getattr(impl, cls_name)), delimiter=delimiter, MAX_LENGTH=max_length
    )
    ops = chunk_ops(stream, sizes, [None], ["bytes"])
    results = feed(proto, [chunk for _, (_, chunk) in ops])
    split = stream.split(delimiter)
    assert proto.events == [("line", line) for line in split[:-1]]
    assert results == [None] * len(ops)
    assert not transport.disconnecting
    assert proto.clearLineBuffer() == split[-1]


@st.composite
def line_only_scenarios(draw):
    delimiter = draw(st.sampled_from(DELIMITERS))
    max_length = draw(st.integers(2 * len(delimiter), 40))
    room = max_length - 2 * len(delimiter)  # lines well within MAX_LENGTH
    lines = draw(
        st.lists(
            st.lists(st.sampled_from(CONTENT + b"X"), max_size=room).map(bytes),
            max_size=12,
        )
    )
    stream = delimiter.join(lines) + draw(st.sampled_from([b"", delimiter, delimiter[:1]]))
    sizes = draw(st.lists(st.integers(1, max(len(stream), 1)), min_size=1, max_size=10))
    kinds = draw(st.lists(st.sampled_from(["bytes", "bytes", "bytearray", "memoryview"]), min_size=1, max_size=3))
    return {
        "delimiter": delimiter,
        "max_length": max_length,
        "ops": chunk_ops(stream, sizes, [None], kinds),
    }


@settings(max_examples=200, deadline=None)
@given(scenario=line_only_scenarios())
def test_line_only_receiver_matches_twisted(impl, scenario):
    """Short lines, no re-entrancy, no delimiter change: same as Twisted's."""
    expected = drive_line_only(TwistedScriptedLineOnly, scenario)
    assert drive_line_only(scripted(impl.LineOnlyReceiver), scenario) == expected


# ---------------------------------------------------------------------------
# C. Explicit behaviour, checked on Twisted's class too where the classes agree.
# ---------------------------------------------------------------------------


def both_line_receivers(impl):
    return [("twisted", twisted_basic.LineReceiver), (impl.name, impl.LineReceiver)]


@pytest.mark.parametrize("where", ["class", "instance"])
def test_delimiter_and_max_length_attributes(impl, where):
    stream = b"abc\nde\r\nfghij\nfghijk\nmore\n"
    for name, base in both_line_receivers(impl) + [("only", impl.LineOnlyReceiver)]:
        attrs = {"delimiter": b"\n", "MAX_LENGTH": 5}
        if where == "class":
            proto, transport = connect(recorder(base, **attrs))
        else:
            proto, transport = connect(recorder(base), **attrs)
        proto.dataReceived(stream)
        assert proto.events[:3] == [("line", b"abc"), ("line", b"de\r"), ("line", b"fghij")], name
        if base is impl.LineOnlyReceiver:
            assert proto.events[3:] == [("exceeded", b"fghijk")]
        else:
            assert proto.events[3:] == [("exceeded", b"fghijk\nmore\n")], name
        assert transport.disconnecting


def test_default_delimiter_and_max_length(impl):
    for cls in (impl.LineReceiver, impl.LineOnlyReceiver):
        assert cls.delimiter == b"\r\n"
        assert cls.MAX_LENGTH == 16384
        proto, transport = connect(recorder(cls))
        proto.dataReceived(b"a\nb\r\n" + b"x" * 16384 + b"\r\n")
        assert proto.events == [("line", b"a\nb"), ("line", b"x" * 16384)]
        proto.dataReceived(b"y" * 16385 + b"\r\n")
        assert proto.events[2][0] == "exceeded"
        assert transport.disconnecting


def test_delimiter_change_in_line_received_applies_from_next_line(impl):
    def switch(proto, line):
        if line == b"switch":
            proto.delimiter = b"|"

    stream = b"a\r\nswitch\r\nb|c\r\nd|e"
    for name, base in both_line_receivers(impl):
        for chunks in every_chunking(stream, max_pieces=2):
            proto, _ = connect(recorder(base))
            proto.on_line = switch
            feed(proto, chunks)
            assert lines_of(proto) == [b"a", b"switch", b"b", b"c\r\nd"], (name, chunks)
            assert proto.clearLineBuffer() == b"e"


@pytest.mark.parametrize("interruption", ["exception", "truthy return", "pause"])
def test_delimiter_change_then_interruption(impl, interruption):
    """The new delimiter applies to the next line even when lineReceived stops the loop."""

    def switch(proto, line):
        if line == b"switch":
            proto.delimiter = b"|"
            if interruption == "exception":
                raise Boom(line)
            if interruption == "truthy return":
                return "why"
            proto.pauseProducing()
        return None

    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base))
        proto.on_line = switch
        try:
            returned = proto.dataReceived(b"a\r\nswitch\r\nb|c\r\nd|e")
        except Boom:
            returned = "raised"
        assert returned == {"exception": "raised", "truthy return": "why", "pause": None}[
            interruption
        ]
        if interruption == "pause":
            proto.resumeProducing()
        else:
            proto.dataReceived(b"")
        assert lines_of(proto) == [b"a", b"switch", b"b", b"c\r\nd"], name
        assert proto.clearLineBuffer() == b"e"


@pytest.mark.parametrize("interruption", ["exception", "truthy return", "pause"])
def test_delimiter_change_between_calls_with_lines_held_back(impl, interruption):
    """Lines held back (by a pause, a truthy return or an exception) are split on the
    delimiter in force when they are delivered, as Twisted does."""

    def hold(proto, line):
        if line == b"hold":
            if interruption == "exception":
                raise Boom(line)
            if interruption == "truthy return":
                return "why"
            proto.pauseProducing()
        return None

    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base, delimiter=b"\n"))
        proto.on_line = hold
        try:
            proto.dataReceived(b"hold\nb\nc;d\n")
        except Boom:
            pass
        proto.delimiter = b";"
        if interruption == "pause":
            proto.resumeProducing()
        else:
            proto.dataReceived(b"")
        assert lines_of(proto) == [b"hold", b"b\nc"], name
        assert proto.clearLineBuffer() == b"d\n"


def _on_class(proto, name, value):
    setattr(type(proto), name, value)


def _on_base(proto, name, value):
    setattr(type(proto).__mro__[1], name, value)


def _on_instance(proto, name, value):
    setattr(proto, name, value)


def _deleted(proto, name, value):
    setattr(proto, name, value)
    delattr(proto, name)


@pytest.mark.parametrize("when", ["between calls", "in callback"])
@pytest.mark.parametrize("how", [_on_instance, _on_class, _on_base, _deleted], ids=lambda f: f.__name__)
def test_ways_of_changing_settings_match_twisted(impl, how, when):
    """Whatever carries delimiter / MAX_LENGTH, a change applies as with Twisted."""

    def change(proto):
        how(proto, "delimiter", b"|")
        how(proto, "MAX_LENGTH", 4)

    stream = [b"aaaa|bb\r\nchange\r\nc|dd\r\n", b"eeee|x\r\n", b"fffff|g"]
    results = []
    deferred = (when == "in callback" and how in (_on_class, _on_base)
                and impl.name == "compiled" and framing.Setting is not None)
    for base in (twisted_basic.LineReceiver, impl.LineReceiver):
        mid = type("Mid", (base,), {"delimiter": b"\r\n", "MAX_LENGTH": 10})
        cls = recorder(mid, keep_open=True)
        proto, _ = connect(cls)
        # The compiled framer sees a change made on a class in a callback from the
        # next dataReceived call (README, "All receivers"): as Twisted does a change
        # made between the calls.
        after_call = deferred and base is twisted_basic.LineReceiver
        if when == "in callback" and not after_call:
            proto.on_line = lambda proto, line: change(proto) if line == b"change" else None
        proto.dataReceived(stream[0])
        if when == "between calls" or after_call:
            change(proto)
        for chunk in stream[1:]:
            proto.dataReceived(chunk)
        results.append((proto.events, proto.clearLineBuffer(), proto.delimiter, proto.MAX_LENGTH))
    assert results[1] == results[0]


def test_property_settings_are_read_for_every_line(impl):
    class Dynamic:
        @property
        def delimiter(self):
            return b"\n" if len(self.events) % 2 else b"\r\n"

        @property
        def MAX_LENGTH(self):
            return 3 + len(self.events)

    results = []
    for base in (twisted_basic.LineReceiver, impl.LineReceiver):
        cls = recorder(type("D", (Dynamic, base), {}), keep_open=True)
        proto, _ = connect(cls)
        proto.dataReceived(b"ab\r\ncd\nef\r\nabcdefg\nx\r\n" + b"y" * 20 + b"\r\nzz")
        results.append((proto.events, proto.clearLineBuffer()))
    assert results[1] == results[0]
    assert lines_of_events(results[0][0])[:3] == [b"ab", b"cd", b"ef"]


def test_line_only_delimiter_change_applies_from_next_line(impl):
    # Difference 3: Twisted's LineOnlyReceiver splits a whole chunk on the old
    # delimiter (it would deliver b"b|c" here); txframe's applies it from the next line.
    def switch(proto, line):
        if line == b"switch":
            proto.delimiter = b"|"

    stream = b"a\r\nswitch\r\nb|c\r\nd|e"
    for chunks in every_chunking(stream, max_pieces=2):
        proto, _ = connect(recorder(impl.LineOnlyReceiver))
        proto.on_line = switch
        feed(proto, chunks)
        assert lines_of(proto) == [b"a", b"switch", b"b", b"c\r\nd"], chunks
        assert proto.clearLineBuffer() == b"e"


def test_max_length_change_in_line_received_applies_from_next_line(impl):
    def tighten(proto, line):
        if line == b"tighten":
            proto.MAX_LENGTH = 3

    stream = b"abcdef\r\ntighten\r\nabc\r\nabcd\r\nxyz\r\n"
    for name, base in both_line_receivers(impl):
        proto, transport = connect(recorder(base), MAX_LENGTH=10)
        proto.on_line = tighten
        assert proto.dataReceived(stream) is None
        assert proto.events == [
            ("line", b"abcdef"),
            ("line", b"tighten"),
            ("line", b"abc"),
            ("exceeded", b"abcd\r\nxyz\r\n"),
        ], name
        assert transport.disconnecting
    proto, transport = connect(recorder(impl.LineOnlyReceiver, keep_open=True), MAX_LENGTH=10)
    proto.on_line = tighten
    proto.dataReceived(stream)
    assert proto.events == [
        ("line", b"abcdef"),
        ("line", b"tighten"),
        ("line", b"abc"),
        ("exceeded", b"abcd"),
        ("line", b"xyz"),
    ]


def test_set_raw_mode_mid_chunk(impl):
    def go_raw(proto, line):
        if line == b"raw":
            proto.setRawMode()

    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base))
        proto.on_line = go_raw
        assert proto.dataReceived(b"one\r\nraw\r\nbinary\r\ndata") is None
        assert proto.line_mode == 0
        proto.dataReceived(b"more\r\n")
        assert proto.events == [
            ("line", b"one"),
            ("line", b"raw"),
            ("raw", b"binary\r\ndata"),
            ("raw", b"more\r\n"),
        ], name
        assert proto.clearLineBuffer() == b""


def test_set_line_mode_with_extra_mid_chunk(impl):
    def go_raw(proto, line):
        if line == b"raw":
            proto.setRawMode()

    def back(proto, data):
        if b"|" in data:
            proto.events.append(("setLineMode", proto.setLineMode(data[data.index(b"|") + 1 :])))

    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base))
        proto.on_line = go_raw
        proto.on_raw = back
        proto.dataReceived(b"raw\r\nbytes|l1\r\nl2\r\npart")
        assert proto.line_mode == 1
        assert proto.events == [
            ("line", b"raw"),
            ("raw", b"bytes|l1\r\nl2\r\npart"),
            ("setLineMode", None),
            ("line", b"l1"),
            ("line", b"l2"),
        ], name
        assert proto.clearLineBuffer() == b"part"


def test_set_line_mode_from_outside_delivers_extra(impl):
    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base))
        proto.setRawMode()
        proto.dataReceived(b"raw\r\n")
        proto.on_line = lambda proto, line: b"why" if line == b"y" else None
        assert proto.setLineMode(b"x\r\ny\r\nz\r\n") == b"why"
        assert proto.events == [("raw", b"raw\r\n"), ("line", b"x"), ("line", b"y")], name
        assert proto.setLineMode() is None
        assert proto.dataReceived(b"") is None
        assert proto.events[-1] == ("line", b"z")


def test_flipping_modes_byte_by_byte(impl):
    """Twisted's FlippingLineTester: one line, then one raw byte, then line mode."""

    def flip(proto, line):
        proto.setRawMode()

    def flop(proto, data):
        proto.setLineMode(data[1:])

    stream = b"\n".join(b"line%d" % i for i in range(20)) + b"\n"
    for chunks in ([stream], [stream[k : k + 1] for k in range(len(stream))]):
        results = []
        for name, base in both_line_receivers(impl):
            proto, _ = connect(recorder(base, delimiter=b"\n"))
            proto.on_line = flip
            proto.on_raw = flop
            feed(proto, chunks)
            results.append(proto.events)
        assert results[1] == results[0]
        assert lines_of_events(results[1]) == [b"line0"] + [b"ine%d" % i for i in range(1, 20)]


def test_clear_line_buffer_inside_callback(impl):
    def clear(proto, line):
        if line == b"clear":
            proto.events.append(("cleared", proto.clearLineBuffer()))

    for name, base in both_line_receivers(impl) + [("only", impl.LineOnlyReceiver)]:
        proto, _ = connect(recorder(base))
        proto.on_line = clear
        assert proto.dataReceived(b"a\r\nclear\r\nb\r\nc") is None
        assert proto.events == [("line", b"a"), ("line", b"clear"), ("cleared", b"b\r\nc")], name
        assert proto.clearLineBuffer() == b""
        proto.dataReceived(b"d\r\n")
        assert proto.events[-1] == ("line", b"d")


def test_clear_line_buffer_outside_callbacks(impl):
    for name, base in both_line_receivers(impl) + [("only", impl.LineOnlyReceiver)]:
        proto, _ = connect(recorder(base))
        assert proto.clearLineBuffer() == b""
        proto.dataReceived(b"x\r\npartial")
        assert proto.clearLineBuffer() == b"partial", name
        assert proto.clearLineBuffer() == b""
        proto.dataReceived(b"\r\n")
        assert proto.events == [("line", b"x"), ("line", b"")]


def test_clear_line_buffer_returns_complete_lines_held_back(impl):
    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base))
        proto.pauseProducing()
        proto.dataReceived(b"a\r\nb\r\nc")
        assert proto.clearLineBuffer() == b"a\r\nb\r\nc", name
        proto.resumeProducing()
        assert proto.events == []
        # a truthy return holds back the rest of the chunk too
        proto.on_line = lambda proto, line: b"stop"
        assert proto.dataReceived(b"d\r\ne\r\nf") == b"stop"
        assert proto.clearLineBuffer() == b"e\r\nf"


def test_clear_line_buffer_in_raw_mode(impl):
    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base))
        proto.setRawMode()
        proto.dataReceived(b"a\r\nb")
        assert proto.clearLineBuffer() == b"", name
        assert proto.events == [("raw", b"a\r\nb")]


def test_send_line(impl):
    for name, base in both_line_receivers(impl):
        proto, transport = connect(recorder(base), transport=SpyTransport())
        assert proto.sendLine(b"hello") is None
        proto.delimiter = b"\n"
        proto.sendLine(b"")
        assert transport.calls == [("write", b"hello\r\n"), ("write", b"\n")], name
        assert transport.value() == b"hello\r\n\n"
    proto, transport = connect(recorder(impl.LineOnlyReceiver), transport=SpyTransport())
    assert proto.sendLine(b"hello") is None
    proto.delimiter = b"\x00"
    proto.sendLine(b"x")
    assert transport.calls == [
        ("writeSequence", (b"hello", b"\r\n")),
        ("writeSequence", (b"x", b"\x00")),
    ]
    assert transport.value() == b"hello\r\nx\x00"


def test_line_length_exceeded_argument_line_receiver(impl):
    cases = [
        # a complete long line: the rest of the buffer, from the long line on
        ([b"short\r\n" + b"x" * 11 + b"\r\nmore\r\npartial"], [b"short"], b"x" * 11 + b"\r\nmore\r\npartial"),
        ([b"x" * 11 + b"\r\n"], [], b"x" * 11 + b"\r\n"),
        # no delimiter yet: exceeded once len(buffer) >= MAX_LENGTH + len(delimiter)
        ([b"x" * 12], [], b"x" * 12),
        ([b"ok\r\n", b"x" * 6, b"x" * 6, b"x\r\n"], [b"ok"], b"x" * 12),
        # ... even when the buffer ends inside the delimiter (as Twisted does)
        ([b"x" * 11 + b"\r", b"\n"], [], b"x" * 11 + b"\r"),
        ([b"y" * 10 + b"\r", b"\nz" + b"x" * 11], [b"y" * 10], b"z" + b"x" * 11),
    ]
    for name, base in both_line_receivers(impl):
        for chunks, lines, argument in cases:
            proto, transport = connect(recorder(base), MAX_LENGTH=10)
            feed(proto, chunks)
            assert proto.events == [("line", line) for line in lines] + [("exceeded", argument)], (
                name,
                chunks,
            )
            assert transport.disconnecting
            assert proto.clearLineBuffer() == b""
    # not yet too long: nothing happens
    for name, base in both_line_receivers(impl):
        proto, transport = connect(recorder(base), MAX_LENGTH=10)
        proto.dataReceived(b"x" * 11)
        assert proto.events == [] and not transport.disconnecting
        assert proto.clearLineBuffer() == b"x" * 11


def test_line_length_exceeded_argument_line_only_receiver(impl):
    proto, transport = connect(recorder(impl.LineOnlyReceiver), MAX_LENGTH=10)
    proto.dataReceived(b"short\r\n" + b"x" * 11 + b"\r\nmore\r\npartial")
    # just the offending line
    assert proto.events == [("line", b"short"), ("exceeded", b"x" * 11)]
    assert transport.disconnecting
    # unterminated: the buffered partial line
    proto, transport = connect(recorder(impl.LineOnlyReceiver), MAX_LENGTH=10)
    proto.dataReceived(b"ok\r\n" + b"x" * 11)
    assert proto.events == [("line", b"ok")]
    proto.dataReceived(b"x")
    assert proto.events == [("line", b"ok"), ("exceeded", b"x" * 12)]
    assert transport.disconnecting


def test_line_length_exceeded_may_reenter(impl):
    """Twisted's LineTester: data fed back from lineLengthExceeded waits for the next call."""

    for name, base in both_line_receivers(impl):

        class Catcher(recorder(base, keep_open=True, MAX_LENGTH=4)):
            def lineLengthExceeded(self, line):
                super().lineLengthExceeded(line)
                self.setLineMode(line[8:])

        proto, transport = connect(Catcher)
        assert proto.dataReceived(b"a\r\nxxxxxx\r\nb\r\nc\r\n") is None
        assert proto.events == [("line", b"a"), ("exceeded", b"xxxxxx\r\nb\r\nc\r\n")], name
        assert not transport.disconnecting
        proto.dataReceived(b"")
        assert proto.events[2:] == [("line", b"b"), ("line", b"c")], name


def test_pause_resume_stop_producing(impl):
    def pause(proto, line):
        if line == b"pause":
            proto.pauseProducing()

    for name, base in both_line_receivers(impl):
        proto, transport = connect(recorder(base))
        proto.on_line = pause
        assert not proto.paused
        assert proto.dataReceived(b"a\r\npause\r\nb\r\nc\r\npart") is None
        assert lines_of(proto) == [b"a", b"pause"], name
        assert proto.paused
        assert transport.producerState == "paused"
        assert proto.dataReceived(b"ial\r\nd\r\n") is None
        assert lines_of(proto) == [b"a", b"pause"]
        assert proto.resumeProducing() is None
        assert not proto.paused
        assert transport.producerState == "producing"
        assert lines_of(proto) == [b"a", b"pause", b"b", b"c", b"partial", b"d"]
        proto.stopProducing()
        assert proto.paused
        assert transport.producerState == "stopped"
        proto.dataReceived(b"e\r\n")
        assert lines_of(proto)[-1] == b"d"
        assert proto.clearLineBuffer() == b"e\r\n"


def test_pause_in_raw_mode(impl):
    for name, base in both_line_receivers(impl):
        proto, transport = connect(recorder(base))
        proto.setRawMode()
        proto.pauseProducing()
        proto.dataReceived(b"raw1")
        proto.dataReceived(b"raw2")
        assert proto.events == []
        proto.resumeProducing()
        assert proto.events == [("raw", b"raw1raw2")], name


def test_pause_and_resume_inside_one_callback(impl):
    def blip(proto, line):
        if line == b"blip":
            proto.pauseProducing()
            proto.resumeProducing()

    for name, base in both_line_receivers(impl):
        proto, transport = connect(recorder(base))
        proto.on_line = blip
        proto.dataReceived(b"blip\r\nnext\r\n")
        assert lines_of(proto) == [b"blip", b"next"], name
        assert not proto.paused and transport.producerState == "producing"


def test_reentrant_data_received_order(impl):
    def reenter(proto, line):
        if line == b"first":
            proto.events.append(("inner", proto.dataReceived(b"inner\r\n")))

    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base))
        proto.on_line = reenter
        proto.dataReceived(b"first\r\nsecond\r\nthi")
        assert proto.events == [
            ("line", b"first"),
            ("inner", None),
            ("line", b"second"),
            ("line", b"thiinner"),
        ], name


def test_line_only_reentrant_data_received_order(impl):
    # Difference 3: re-entrant dataReceived keeps the order of the stream (Twisted's
    # LineOnlyReceiver would deliver b"thiinner" before b"second").
    def reenter(proto, line):
        if line == b"first":
            proto.events.append(("inner", proto.dataReceived(b"inner\r\n")))

    proto, _ = connect(recorder(impl.LineOnlyReceiver))
    proto.on_line = reenter
    proto.dataReceived(b"first\r\nsecond\r\nthi")
    assert proto.events == [
        ("line", b"first"),
        ("inner", None),
        ("line", b"second"),
        ("line", b"thiinner"),
    ]


def test_delivery_stops_once_disconnecting(impl):
    def quit(proto, line):
        if line == b"quit":
            proto.transport.loseConnection()

    for name, base in both_line_receivers(impl) + [("only", impl.LineOnlyReceiver)]:
        proto, transport = connect(recorder(base))
        proto.on_line = quit
        assert proto.dataReceived(b"a\r\nquit\r\nb\r\nc") is None
        assert lines_of(proto) == [b"a", b"quit"], name
        assert transport.disconnecting
        assert proto.clearLineBuffer() == b"b\r\nc"


def test_transport_is_read_once_per_data_received(impl):
    """Difference: txframe reads self.transport once per dataReceived call (Twisted
    reads it after every line), so a transport swapped in by a callback is used from
    the next call on."""

    def swap(proto, line):
        if line == b"swap":
            replacement = StringTransport()
            replacement.loseConnection()
            proto.transport = replacement

    for name, base in [("line", impl.LineReceiver), ("only", impl.LineOnlyReceiver)]:
        proto, _ = connect(recorder(base))
        proto.on_line = swap
        proto.dataReceived(b"a\r\nswap\r\nb\r\nc\r\n")
        assert lines_of(proto) == [b"a", b"swap", b"b", b"c"], name
        proto.dataReceived(b"d\r\n")  # the new transport is disconnecting
        assert lines_of(proto) == [b"a", b"swap", b"b", b"c"], name


def test_settings_in_instance_dict(impl):
    """Whatever ``proto.delimiter`` / ``proto.MAX_LENGTH`` read is what the framer uses,
    even after a write straight into the instance's __dict__ (which a compiled build's
    Setting descriptors do not see: assign through the attribute instead)."""
    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base))
        proto.__dict__["delimiter"] = b"\n"
        proto.__dict__["MAX_LENGTH"] = 3
        delimiter, limit = proto.delimiter, proto.MAX_LENGTH
        assert (delimiter, limit) in ((b"\n", 3), (b"\r\n", 16384)), name
        proto.dataReceived(b"a" + delimiter + b"bcde" + delimiter)
        expected = [("line", b"a")] + (
            [("exceeded", b"bcde" + delimiter)] if limit == 3 else [("line", b"bcde")]
        )
        assert proto.events == expected, name


def test_falsy_return_when_disconnecting_is_returned(impl):
    """Twisted returns lineReceived's (falsy) value when it stops for a disconnect."""

    def quit(proto, line):
        proto.transport.loseConnection()
        return 0

    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base))
        proto.on_line = quit
        assert typed(proto.dataReceived(b"a\r\nb\r\n")) == ("int", 0), name


def test_truthy_return_stops_processing(impl):
    def stop(proto, line):
        if line == b"stop":
            return "why"
        return None

    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base))
        proto.on_line = stop
        assert proto.dataReceived(b"a\r\nstop\r\nb\r\nc\r\n") == "why"
        assert lines_of(proto) == [b"a", b"stop"], name
        assert proto.dataReceived(b"") is None
        assert lines_of(proto) == [b"a", b"stop", b"b", b"c"]


def test_truthy_return_from_raw_data_received(impl):
    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base))
        proto.setRawMode()
        proto.on_raw = lambda proto, data: data
        assert proto.dataReceived(b"abc") == b"abc", name
        proto.on_raw = lambda proto, data: 0
        assert proto.dataReceived(b"def") is None


def test_line_only_ignores_return_values(impl):
    proto, _ = connect(recorder(impl.LineOnlyReceiver))
    proto.on_line = lambda proto, line: "ignored"
    assert proto.dataReceived(b"a\r\nb\r\n") is None
    assert lines_of(proto) == [b"a", b"b"]


@pytest.mark.parametrize("cls_name", ["LineReceiver", "LineOnlyReceiver"])
def test_exception_propagates_and_next_call_continues(impl, cls_name):
    # For LineOnlyReceiver this is txframe behaviour: Twisted's loses the rest of the
    # chunk after an exception.
    def bad(proto, line):
        if line.startswith(b"bad"):
            raise Boom(line)

    bases = [getattr(impl, cls_name)]
    if cls_name == "LineReceiver":
        bases.append(twisted_basic.LineReceiver)
    for base in bases:
        proto, _ = connect(recorder(base))
        proto.on_line = bad
        with pytest.raises(Boom) as info:
            proto.dataReceived(b"a\r\nbad1\r\nb\r\nbad2\r\nc\r\nd")
        assert info.value.args == (b"bad1",)
        assert lines_of(proto) == [b"a", b"bad1"]
        with pytest.raises(Boom) as info:
            proto.dataReceived(b"")
        assert info.value.args == (b"bad2",)
        assert proto.dataReceived(b"\r\n") is None
        assert lines_of(proto) == [b"a", b"bad1", b"b", b"bad2", b"c", b"d"], base


def test_line_received_not_implemented(impl):
    for cls in (impl.LineReceiver, impl.LineOnlyReceiver):
        proto, _ = connect(cls)
        with pytest.raises(NotImplementedError):
            proto.dataReceived(b"x\r\n")
    proto, _ = connect(impl.LineReceiver)
    proto.setRawMode()
    with pytest.raises(NotImplementedError):
        proto.dataReceived(b"x")


def test_line_mode_attribute(impl):
    proto, _ = connect(recorder(impl.LineReceiver))
    assert proto.line_mode == 1
    proto.setRawMode()
    assert proto.line_mode == 0
    proto.setLineMode()
    assert proto.line_mode == 1
    proto.line_mode = 0
    proto.dataReceived(b"a\r\n")
    proto.line_mode = 1
    proto.dataReceived(b"b\r\n")
    assert proto.events == [("raw", b"a\r\n"), ("line", b"b")]


def test_line_mode_class_attribute_starts_in_raw_mode(impl):
    """Twisted reads line_mode from the instance, so a subclass may start in raw mode."""
    for name, base in both_line_receivers(impl):
        proto, _ = connect(recorder(base, line_mode=0))
        proto.dataReceived(b"a\r\nb")
        assert proto.events == [("raw", b"a\r\nb")], name
        proto.setLineMode(b"c\r\n")
        assert proto.events[-1] == ("line", b"c"), name


def test_valid_lines_before_a_bad_one_are_delivered(impl):
    stream = b"one\r\ntwo\r\n" + b"x" * 20 + b"\r\nthree\r\n"
    for name, base in both_line_receivers(impl) + [("only", impl.LineOnlyReceiver)]:
        for chunks in ([stream], [stream[k : k + 1] for k in range(len(stream))]):
            proto, transport = connect(recorder(base), MAX_LENGTH=10)
            feed(proto, chunks)
            assert lines_of(proto) == [b"one", b"two"], (name, len(chunks))
            assert proto.events[2][0] == "exceeded"
            assert proto.events[2][1].startswith(b"x" * 12)
            assert transport.disconnecting


# ---------------------------------------------------------------------------
# D. Deliberate differences from Twisted.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls_name", ["LineReceiver", "LineOnlyReceiver"])
def test_data_after_lose_connection_is_discarded(impl, cls_name):
    # Difference 1: Twisted's LineReceiver delivers one more line per dataReceived after
    # the transport started disconnecting; txframe delivers nothing.
    proto, transport = connect(recorder(getattr(impl, cls_name)))
    proto.dataReceived(b"a\r\npar")
    transport.loseConnection()
    assert proto.dataReceived(b"tial\r\nb\r\n") is None
    assert proto.dataReceived(b"c\r\n") is None
    assert proto.events == [("line", b"a")]
    assert proto.clearLineBuffer() == b"par"


@pytest.mark.parametrize("cls_name", ["LineReceiver", "LineOnlyReceiver"])
def test_reentrant_data_after_lose_connection_is_discarded(impl, cls_name):
    # Difference 1: data fed from a callback after it dropped the connection is
    # discarded too (Twisted would buffer it and deliver it on the next dataReceived).
    def quit(proto, line):
        if line == b"quit":
            proto.transport.loseConnection()
            proto.events.append(("inner", proto.dataReceived(b"more\r\n")))

    proto, transport = connect(recorder(getattr(impl, cls_name)))
    proto.on_line = quit
    assert proto.dataReceived(b"a\r\nquit\r\nb\r\n") is None
    assert proto.events == [("line", b"a"), ("line", b"quit"), ("inner", None)]
    assert proto.clearLineBuffer() == b"b\r\n"


def test_data_after_lose_connection_in_raw_mode_is_delivered(impl):
    # Difference 1 is about line mode only: raw data still goes to rawDataReceived, as
    # with Twisted.
    for name, base in both_line_receivers(impl):
        proto, transport = connect(recorder(base))
        proto.setRawMode()
        transport.loseConnection()
        proto.dataReceived(b"raw\r\n")
        assert proto.events == [("raw", b"raw\r\n")], name


def test_data_after_long_line_is_discarded(impl):
    # Difference 1: after the default lineLengthExceeded dropped the connection.
    for cls in (impl.LineReceiver, impl.LineOnlyReceiver):
        proto, transport = connect(recorder(cls), MAX_LENGTH=3)
        proto.dataReceived(b"toolong\r\n")
        assert transport.disconnecting
        proto.dataReceived(b"a\r\nb\r\n")
        assert len(proto.events) == 1 and proto.events[0][0] == "exceeded"


def test_line_only_pause_resume_stop(impl):
    # Difference 2: Twisted's LineOnlyReceiver has no producer methods.
    def pause(proto, line):
        if line == b"pause":
            proto.pauseProducing()

    proto, transport = connect(recorder(impl.LineOnlyReceiver))
    proto.on_line = pause
    assert not proto.paused
    proto.dataReceived(b"a\r\npause\r\nb\r\nc")
    assert lines_of(proto) == [b"a", b"pause"]
    assert proto.paused and transport.producerState == "paused"
    proto.dataReceived(b"\r\nd\r\n")
    assert lines_of(proto) == [b"a", b"pause"]
    proto.resumeProducing()
    assert not proto.paused and transport.producerState == "producing"
    assert lines_of(proto) == [b"a", b"pause", b"b", b"c", b"d"]
    proto.stopProducing()
    assert proto.paused and transport.producerState == "stopped"
    proto.dataReceived(b"e\r\n")
    assert lines_of(proto)[-1] == b"d"


def test_line_only_continues_after_long_line(impl):
    # Difference 4: with a lineLengthExceeded that keeps the connection open, the lines
    # after a too-long one are still delivered (Twisted's stops at the long line).
    stream = b"ok\r\ntoo long\r\nfine\r\nalso too long\r\nlast\r\n"
    expected = [
        ("line", b"ok"),
        ("exceeded", b"too long"),
        ("line", b"fine"),
        ("exceeded", b"also too long"),
        ("line", b"last"),
    ]
    by_line = [line + b"\r\n" for line in stream.split(b"\r\n")[:-1]]
    for chunks in ([stream], by_line):
        proto, transport = connect(recorder(impl.LineOnlyReceiver, keep_open=True), MAX_LENGTH=5)
        feed(proto, chunks)
        assert proto.events == expected, chunks
        assert not transport.disconnecting
    # One byte at a time, a long line is cut before its delimiter arrives: the partial
    # line is passed to lineLengthExceeded once it reaches MAX_LENGTH + len(delimiter),
    # the buffer is cleared, and what follows is a new line.
    proto, transport = connect(recorder(impl.LineOnlyReceiver, keep_open=True), MAX_LENGTH=5)
    feed(proto, [stream[k : k + 1] for k in range(len(stream))])
    assert proto.events == [
        ("line", b"ok"),
        ("exceeded", b"too lon"),
        ("line", b"g"),
        ("line", b"fine"),
        ("exceeded", b"also to"),
        ("exceeded", b"o long\r"),
        ("line", b"\nlast"),  # the "\n" left over from the cleared line's delimiter
    ]
    assert not transport.disconnecting


def test_line_only_returns_line_length_exceeded_result(impl):
    cls = recorder(impl.LineOnlyReceiver, MAX_LENGTH=2)
    cls.lineLengthExceeded = lambda self, line: ("result", line)
    proto, _ = connect(cls)
    assert proto.dataReceived(b"abc\r\nd\r\n") == ("result", b"abc")
    assert proto.events == [("line", b"d")]


def test_line_only_exact_max_length_any_chunking(impl):
    # Difference 4: a line of exactly MAX_LENGTH is accepted even when a chunk ends
    # inside the delimiter (Twisted's rejects it then).
    stream = b"0123456789\r\n" * 2 + b"abc\r\n"
    for chunks in every_chunking(stream):
        proto, transport = connect(recorder(impl.LineOnlyReceiver), MAX_LENGTH=10)
        feed(proto, chunks)
        assert proto.events == [
            ("line", b"0123456789"),
            ("line", b"0123456789"),
            ("line", b"abc"),
        ], chunks
        assert not transport.disconnecting


def test_line_only_unterminated_threshold_and_clear(impl):
    # Difference 4: an unterminated line triggers lineLengthExceeded(buffer) only once
    # len(buffer) >= MAX_LENGTH + len(delimiter); the buffer is then cleared.
    proto, transport = connect(
        recorder(impl.LineOnlyReceiver, keep_open=True), MAX_LENGTH=10, delimiter=b"\r\n"
    )
    proto.dataReceived(b"x" * 11)
    assert proto.events == []
    assert proto.clearLineBuffer() == b"x" * 11
    proto.dataReceived(b"x" * 11)
    proto.dataReceived(b"y")
    assert proto.events == [("exceeded", b"x" * 11 + b"y")]
    assert proto.clearLineBuffer() == b""
    proto.dataReceived(b"tail\r\nnext\r\n")
    assert proto.events[1:] == [("line", b"tail"), ("line", b"next")]
    assert not transport.disconnecting


@pytest.mark.parametrize("cls_name", ["LineReceiver", "LineOnlyReceiver"])
def test_without_transport(impl, cls_name):
    # Difference 5: no transport at all (twisted #5277).
    cls = getattr(impl, cls_name)
    proto = recorder(cls, MAX_LENGTH=5)()
    assert proto.transport is None
    assert proto.dataReceived(b"a\r\nb\r\n") is None
    assert lines_of(proto) == [b"a", b"b"]
    proto.pauseProducing()
    assert proto.paused
    proto.dataReceived(b"c\r\n")
    assert lines_of(proto) == [b"a", b"b"]
    proto.resumeProducing()
    assert not proto.paused
    assert lines_of(proto) == [b"a", b"b", b"c"]
    proto.stopProducing()
    assert proto.paused
    proto.resumeProducing()
    assert proto.lineLengthExceeded(b"whatever") is None  # the default does nothing
    proto.dataReceived(b"toolong\r\nd\r\n")
    assert proto.events[3][0] == "exceeded"
    # with nothing to disconnect, delivery goes on
    proto.dataReceived(b"e\r\n")
    assert proto.events[-1] == ("line", b"e")
    plain = cls()
    assert plain.lineLengthExceeded(b"x") is None


@pytest.mark.parametrize("cls_name", ["LineReceiver", "LineOnlyReceiver"])
def test_bytes_like_data(impl, cls_name):
    # Difference 6: bytearray and memoryview accepted; lines are always bytes.
    proto, _ = connect(recorder(getattr(impl, cls_name)))
    proto.dataReceived(bytearray(b"a\r\nb"))
    proto.dataReceived(memoryview(b"c\r\nd\r\n"))
    proto.dataReceived(memoryview(b"xxe\r\nyy")[2:])
    assert lines_of(proto) == [b"a", b"bc", b"d", b"e"]
    assert all(type(line) is bytes for line in lines_of(proto))
    rest = proto.clearLineBuffer()
    assert rest == b"yy" and type(rest) is bytes


def test_raw_data_is_bytes(impl):
    # Difference 6: raw data is bytes too.
    proto, _ = connect(recorder(impl.LineReceiver))
    proto.setRawMode()
    proto.dataReceived(bytearray(b"ab"))
    proto.dataReceived(memoryview(b"cd"))
    assert proto.events == [("raw", b"ab"), ("raw", b"cd")]
    assert all(type(data) is bytes for _, data in proto.events)


@pytest.mark.parametrize("cls_name", ["LineReceiver", "LineOnlyReceiver"])
def test_str_data_is_rejected(impl, cls_name):
    # Difference 6: str data raises a TypeError that says bytes are needed.
    proto, _ = connect(recorder(getattr(impl, cls_name)))
    proto.dataReceived(b"a\r\npart")
    with pytest.raises(TypeError, match="bytes"):
        proto.dataReceived("b\r\n")
    with pytest.raises(TypeError, match="bytes"):
        proto.dataReceived(None)
    proto.dataReceived(b"ial\r\n")
    assert lines_of(proto) == [b"a", b"partial"]


@pytest.mark.parametrize("cls_name", ["LineReceiver", "LineOnlyReceiver"])
def test_bad_delimiters_are_rejected(impl, cls_name):
    # Difference 6: a str delimiter is a TypeError, an empty one a ValueError.
    proto, _ = connect(recorder(getattr(impl, cls_name)), delimiter="\r\n")
    with pytest.raises(TypeError):
        proto.dataReceived(b"a\r\n")
    assert lines_of(proto) == []
    proto, _ = connect(recorder(getattr(impl, cls_name)), delimiter=b"")
    with pytest.raises(ValueError):
        proto.dataReceived(b"a\r\n")
    assert lines_of(proto) == []
    # and set in a callback, it is rejected before the next line
    proto, _ = connect(recorder(getattr(impl, cls_name)))
    proto.on_line = lambda proto, line: setattr(proto, "delimiter", "\n")
    with pytest.raises(TypeError):
        proto.dataReceived(b"a\r\nb\nc\r\n")
    assert lines_of(proto) == [b"a"]


# ---------------------------------------------------------------------------
# F. Bad input.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1024, 333])
@pytest.mark.parametrize("cls_name", ["LineReceiver", "LineOnlyReceiver"])
def test_memory_bounded_without_delimiter(impl, cls_name, size):
    """10 MB without a delimiter, lineLengthExceeded keeping the connection open."""
    chunk = b"z" * size
    cls = recorder(getattr(impl, cls_name), keep_open=True, MAX_LENGTH=1000)
    proto, transport = connect(cls)
    total = 0
    most = 0
    while total < 10 * 1024 * 1024:
        proto.dataReceived(chunk)
        total += len(chunk)
        framer = proto._framer
        held = 0 if framer is None else len(framer.buffered())
        most = max(most, held)
        assert held <= 1000 + 2 + len(chunk)
    assert not transport.disconnecting
    assert all(kind == "exceeded" for kind, _ in proto.events)
    exceeded = [value for _, value in proto.events]
    assert all(len(value) >= 1002 for value in exceeded)
    if size == 1024:
        assert len(exceeded) == total // size  # every chunk is a too-long line
    else:
        assert most >= 999  # data did accumulate between calls
    # nothing lost, nothing duplicated
    assert sum(map(len, exceeded)) + len(proto.clearLineBuffer()) == total


@pytest.mark.parametrize(
    "max_length",
    [0, 1, 2, 2**70, float("inf"), -1, -(2**70), 2.5, float("nan"), float("-inf"), Fraction(7, 2), True],
    ids=repr,
)
def test_max_length_edge_values_match_twisted(impl, max_length):
    stream = b"\r\n" + b"a\r\n" + b"bb\r\n" + b"c" * 100 + b"\r\n" + b"d" * 50_000 + b"\r\nend\r\ntail"
    for chunks in ([stream], [stream[:1], stream[1:3], stream[3:]], [stream[k : k + 7] for k in range(0, len(stream), 7)]):
        results = []
        for base in (twisted_basic.LineReceiver, impl.LineReceiver):
            proto, transport = connect(recorder(base), MAX_LENGTH=max_length)
            returned = feed(proto, chunks)
            results.append((proto.events, returned, transport.disconnecting, proto.clearLineBuffer()))
        assert results[1] == results[0], (max_length, len(chunks))


def test_max_length_edge_values(impl):
    for cls in (impl.LineReceiver, impl.LineOnlyReceiver):
        proto, transport = connect(recorder(cls), MAX_LENGTH=0)
        proto.dataReceived(b"\r\n\r\na\r\n")
        assert proto.events == [("line", b""), ("line", b""), ("exceeded", proto.events[2][1])]
        assert proto.events[2][1].startswith(b"a")
        assert transport.disconnecting
        proto, transport = connect(recorder(cls), MAX_LENGTH=1)
        proto.dataReceived(b"a\r\nbb\r\n")
        assert proto.events[0] == ("line", b"a") and proto.events[1][0] == "exceeded"
        for huge in (2**70, float("inf")):
            proto, transport = connect(recorder(cls), MAX_LENGTH=huge)
            proto.dataReceived(b"x" * 200_000 + b"\r\n" + b"y" * 100_000)
            assert proto.events == [("line", b"x" * 200_000)]
            assert proto.clearLineBuffer() == b"y" * 100_000
            assert not transport.disconnecting


def test_stream_without_delimiter_with_default_handler(impl):
    for name, base in both_line_receivers(impl) + [("only", impl.LineOnlyReceiver)]:
        proto, transport = connect(recorder(base), MAX_LENGTH=100)
        results = feed(proto, [b"q" * 30] * 10)
        assert len(results) == 4, name  # the 4th chunk reached MAX_LENGTH + 2
        assert proto.events == [("exceeded", b"q" * 120)], name
        assert transport.disconnecting
