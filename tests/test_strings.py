"""Protocol- and framer-level tests of txframe's length-prefixed string receivers
(IntNStringReceiver, Int32StringReceiver, Int16StringReceiver, Int8StringReceiver) and
of StatefulStringProtocol used with them. Netstrings are in test_netstrings.py.

Every test that frames bytes takes the ``impl`` fixture, so it runs on both the compiled
and the pure framer. Behaviour is checked against Twisted's own classes
(``twisted.protocols.basic``) differentially where Twisted is well defined; the
deliberate differences are tested as txframe behaviour, each marked ``# Difference N``:

1. (#8105) after ``lengthLimitExceeded`` the strings already processed are never
   delivered again; if the callback neither disconnects nor raises ``MAX_LENGTH``, the
   oversized string is skipped as it arrives (never buffered) and the strings after it
   are delivered; if it raises ``MAX_LENGTH`` enough, the string is delivered; a
   negative declared length (signed formats) goes to ``lengthLimitExceeded``;
2. after an exception from ``stringReceived`` the next ``dataReceived`` goes on with the
   next string (Twisted delivers the earlier ones again);
3. a ``dataReceived`` re-entered from ``stringReceived`` keeps the stream's order;
5. pauseProducing / resumeProducing / stopProducing are honoured (as in Twisted's IntN);
6. bytearray / memoryview data accepted, str data rejected with a TypeError.

(Difference 4 is the netstrings' ``netstringParseError``: see test_netstrings.py.)
"""

from __future__ import annotations

import struct
from fractions import Fraction
from struct import calcsize, pack

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.protocols import basic as twisted_basic
from twisted.python import log

from scripted import Boom, as_kind, chunk_ops, exception_record, typed
from txframe import basic as txframe_basic
from txframe import framing
from txframe.testing import chunks as cut_into


def frame(string, fmt="!I"):
    return pack(fmt, len(string)) + string


def frames(strings, fmt="!I"):
    return b"".join(frame(s, fmt) for s in strings)


def connect(cls, transport=None, **attrs):
    proto = cls()
    for name, value in attrs.items():
        setattr(proto, name, value)
    transport = StringTransport() if transport is None else transport
    proto.makeConnection(transport)
    return proto, transport


def recorder(base, *, keep_open=False, **attrs):
    """A subclass of *base* recording ``("string", s)`` and ``("exceeded", n, recvd)``.

    ``on_string(proto, string)`` / ``on_exceeded(proto, length)``, if set on the
    instance, run inside the callbacks. With *keep_open*, lengthLimitExceeded only
    records; otherwise it records and runs the default (which drops the connection).
    """

    def __init__(self):
        self.events = []

    def stringReceived(self, string):
        self.events.append(("string", string))
        if self.on_string is not None:
            self.on_string(self, string)

    def lengthLimitExceeded(self, length):
        self.events.append(("exceeded", length, self.recvd))
        if self.on_exceeded is not None:
            self.on_exceeded(self, length)
        if not keep_open:
            base.lengthLimitExceeded(self, length)

    namespace = {
        "__init__": __init__,
        "stringReceived": stringReceived,
        "lengthLimitExceeded": lengthLimitExceeded,
        "on_string": None,
        "on_exceeded": None,
    }
    namespace.update(attrs)
    return type(f"Recorder_{base.__module__}_{base.__name__}", (base,), namespace)


def strings_of(proto):
    return [event[1] for event in proto.events if event[0] == "string"]


def feed(proto, chunks):
    """Feed chunks, stopping once the transport is disconnecting."""
    for chunk in chunks:
        if proto.transport is not None and proto.transport.disconnecting:
            break
        proto.dataReceived(chunk)


def chunkings(data):
    """*data* whole, split at every position, and one byte at a time."""
    yield [data]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    yield [data[k : k + 1] for k in range(len(data))]


def held(proto):
    """What the framer holds (not via ``recvd``, so nothing is made on demand)."""
    framer = proto._framer
    return b"" if framer is None else framer.buffered()


# The classes under test, by kind: Twisted's and txframe's (the latter per impl).
FORMATS = [
    ("Int32", "!I"),
    ("Int16", "!H"),
    ("Int8", "!B"),
    ("custom", "<I"),  # little-endian
    ("custom", "!Q"),  # 8 bytes
    ("custom", "<H"),
    ("custom", ">I"),  # the compiled fast path, in a subclass of IntNStringReceiver
    ("custom", "=H"),
    ("custom", "<B"),
]


def base_class(module, kind, fmt):
    """Twisted's (``module`` is twisted's basic) or an impl's class for *kind*."""
    if kind == "custom":
        return type(
            f"Custom_{fmt}",
            (module.IntNStringReceiver,),
            {"structFormat": fmt, "prefixLength": calcsize(fmt)},
        )
    return getattr(module, f"{kind}StringReceiver")


# ---------------------------------------------------------------------------
# The scripted protocol for differential tests against Twisted.
# ---------------------------------------------------------------------------

#: Upper-case letters in a received string script actions (see IntScripted).
INT_COMMANDS = b"PRAZMXEW"


def normalized(recvd):
    # Twisted hands back the very object assigned to recvd, so after AMP's
    # `self.recvd = ""` it reads as the str ""; txframe's buffer is always bytes.
    return b"" if isinstance(recvd, str) and recvd == "" else recvd


class IntScripted:
    """Mixin (put it first) recording every callback of a length-prefixed protocol.

    Upper-case letters in a string are actions, run left to right: ``P`` pauseProducing;
    ``R`` read ``recvd``; ``A`` assign ``recvd = self.replacement``; ``Z`` assign
    ``recvd = ""`` (AMP's protocol switch: the driver then feeds nothing more); ``M``
    swap ``MAX_LENGTH`` and ``other_max``; ``X`` transport.loseConnection(); ``E`` raise
    Boom; ``W`` sendString(the string).

    ``lengthLimitExceeded`` records the length and ``recvd``, then drops the connection
    (as the default does; the driver then feeds nothing more, as a real transport
    would: Twisted parses again from an earlier offset on the next call, #8105).
    """

    other_max = 5
    replacement = b""

    def __init__(self):
        self.events = []
        self.switched = False

    def stringReceived(self, string):
        self.events.append(("string", type(string).__name__, string))
        for byte in string:
            if byte == 0x50:  # P
                self.pauseProducing()
                self.events.append(("paused",))
            elif byte == 0x52:  # R
                self.events.append(("recvd", normalized(self.recvd)))
            elif byte == 0x41:  # A
                self.recvd = self.replacement
            elif byte == 0x5A:  # Z
                self.recvd = ""
                self.switched = True
            elif byte == 0x4D:  # M
                self.MAX_LENGTH, self.other_max = self.other_max, self.MAX_LENGTH
            elif byte == 0x58:  # X
                self.transport.loseConnection()
            elif byte == 0x45:  # E
                raise Boom(string)
            elif byte == 0x57:  # W
                self.sendString(string)

    def lengthLimitExceeded(self, length):
        self.events.append(("exceeded", length, normalized(self.recvd)))
        self.transport.loseConnection()


_CLASSES: dict = {}


def scripted_class(module, kind, fmt, name="twisted"):
    key = (name, kind, fmt)
    if key not in _CLASSES:
        base = base_class(module, kind, fmt)
        _CLASSES[key] = type(f"Scripted_{name}_{kind}_{fmt}", (IntScripted, base), {})
    return _CLASSES[key]


def drive_int(cls, scenario, twisted):
    """Run *scenario* on a fresh instance of *cls*; return everything observable."""
    proto = cls()
    proto.MAX_LENGTH = scenario["max_length"]
    proto.other_max = scenario["other_max"]
    proto.replacement = scenario["replacement"]
    transport = StringTransport()
    proto.makeConnection(transport)
    events = proto.events
    for op, arg in scenario["ops"]:
        if transport.disconnecting or proto.switched:
            break  # as a real transport would; and AMP has switched protocols
        try:
            if op == "data":
                kind, chunk = arg
                # Twisted's IntN only takes bytes; txframe any bytes-like (Difference 6)
                data = chunk if twisted else as_kind(kind, chunk)
                events.append(("returned", typed(proto.dataReceived(data))))
            elif op == "pause":
                proto.pauseProducing()
                events.append(("paused",))
            elif op == "resume":
                proto.resumeProducing()
                events.append(("resumed",))
            elif op == "stop":
                proto.stopProducing()
                events.append(("stopped",))
            elif op == "max":
                proto.MAX_LENGTH, proto.other_max = proto.other_max, proto.MAX_LENGTH
            elif op == "read":
                events.append(("recvd outside", normalized(proto.recvd)))
        except Exception as exc:
            events.append(exception_record(exc))
            # Twisted delivers the earlier strings again on the next call (Difference 2)
            break
    exceeded = any(event[0] == "exceeded" for event in events)
    events.append(
        (
            "end",
            bool(proto.paused),
            transport.producerState,
            transport.disconnecting,
            transport.value(),
            # After lengthLimitExceeded, the leftovers are compared by
            # test_recvd_after_length_limit_exceeded_dropped_the_connection_matches_twisted
            # (where txframe has consumed the prefix), and only otherwise here.
            None if exceeded else normalized(proto.recvd),
        )
    )
    return events


def _lowercase(data):
    """*data* with its upper-case letters made lower-case: no accidental commands."""
    return bytes(b | 0x20 if 0x41 <= b <= 0x5A else b for b in data)


@st.composite
def payloads(draw, length, commands):
    body = bytearray(_lowercase(draw(st.binary(min_size=length, max_size=length))))
    if commands and body:
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
            body[draw(st.integers(0, len(body) - 1))] = draw(st.sampled_from(commands))
    return bytes(body)


@st.composite
def int_scenarios(draw, commands=INT_COMMANDS, extra_ops=("pause", "resume", "max", "empty", "read", "stop")):
    kind, fmt = draw(st.sampled_from(FORMATS))
    top = 2 ** (8 * calcsize(fmt)) - 1
    max_length = draw(st.one_of(st.integers(0, 40), st.just(99999)))
    other_max = draw(st.integers(0, 40))

    def a_length():
        if max_length < 99999 and not draw(st.integers(0, 4)):  # at MAX_LENGTH -1, 0, +1
            return min(top, max(0, max_length + draw(st.integers(-1, 1))))
        return draw(st.integers(0, min(8, top)))

    parts = []
    for _ in range(draw(st.integers(1, 12))):
        if not draw(st.integers(0, 15)):  # garbage: whatever length it declares
            parts.append(_lowercase(draw(st.binary(min_size=1, max_size=12))))
            continue
        length = a_length()
        parts.append(pack(fmt, length) + draw(payloads(length, commands)))
    stream = b"".join(parts)
    if draw(st.booleans()):  # a truncated string at the end
        length = a_length()
        tail = pack(fmt, length) + draw(payloads(length, b""))
        stream += tail[: draw(st.integers(0, max(len(tail) - 1, 0)))]
    replacement = b"".join(
        frame(draw(payloads(min(max_length, 3), b"R")), fmt) for _ in range(draw(st.integers(0, 3)))
    )
    if draw(st.booleans()):
        replacement += pack(fmt, 2)[: draw(st.integers(0, calcsize(fmt)))]
    sizes = draw(
        st.lists(st.one_of(st.integers(1, 4), st.integers(1, max(len(stream), 1))), min_size=1, max_size=20)
    )
    extras = draw(st.lists(st.sampled_from([None] * 8 + list(extra_ops)), min_size=1, max_size=20))
    kinds = draw(st.lists(st.sampled_from(["bytes"] * 4 + ["bytearray", "memoryview"]), min_size=1, max_size=5))
    ops = chunk_ops(stream, sizes, extras, kinds)
    ops.append(("resume", None))  # flush whatever a pause held back
    ops.append(("read", None))
    return {
        "kind": kind,
        "fmt": fmt,
        "max_length": max_length,
        "other_max": other_max,
        "replacement": replacement,
        "ops": ops,
    }


def compare_int(impl, scenario):
    kind, fmt = scenario["kind"], scenario["fmt"]
    expected = drive_int(scripted_class(twisted_basic, kind, fmt), scenario, twisted=True)
    actual = drive_int(scripted_class(impl, kind, fmt, impl.name), scenario, twisted=False)
    assert actual == expected


# ---------------------------------------------------------------------------
# A. Differential property tests against Twisted's IntN receivers.
# ---------------------------------------------------------------------------


@settings(max_examples=250, deadline=None)
@given(scenario=int_scenarios())
def test_int_receivers_match_twisted(impl, scenario):
    compare_int(impl, scenario)


@settings(max_examples=100, deadline=None)
@given(scenario=int_scenarios(commands=b"RAMW", extra_ops=("read", "empty", "max")))
def test_int_receivers_match_twisted_without_interruptions(impl, scenario):
    """recvd reads/assignments and MAX_LENGTH changes only, so long runs go on."""
    compare_int(impl, scenario)


@pytest.mark.parametrize("kind,fmt", FORMATS, ids=[f"{k}{f}" for k, f in FORMATS])
def test_every_split_point_matches_twisted(impl, kind, fmt):
    strings = [b"", b"a", b"bcR", b"", b"dAe", b"xyzMw", b"q" * 9, b"Ptail", b"end"]
    stream = frames(strings, fmt) + pack(fmt, 3)[:-1]
    for chunks in chunkings(stream):
        scenario = {
            "kind": kind,
            "fmt": fmt,
            "max_length": 8,
            "other_max": 40,
            "replacement": frames([b"r1", b"r2R"], fmt) + pack(fmt, 1),
            "ops": [("data", ("bytes", c)) for c in chunks] + [("resume", None), ("read", None)],
        }
        compare_int(impl, scenario)


# ---------------------------------------------------------------------------
# Fixed behaviour shared with Twisted.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,fmt", [("Int32", "!I"), ("Int16", "!H"), ("Int8", "!B")])
def test_class_attributes_match_twisted(impl, kind, fmt):
    ours = getattr(impl, f"{kind}StringReceiver")
    theirs = getattr(twisted_basic, f"{kind}StringReceiver")
    assert ours.structFormat == theirs.structFormat == fmt
    assert ours.prefixLength == theirs.prefixLength == calcsize(fmt)
    assert ours.MAX_LENGTH == theirs.MAX_LENGTH == 99999
    proto = ours()
    assert (proto.structFormat, proto.prefixLength, proto.MAX_LENGTH) == (fmt, calcsize(fmt), 99999)
    assert proto.recvd == b"" and not proto.paused
    assert issubclass(ours, txframe_basic.IntNStringReceiver)


def test_exceptions_and_stateful_protocol_are_twisteds_own():
    assert txframe_basic.StringTooLongError is twisted_basic.StringTooLongError
    assert txframe_basic.StatefulStringProtocol is twisted_basic.StatefulStringProtocol
    assert txframe_basic.NetstringParseError is twisted_basic.NetstringParseError
    assert txframe_basic.IncompleteNetstring is twisted_basic.IncompleteNetstring


@pytest.mark.parametrize("kind,fmt", FORMATS, ids=[f"{k}{f}" for k, f in FORMATS])
def test_receive_strings(impl, kind, fmt):
    strings = [b"", b"hello", bytes(range(256))[: 2 ** (8 * calcsize(fmt)) - 1], b"\x00" * 3, b""]
    stream = frames(strings, fmt)
    for chunks in ([stream], [stream[k : k + 1] for k in range(len(stream))], [stream[:3], stream[3:]]):
        proto, transport = connect(recorder(base_class(impl, kind, fmt)))
        for chunk in chunks:
            assert proto.dataReceived(chunk) is None
        assert strings_of(proto) == strings
        assert all(type(s) is bytes for s in strings_of(proto))
        assert proto.recvd == b"" and not transport.disconnecting


@pytest.mark.parametrize("kind,fmt", FORMATS, ids=[f"{k}{f}" for k, f in FORMATS])
def test_recvd_outside_callbacks_matches_twisted(impl, kind, fmt):
    stream = frames([b"ab", b"cde"], fmt) + frame(b"fghij", fmt)[:-2]
    results = []
    for module in (twisted_basic, impl):
        proto, _ = connect(recorder(base_class(module, kind, fmt)))
        seen = [proto.recvd]
        for k in range(len(stream)):
            proto.dataReceived(stream[k : k + 1])
            seen.append(proto.recvd)
        results.append((seen, proto.events))
    assert results[1] == results[0]
    assert results[1][0][-1] == frame(b"fghij", fmt)[:-2]


@pytest.mark.parametrize("cls_name", ["Int32StringReceiver", "Int16StringReceiver", "Int8StringReceiver"])
def test_recvd_inside_string_received_matches_twisted(impl, cls_name):
    fmt = getattr(impl, cls_name).structFormat
    stream = frames([b"a", b"bb", b"ccc"], fmt) + frame(b"dddd", fmt)[:3]
    results = []
    for cls in (getattr(twisted_basic, cls_name), getattr(impl, cls_name)):
        proto, _ = connect(recorder(cls))
        seen = []
        proto.on_string = lambda proto, string: seen.append(proto.recvd)
        proto.dataReceived(stream)
        results.append(seen)
    assert results[1] == results[0]
    assert results[1][0] == frames([b"bb", b"ccc"], fmt) + frame(b"dddd", fmt)[:3]


def test_recvd_assigned_in_string_received_matches_twisted(impl):
    """Twisted's own switching test, and assignment of more strings to parse."""
    switch = b"SWITCH"
    head = frame(switch) + frame(b"after")
    # the callback counts on the whole "after" frame being received with it
    for chunks in ([head + b"\x01\x02"], [head, b"\x01\x02"], [head + b"\x01", b"\x02"]):
        results = []
        for cls in (twisted_basic.Int32StringReceiver, impl.Int32StringReceiver):
            proto, transport = connect(recorder(cls))

            def on_string(proto, string):
                if string == switch:
                    proto.recvd = proto.recvd[len(frame(b"after")) :]

            proto.on_string = on_string
            feed(proto, chunks)
            results.append((strings_of(proto), proto.recvd))
        assert results[1] == results[0]
    assert results[1] == ([switch], b"\x01\x02")
    # assigning strings to parse: they are delivered next, and the rest of the chunk
    # is dropped; data received later is appended to them
    results = []
    for cls in (twisted_basic.Int16StringReceiver, impl.Int16StringReceiver):
        proto, _ = connect(recorder(cls))

        def on_string(proto, string):
            if string == b"A":
                proto.recvd = frames([b"x", b"y"], "!H") + b"\x00"

        proto.on_string = on_string
        proto.dataReceived(frames([b"1", b"A", b"lost"], "!H"))
        proto.dataReceived(b"\x01z")
        results.append((strings_of(proto), proto.recvd))
    assert results[1] == results[0] == ([b"1", b"A", b"x", b"y", b"z"], b"")


def test_recvd_assigned_empty_str_like_amp(impl):
    """AMP reads recvd, then does `self.recvd = ""` to hand the rest elsewhere."""
    handed = []
    for cls in (twisted_basic.Int16StringReceiver, impl.Int16StringReceiver):
        proto, _ = connect(recorder(cls))

        def on_string(proto, string):
            if string == b"switch":
                handed.append(proto.recvd)
                proto.recvd = ""

        proto.on_string = on_string
        proto.dataReceived(frames([b"a", b"switch", b"never"], "!H") + b"raw bytes")
        assert strings_of(proto) == [b"a", b"switch"]
        assert not proto.recvd
    assert handed == [frame(b"never", "!H") + b"raw bytes"] * 2
    assert type(proto.recvd) is bytes  # txframe's (the last one): b"", not Twisted's ""


def test_recvd_assigned_outside_callbacks(impl):
    # txframe makes assigned bytes the unprocessed data at once; reading recvd back gives
    # them, as in Twisted. (Twisted keeps parsing its old buffer until a string is
    # delivered and only then switches to the assigned bytes.)
    proto, _ = connect(recorder(impl.Int8StringReceiver))
    proto.dataReceived(b"\x01a\x03bc")
    assert proto.recvd == b"\x03bc"
    proto.recvd = b"\x02x"
    assert proto.recvd == b"\x02x"
    proto.dataReceived(b"y\x01")
    assert strings_of(proto) == [b"a", b"xy"]
    assert proto.recvd == b"\x01"
    proto.recvd = bytearray(b"\x01q")
    assert proto.recvd == b"\x01q" and type(proto.recvd) is bytes
    proto.recvd = ""
    assert proto.recvd == b""
    proto.dataReceived(b"\x01r")
    assert strings_of(proto) == [b"a", b"xy", b"r"]
    # on a fresh connection, before any data
    fresh, _ = connect(recorder(impl.Int8StringReceiver))
    fresh.recvd = b"\x01s\x01"
    fresh.dataReceived(b"t")
    assert strings_of(fresh) == [b"s", b"t"]


@pytest.mark.parametrize("cls_name", ["Int32StringReceiver", "Int16StringReceiver", "Int8StringReceiver"])
def test_send_string(impl, cls_name):
    for string in (b"", b"x", b"hello\x00world", bytes(range(255))):
        outputs = []
        for cls in (getattr(twisted_basic, cls_name), getattr(impl, cls_name)):
            proto, transport = connect(cls)
            assert proto.sendString(string) is None
            outputs.append(transport.value())
        assert outputs[1] == outputs[0] == pack(getattr(impl, cls_name).structFormat, len(string)) + string


def test_send_string_custom_format(impl):
    for fmt in ("<I", "!Q", "<H"):
        outputs = []
        for module in (twisted_basic, impl):
            proto, transport = connect(base_class(module, "custom", fmt))
            proto.sendString(b"abc")
            proto.sendString(b"")
            outputs.append(transport.value())
        assert outputs[1] == outputs[0] == pack(fmt, 3) + b"abc" + pack(fmt, 0)


class FakeLength(bytes):
    """bytes claiming to be longer than they are (for a 4 GiB string without 4 GiB)."""

    def __len__(self):
        return 2**32


@pytest.mark.parametrize(
    "cls_name,string",
    [
        ("Int8StringReceiver", b"x" * 256),
        ("Int8StringReceiver", b"x" * 1000),
        ("Int16StringReceiver", b"x" * 65536),
        ("Int32StringReceiver", FakeLength(b"x")),
    ],
    ids=["int8-256", "int8-1000", "int16-65536", "int32-2**32"],
)
def test_send_string_too_long(impl, cls_name, string):
    errors = []
    for cls in (getattr(twisted_basic, cls_name), getattr(impl, cls_name)):
        proto, transport = connect(cls)
        with pytest.raises(twisted_basic.StringTooLongError) as info:
            proto.sendString(string)
        assert transport.value() == b""
        errors.append((type(info.value), info.value.args))
    assert errors[1] == errors[0]
    assert errors[1][0] is twisted_basic.StringTooLongError
    limit = 2 ** (8 * getattr(impl, cls_name).prefixLength)
    assert errors[1][1] == (f"Try to send {len(string)} bytes whereas maximum is {limit}",)
    # one byte shorter is fine
    if cls_name != "Int32StringReceiver":
        proto, transport = connect(getattr(impl, cls_name))
        proto.sendString(b"y" * (limit - 1))
        assert transport.value() == pack(proto.structFormat, limit - 1) + b"y" * (limit - 1)


@pytest.mark.parametrize("cls_name", ["IntNStringReceiver", "Int32StringReceiver", "Int8StringReceiver"])
def test_string_received_not_implemented(impl, cls_name):
    cls = getattr(impl, cls_name)
    if cls_name == "IntNStringReceiver":
        cls = type("Plain", (cls,), {"structFormat": "!H", "prefixLength": 2})
    proto, _ = connect(cls)
    with pytest.raises(NotImplementedError):
        proto.dataReceived(pack(cls.structFormat, 1) + b"x")


@pytest.mark.parametrize("kind,fmt", FORMATS, ids=[f"{k}{f}" for k, f in FORMATS])
def test_max_length_boundaries_match_twisted(impl, kind, fmt):
    top = 2 ** (8 * calcsize(fmt)) - 1
    for max_length in sorted({0, 1, 7, min(top - 1, 300), 99999}):
        lengths = [n for n in (max_length - 1, max_length, max_length + 1) if 0 <= n <= top]
        for over in (False, True):
            strings = [b"s" * n for n in lengths if n <= max_length or over] + [b"after"]
            stream = frames(strings, fmt)
            for chunks in ([stream], [stream[:1], stream[1:]], [stream[k : k + 7] for k in range(0, len(stream), 7)]):
                results = []
                for module in (twisted_basic, impl):
                    proto, transport = connect(recorder(base_class(module, kind, fmt)), MAX_LENGTH=max_length)
                    feed(proto, chunks)
                    results.append((proto.events, transport.disconnecting))
                assert results[1] == results[0], (max_length, over)
                delivered = [s for s in strings if len(s) <= max_length]
                if over and max_length + 1 <= top:
                    assert results[1][0][-1][:2] == ("exceeded", max_length + 1)
                    assert strings_of_events(results[1][0]) == delivered[: len(lengths) - 1]
                    assert results[1][1]
                else:
                    assert strings_of_events(results[1][0]) == delivered


def strings_of_events(events):
    return [event[1] for event in events if event[0] == "string"]


@pytest.mark.parametrize("where", ["class", "instance", "callback", "class in callback", "deleted"])
def test_ways_of_setting_max_length_match_twisted(impl, where):
    stream = frames([b"aaa", b"bbbbbb", b"cc"], "!H")
    results = []
    for base in (twisted_basic.Int16StringReceiver, impl.Int16StringReceiver):
        cls = recorder(base)
        if where == "class":
            cls = type("Sub", (cls,), {"MAX_LENGTH": 5})
        proto, transport = connect(cls)
        if where == "instance":
            proto.MAX_LENGTH = 5
        elif where == "deleted":
            proto.MAX_LENGTH = 2
            del proto.MAX_LENGTH  # back to the class's 99999
        elif where == "callback":
            proto.on_string = lambda proto, s: setattr(proto, "MAX_LENGTH", 5)
        elif where == "class in callback":  # the recorder class is this test's own
            proto.on_string = lambda proto, s: setattr(type(proto), "MAX_LENGTH", 5)
        proto.dataReceived(stream)
        results.append((proto.events[:], proto.MAX_LENGTH))
    if where == "class in callback" and impl.name == "compiled" and framing.Setting is not None:
        # The compiled framer sees a change made on a class from the next
        # dataReceived call (README, "All receivers"): this one delivers all three.
        assert results[1] == ([("string", b"aaa"), ("string", b"bbbbbb"), ("string", b"cc")], 5)
        return
    assert results[1] == results[0]
    assert results[1][1] == (99999 if where == "deleted" else 5)
    if where != "deleted":
        assert [e[:2] for e in results[1][0]] == [("string", b"aaa"), ("exceeded", 6)]
    else:
        assert strings_of_events(results[1][0]) == [b"aaa", b"bbbbbb", b"cc"]


@pytest.mark.parametrize(
    "max_length",
    [0, 1, 2**70, float("inf"), -1, -(2**70), 2.5, float("nan"), float("-inf"), Fraction(7, 2), True],
    ids=repr,
)
@pytest.mark.parametrize("kind,fmt", [("Int32", "!I"), ("Int8", "!B"), ("custom", "<H")])
def test_max_length_edge_values_match_twisted(impl, kind, fmt, max_length):
    stream = frames([b"", b"a", b"bb", b"ccc", b"d" * 200], fmt) + frame(b"end", fmt)[:-1]
    for chunks in ([stream], [stream[:1], stream[1:4], stream[4:]], [stream[k : k + 7] for k in range(0, len(stream), 7)]):
        results = []
        for module in (twisted_basic, impl):
            proto, transport = connect(recorder(base_class(module, kind, fmt)), MAX_LENGTH=max_length)
            feed(proto, chunks)
            exceeded = any(e[0] == "exceeded" for e in proto.events)
            results.append((proto.events, transport.disconnecting, None if exceeded else proto.recvd))
        assert results[1] == results[0], (max_length, len(chunks))


def test_max_length_change_in_callback_applies_from_next_string(impl):
    results = []
    for base in (twisted_basic.Int8StringReceiver, impl.Int8StringReceiver):
        proto, transport = connect(recorder(base, keep_open=False), MAX_LENGTH=10)

        def on_string(proto, string):
            if string == b"shrink":
                proto.MAX_LENGTH = 3

        proto.on_string = on_string
        proto.dataReceived(frames([b"shrink", b"abc", b"abcd", b"x"], "!B"))
        results.append((proto.events, transport.disconnecting))
    assert results[1] == results[0]
    assert results[1][0][:2] == [("string", b"shrink"), ("string", b"abc")]
    assert results[1][0][2][:2] == ("exceeded", 4) and results[1][1]


def test_max_length_as_property_matches_twisted(impl):
    """A descriptor of the user's own is read for every string, as in Twisted."""
    results = []
    for base in (twisted_basic.Int8StringReceiver, impl.Int8StringReceiver):
        reads = []

        class Limited(recorder(base, keep_open=True)):
            @property
            def MAX_LENGTH(self):
                reads.append(1)
                return 2 if len(self.events) >= 2 else 99

        proto, transport = connect(Limited)
        proto.dataReceived(frames([b"aaa", b"bbb", b"ccc"], "!B"))
        results.append(proto.events[:3])
    assert results[1] == results[0]
    assert results[1] == [("string", b"aaa"), ("string", b"bbb"), ("exceeded", 3, frame(b"ccc", "!B"))]


def test_struct_format_change_in_callback_matches_twisted(impl):
    """Twisted reads structFormat and prefixLength once per dataReceived call, so a
    change made in stringReceived applies from the next call."""
    stream = b"\x01F" + b"\x00\x01a" + b"\x01b"
    results = []
    for module in (twisted_basic, impl):
        cls = recorder(base_class(module, "custom", "!B"), keep_open=True)
        proto, _ = connect(cls)

        def on_string(proto, string):
            if string == b"F":
                proto.structFormat, proto.prefixLength = "!H", 2

        proto.on_string = on_string
        proto.dataReceived(stream)
        proto.dataReceived(b"\x00\x01c")
        results.append((proto.events, proto.recvd))
    assert results[1] == results[0]
    assert results[1] == ([("string", b"F"), ("string", b""), ("string", b"a"), ("string", b"b"), ("string", b"c")], b"")


def test_struct_format_change_between_calls_matches_twisted(impl):
    results = []
    for module in (twisted_basic, impl):
        proto, _ = connect(recorder(base_class(module, "custom", "!B"), keep_open=True))
        proto.dataReceived(b"\x01a\x02")
        proto.structFormat, proto.prefixLength = "<H", 2
        proto.dataReceived(b"\x00bc\x01\x00d")
        results.append((proto.events, proto.recvd))
    assert results[1] == results[0] == ([("string", b"a"), ("string", b"bc"), ("string", b"d")], b"")


@pytest.mark.parametrize("fmt,prefix", [("!HH", 4), ("!BB", 2), ("!", 0)])
def test_struct_format_not_one_value_matches_twisted(impl, fmt, prefix):
    """A structFormat that does not unpack to exactly one value: Twisted's
    ``length, = unpack(...)`` raises ValueError (the compiled framer used the first
    field, or raised IndexError, before issue 16)."""
    results = []
    for module in (twisted_basic, impl):
        cls = recorder(type("Odd", (module.IntNStringReceiver,), {"structFormat": fmt, "prefixLength": prefix}))
        proto, _ = connect(cls)
        try:
            proto.dataReceived(b"\x00\x02\x00\x02abcd")
            outcome = "returned"
        except Exception as error:
            outcome = type(error).__name__
        results.append((outcome, proto.events))
    assert results[1] == results[0] == ("ValueError", [])


@pytest.mark.parametrize("fmt,prefix", [("!H", 4), ("!I", 2)])
def test_prefix_length_not_matching_struct_format_matches_twisted(impl, fmt, prefix):
    """A misconfigured prefixLength: Twisted unpacks exactly prefixLength bytes, which
    raises struct.error."""
    results = []
    for module in (twisted_basic, impl):
        cls = recorder(type("Odd", (module.IntNStringReceiver,), {"structFormat": fmt, "prefixLength": prefix}))
        proto, _ = connect(cls)
        try:
            proto.dataReceived(b"\x00\x00\x00\x02ab\x00\x02cd")
            outcome = "returned"
        except struct.error:
            outcome = "struct.error"
        results.append((outcome, proto.events))
    assert results[1] == results[0]


# ---------------------------------------------------------------------------
# Pausing (Difference 5: honoured, as by Twisted's IntN).
# ---------------------------------------------------------------------------


def test_paused_class_attribute_in_subclass_matches_twisted(impl):
    """Twisted's `paused` is a plain class attribute (of _PauseableMixin), so a
    subclass may spell out its initial value; pausing must still work."""
    results = []
    for base in (twisted_basic.Int8StringReceiver, impl.Int8StringReceiver):
        cls = type("WithPaused", (recorder(base),), {"paused": False})
        proto, transport = connect(cls)
        proto.dataReceived(b"\x01a")
        proto.pauseProducing()
        proto.dataReceived(b"\x01b")
        during = (strings_of(proto), bool(proto.paused))
        proto.resumeProducing()
        results.append((during, strings_of(proto), bool(proto.paused)))
    assert results[1] == results[0] == (([b"a"], True), [b"a", b"b"], False)


@pytest.mark.parametrize("cls_name", ["Int32StringReceiver", "Int16StringReceiver", "Int8StringReceiver"])
def test_pause_resume_stop_producing(impl, cls_name):
    # Difference 5
    cls = getattr(impl, cls_name)
    fmt = cls.structFormat
    proto, transport = connect(recorder(cls))
    proto.dataReceived(frame(b"a", fmt))
    proto.pauseProducing()
    assert proto.paused and transport.producerState == "paused"
    proto.dataReceived(frames([b"b", b"c"], fmt))
    proto.dataReceived(frame(b"d", fmt)[:-1])
    assert strings_of(proto) == [b"a"]
    assert proto.recvd == frames([b"b", b"c"], fmt) + frame(b"d", fmt)[:-1]
    proto.resumeProducing()
    assert not proto.paused and transport.producerState == "producing"
    assert strings_of(proto) == [b"a", b"b", b"c"]
    proto.dataReceived(b"d")
    assert strings_of(proto) == [b"a", b"b", b"c", b"d"]
    proto.stopProducing()
    assert proto.paused and transport.producerState == "stopped"
    proto.dataReceived(frame(b"e", fmt))
    assert strings_of(proto) == [b"a", b"b", b"c", b"d"]
    # the paused attribute itself, as Twisted's _PauseableMixin has it
    proto.paused = False
    proto.dataReceived(b"")
    assert strings_of(proto)[-1] == b"e"
    proto.paused = True
    proto.dataReceived(frame(b"f", fmt))
    assert strings_of(proto)[-1] == b"e"


def test_pause_inside_string_received_matches_twisted(impl):
    stream = frames([b"a", b"pause", b"b", b"c"], "!H") + b"\x00"
    results = []
    for base in (twisted_basic.Int16StringReceiver, impl.Int16StringReceiver):
        proto, transport = connect(recorder(base))

        def on_string(proto, string):
            if string == b"pause":
                proto.pauseProducing()

        proto.on_string = on_string
        proto.dataReceived(stream)
        during = (strings_of(proto), proto.recvd, proto.paused, transport.producerState)
        proto.dataReceived(b"\x01d")
        proto.resumeProducing()
        results.append((during, strings_of(proto), proto.recvd, proto.paused))
    assert results[1] == results[0]
    assert results[1][0] == ([b"a", b"pause"], frames([b"b", b"c"], "!H") + b"\x00", True, "paused")
    assert results[1][1:] == ([b"a", b"pause", b"b", b"c", b"d"], b"", False)


def test_pause_and_resume_without_transport(impl):
    # Difference 5 (and no transport needed)
    proto = recorder(impl.Int8StringReceiver)()
    proto.pauseProducing()
    proto.dataReceived(b"\x01a\x01b")
    assert strings_of(proto) == [] and proto.paused
    proto.resumeProducing()
    assert strings_of(proto) == [b"a", b"b"]
    proto.stopProducing()
    proto.dataReceived(b"\x01c")
    assert strings_of(proto) == [b"a", b"b"]


# ---------------------------------------------------------------------------
# Difference 1 (#8105): lengthLimitExceeded.
# ---------------------------------------------------------------------------


def test_length_limit_exceeded_default_drops_connection(impl):
    # Difference 1: nothing processed is delivered again on a later call.
    proto, transport = connect(recorder(impl.Int16StringReceiver), MAX_LENGTH=3)
    proto.dataReceived(frames([b"ok", b"toolong", b"never"], "!H"))
    assert proto.events == [
        ("string", b"ok"),
        ("exceeded", 7, frames([b"toolong", b"never"], "!H")),
    ]
    assert transport.disconnecting
    # a real transport delivers nothing more, but if data does come, "ok" is not
    # delivered again (Twisted parses its whole buffer again: #8105)
    proto.dataReceived(b"")
    proto.dataReceived(frame(b"x", "!H"))
    assert strings_of(proto).count(b"ok") == 1


def test_recvd_after_length_limit_exceeded_dropped_the_connection_matches_twisted(impl):
    """If lengthLimitExceeded drops the connection "nothing more happens" (README):
    recvd stays as it was during the call, starting with the offending prefix, as in
    Twisted."""
    stream = frames([b"a", b"bcdefg", b"h"], "!B")
    results = []
    for base in (twisted_basic.Int8StringReceiver, impl.Int8StringReceiver):
        proto, transport = connect(recorder(base), MAX_LENGTH=3)
        proto.dataReceived(stream)
        results.append((proto.events, proto.recvd))
    assert results[1] == results[0]
    assert results[1][1] == frames([b"bcdefg", b"h"], "!B")


def test_length_limit_exceeded_recvd_starts_with_prefix_matches_twisted(impl):
    """During the callback recvd starts with the offending prefix, as in Twisted."""
    stream = frames([b"a", b"bcdef", b"g"], "!I")
    for chunks in chunkings(stream):
        results = []
        for base in (twisted_basic.Int32StringReceiver, impl.Int32StringReceiver):
            proto, transport = connect(recorder(base), MAX_LENGTH=4)
            feed(proto, chunks)
            results.append(proto.events)
        assert results[1] == results[0]
        exceeded = results[1][-1]
        assert exceeded[:2] == ("exceeded", 5)
        assert exceeded[2].startswith(pack("!I", 5))
        assert stream[len(frame(b"a")) :].startswith(exceeded[2])  # what was received


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_length_limit_exceeded_keeping_the_connection_skips_the_string(impl, chunk_size):
    # Difference 1: the oversized string is skipped as it arrives, never buffered, and
    # the strings after it are delivered.
    stream = frames([b"a", b"b" * 50, b"c", b"d" * 11, b"", b"e"], "!H")
    proto, transport = connect(recorder(impl.Int16StringReceiver, keep_open=True), MAX_LENGTH=10)
    for k in range(0, len(stream), chunk_size):
        proto.dataReceived(stream[k : k + chunk_size])
        assert len(held(proto)) <= max(chunk_size, 2) + 2
    assert [e[:2] for e in proto.events] == [
        ("string", b"a"),
        ("exceeded", 50),
        ("string", b"c"),
        ("exceeded", 11),
        ("string", b""),
        ("string", b"e"),
    ]
    assert not transport.disconnecting and proto.recvd == b""


def test_length_limit_exceeded_without_transport_goes_on(impl):
    # Difference 1 (and no transport needed): the default then does nothing.
    proto = recorder(impl.Int8StringReceiver, MAX_LENGTH=2)()
    assert proto.transport is None
    proto.dataReceived(frames([b"abc", b"de", b"fghi", b"j"], "!B"))
    assert strings_of(proto) == [b"de", b"j"]
    assert [e[1] for e in proto.events if e[0] == "exceeded"] == [3, 4]


def test_huge_declared_length_is_never_buffered(impl):
    # Difference 1: declared 2**32-1, then 10 MB: nothing accumulates.
    proto, transport = connect(recorder(impl.Int32StringReceiver, keep_open=True))
    proto.dataReceived(frame(b"first") + pack("!I", 2**32 - 1) + b"x" * 100)
    assert proto.events == [("string", b"first"), ("exceeded", 4294967295, pack("!I", 2**32 - 1) + b"x" * 100)]
    chunk = b"y" * 65536
    for _ in range(160):  # 10 MiB
        proto.dataReceived(chunk)
        assert held(proto) == b""
        assert proto.recvd == b""
    assert len(proto.events) == 2
    assert not transport.disconnecting


def test_huge_declared_length_with_default_handler(impl):
    # E: lengthLimitExceeded(4294967295), connection dropped, nothing allocated for it.
    results = []
    for base in (twisted_basic.Int32StringReceiver, impl.Int32StringReceiver):
        proto, transport = connect(recorder(base))
        proto.dataReceived(frame(b"ok") + b"\xff\xff\xff\xff" + b"z" * 10)
        results.append((proto.events, transport.disconnecting))
    assert results[1] == results[0]
    assert results[1] == ([("string", b"ok"), ("exceeded", 4294967295, b"\xff\xff\xff\xff" + b"z" * 10)], True)
    proto, transport = connect(recorder(impl.Int32StringReceiver))
    proto.dataReceived(b"\xff\xff\xff\xff")
    for _ in range(100):
        proto.dataReceived(b"w" * 65536)
    assert len(held(proto)) < 65536 * 2


@pytest.mark.parametrize("raise_to", ["exactly", "more"])
def test_length_limit_exceeded_raising_max_length_delivers_the_string(impl, raise_to):
    # Difference 1: if the callback raises MAX_LENGTH enough, the string is parsed.
    for chunks in chunkings(frames([b"a", b"0123456789", b"b"], "!H")):
        proto, transport = connect(recorder(impl.Int16StringReceiver, keep_open=True), MAX_LENGTH=3)

        def on_exceeded(proto, length):
            proto.MAX_LENGTH = length if raise_to == "exactly" else length + 100

        proto.on_exceeded = on_exceeded
        feed(proto, chunks)
        assert [e[:2] for e in proto.events] == [
            ("string", b"a"),
            ("exceeded", 10),
            ("string", b"0123456789"),
            ("string", b"b"),
        ]
        assert proto.recvd == b""


def test_length_limit_exceeded_raising_max_length_too_little(impl):
    # Difference 1: not enough, so the string is skipped.
    proto, _ = connect(recorder(impl.Int16StringReceiver, keep_open=True), MAX_LENGTH=3)
    proto.on_exceeded = lambda proto, length: setattr(proto, "MAX_LENGTH", length - 1)
    proto.dataReceived(frames([b"0123456789", b"b"], "!H"))
    assert [e[:2] for e in proto.events] == [("exceeded", 10), ("string", b"b")]


def test_length_limit_exceeded_may_assign_recvd(impl):
    # Difference 1: an assignment to recvd in the callback replaces the buffer, and
    # parsing goes on with it.
    proto, transport = connect(recorder(impl.Int8StringReceiver, keep_open=True), MAX_LENGTH=3)
    proto.on_exceeded = lambda proto, length: setattr(proto, "recvd", frames([b"new"], "!B") + b"\x01")
    proto.dataReceived(frames([b"a", b"too long", b"lost"], "!B"))
    proto.dataReceived(b"z")
    assert [e[:2] for e in proto.events] == [("string", b"a"), ("exceeded", 8), ("string", b"new"), ("string", b"z")]


def test_length_limit_exceeded_once_disconnecting_stops(impl):
    # the callback keeps the connection but it was already being dropped
    proto, transport = connect(recorder(impl.Int8StringReceiver, keep_open=True), MAX_LENGTH=3)
    proto.on_string = lambda proto, s: proto.transport.loseConnection()
    proto.dataReceived(frames([b"a", b"b", b"toolong", b"c"], "!B"))
    # IntN does not stop on disconnecting by itself (as in Twisted), but after a
    # too-long string it does
    assert [e[:2] for e in proto.events] == [("string", b"a"), ("string", b"b"), ("exceeded", 7)]


def test_strings_after_lose_connection_are_still_delivered_as_in_twisted(impl):
    results = []
    for base in (twisted_basic.Int8StringReceiver, impl.Int8StringReceiver):
        proto, transport = connect(recorder(base))
        proto.on_string = lambda proto, s: proto.transport.loseConnection()
        proto.dataReceived(frames([b"a", b"b", b"c"], "!B"))
        results.append(proto.events)
    assert results[1] == results[0] == [("string", b"a"), ("string", b"b"), ("string", b"c")]


@pytest.mark.parametrize("fmt", ["!i", "<q", "!h", "!b"])
def test_negative_declared_length(impl, fmt):
    # Difference 1: a negative length goes to lengthLimitExceeded (Twisted loops
    # forever on it, so it is not run here).
    stream = frame(b"a", fmt) + pack(fmt, -5) + frame(b"b", fmt)
    for chunks in chunkings(stream):
        proto, transport = connect(recorder(base_class(impl, "custom", fmt), keep_open=True))
        feed(proto, chunks)
        assert [e[:2] for e in proto.events] == [("string", b"a"), ("exceeded", -5), ("string", b"b")]
    proto, transport = connect(recorder(base_class(impl, "custom", fmt)))
    proto.dataReceived(stream)
    assert proto.events == [("string", b"a"), ("exceeded", -5, stream[calcsize(fmt) + 1 :])]
    assert transport.disconnecting


def test_too_long_then_pause_in_callback(impl):
    # Difference 1 and 5: the skipping survives a pause, and resuming goes on after it
    proto, _ = connect(recorder(impl.Int8StringReceiver, keep_open=True), MAX_LENGTH=2)
    proto.on_exceeded = lambda proto, length: proto.pauseProducing()
    proto.dataReceived(frames([b"abcd", b"e"], "!B")[:3])
    assert [e[:2] for e in proto.events] == [("exceeded", 4)]
    proto.dataReceived(b"cd\x01e")
    assert strings_of(proto) == []
    proto.resumeProducing()
    assert strings_of(proto) == [b"e"]


# ---------------------------------------------------------------------------
# Difference 2: exceptions from stringReceived.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls_name", ["Int32StringReceiver", "Int16StringReceiver", "Int8StringReceiver"])
def test_exception_propagates_and_next_call_continues(impl, cls_name):
    # Difference 2: Twisted delivers the strings before the failing one again.
    cls = getattr(impl, cls_name)
    fmt = cls.structFormat

    def bad(proto, string):
        if string.startswith(b"bad"):
            raise Boom(string)

    proto, transport = connect(recorder(cls))
    proto.on_string = bad
    stream = frames([b"a", b"bad1", b"b", b"bad2", b"c"], fmt) + frame(b"d", fmt)[:-1]
    with pytest.raises(Boom) as info:
        proto.dataReceived(stream)
    assert info.value.args == (b"bad1",)
    assert strings_of(proto) == [b"a", b"bad1"]
    assert proto.recvd == frames([b"b", b"bad2", b"c"], fmt) + frame(b"d", fmt)[:-1]
    with pytest.raises(Boom) as info:
        proto.dataReceived(b"")
    assert info.value.args == (b"bad2",)
    assert proto.dataReceived(b"d") is None
    assert strings_of(proto) == [b"a", b"bad1", b"b", b"bad2", b"c", b"d"]
    assert proto.recvd == b"" and not transport.disconnecting


def test_exception_state_matches_twisted_until_next_call(impl):
    """Up to the exception (and recvd after it) both agree."""
    stream = frames([b"a", b"bad", b"b"], "!H") + b"\x00"
    results = []
    for base in (twisted_basic.Int16StringReceiver, impl.Int16StringReceiver):
        proto, _ = connect(recorder(base))

        def bad(proto, string):
            if string == b"bad":
                raise Boom(string)

        proto.on_string = bad
        with pytest.raises(Boom):
            proto.dataReceived(stream)
        results.append((proto.events, proto.recvd))
    assert results[1] == results[0] == ([("string", b"a"), ("string", b"bad")], frame(b"b", "!H") + b"\x00")


# ---------------------------------------------------------------------------
# Difference 3: re-entrant dataReceived.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls_name", ["Int32StringReceiver", "Int8StringReceiver"])
def test_reentrant_data_received_keeps_order(impl, cls_name):
    # Difference 3
    cls = getattr(impl, cls_name)
    fmt = cls.structFormat
    proto, _ = connect(recorder(cls))

    def on_string(proto, string):
        if string == b"feed":
            assert proto.dataReceived(frames([b"x", b"y"], fmt) + frame(b"z", fmt)[:1]) is None
            proto.events.append(("back",))

    proto.on_string = on_string
    proto.dataReceived(frames([b"a", b"feed", b"b", b"c"], fmt))
    assert proto.events == [
        ("string", b"a"),
        ("string", b"feed"),
        ("back",),
        ("string", b"b"),
        ("string", b"c"),
        ("string", b"x"),
        ("string", b"y"),
    ]
    assert proto.recvd == frame(b"z", fmt)[:1]


def test_reentrant_data_received_while_paused(impl):
    # Difference 3 and 5
    proto, _ = connect(recorder(impl.Int8StringReceiver))

    def on_string(proto, string):
        if string == b"p":
            proto.pauseProducing()
            proto.dataReceived(b"\x01q")

    proto.on_string = on_string
    proto.dataReceived(b"\x01p\x01r")
    assert strings_of(proto) == [b"p"]
    assert proto.recvd == b"\x01r\x01q"
    proto.resumeProducing()
    assert strings_of(proto) == [b"p", b"r", b"q"]


# ---------------------------------------------------------------------------
# Difference 6: data types.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls_name", ["Int32StringReceiver", "Int16StringReceiver", "Int8StringReceiver"])
def test_bytes_like_data(impl, cls_name):
    # Difference 6
    cls = getattr(impl, cls_name)
    fmt = cls.structFormat
    proto, _ = connect(recorder(cls))
    stream = frames([b"ab", b"cd", b"ef"], fmt)
    proto.dataReceived(bytearray(stream[:3]))
    proto.dataReceived(memoryview(stream[3:-1]))
    proto.dataReceived(memoryview(b"xx" + stream[-1:])[2:])
    assert strings_of(proto) == [b"ab", b"cd", b"ef"]
    assert all(type(s) is bytes for s in strings_of(proto))


@pytest.mark.parametrize("cls_name", ["Int32StringReceiver", "Int16StringReceiver", "Int8StringReceiver"])
def test_str_data_is_rejected(impl, cls_name):
    # Difference 6
    cls = getattr(impl, cls_name)
    fmt = cls.structFormat
    proto, _ = connect(recorder(cls))
    proto.dataReceived(frame(b"a", fmt) + frame(b"bc", fmt)[:-1])
    with pytest.raises(TypeError, match="bytes"):
        proto.dataReceived("c")
    with pytest.raises(TypeError, match="bytes"):
        proto.dataReceived(None)
    proto.dataReceived(b"c")
    assert strings_of(proto) == [b"a", b"bc"]


# ---------------------------------------------------------------------------
# E. Bad input.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,fmt", FORMATS, ids=[f"{k}{f}" for k, f in FORMATS])
def test_truncated_streams_deliver_nothing_more(impl, kind, fmt):
    stream = frames([b"one", b"two"], fmt)
    last = frame(b"three", fmt)
    for cut in range(len(last)):
        results = []
        for module in (twisted_basic, impl):
            proto, transport = connect(recorder(base_class(module, kind, fmt)))
            for k in range(len(stream) + cut):
                proto.dataReceived((stream + last)[k : k + 1])
            results.append((proto.events, proto.recvd, transport.disconnecting))
        assert results[1] == results[0] == ([("string", b"one"), ("string", b"two")], last[:cut], False)


@settings(max_examples=60, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=64), size=st.integers(1, 8))
def test_binary_garbage_matches_twisted(impl, garbage, size):
    stream = frames([b"valid", b""], "!H") + garbage
    results = []
    for base in (twisted_basic.Int16StringReceiver, impl.Int16StringReceiver):
        proto, transport = connect(recorder(base), MAX_LENGTH=20)
        feed(proto, [stream[k : k + size] for k in range(0, len(stream), size)])
        exceeded = any(e[0] == "exceeded" for e in proto.events)
        results.append((proto.events, transport.disconnecting, None if exceeded else proto.recvd))
    assert results[1] == results[0]
    assert strings_of_events(results[1][0])[:2] == [b"valid", b""]


# ---------------------------------------------------------------------------
# StatefulStringProtocol (Twisted's own class, re-exported).
# ---------------------------------------------------------------------------


def stateful(base):
    class P(txframe_basic.StatefulStringProtocol, base):
        def __init__(self):
            self.seen = []

        def proto_init(self, string):
            self.seen.append(("init", string))
            return "second"

        def proto_second(self, string):
            self.seen.append(("second", string))
            return "nowhere" if string == b"lost" else ("done" if string == b"bye" else "second")

        def proto_done(self, string):  # reached only after a 'done' when data keeps coming
            self.seen.append(("done", string))
            return "done"

    return P


@pytest.mark.parametrize("script", ["done", "missing"])
def test_stateful_string_protocol_matches_twisted(impl, script):
    if script == "done":
        strings = [b"hello", b"one", b"two", b"bye", b"after"]
    else:
        strings = [b"hello", b"lost", b"x", b"y"]
    stream = frames(strings, "!I")
    results = []
    for base in (twisted_basic.Int32StringReceiver, impl.Int32StringReceiver):
        logged = []
        observer = logged.append
        log.addObserver(observer)
        try:
            for chunks in ([stream], [stream[k : k + 3] for k in range(0, len(stream), 3)]):
                proto, transport = connect(stateful(base))
                for chunk in chunks:
                    proto.dataReceived(chunk)
                messages = [e["message"] for e in logged if e.get("message")]
                results.append((proto.seen, proto.state, transport.disconnecting, messages))
                del logged[:]
        finally:
            log.removeObserver(observer)
    assert results[2:] == results[:2]
    seen, state, disconnecting, messages = results[2]
    if script == "done":
        assert seen == [("init", b"hello"), ("second", b"one"), ("second", b"two"), ("second", b"bye"), ("done", b"after")]
        assert state == "done" and disconnecting and messages == []
    else:
        assert seen == [("init", b"hello"), ("second", b"lost")]
        assert state == "nowhere" and not disconnecting
        assert messages == [("callback", "nowhere", "not found")] * 2


def test_stateful_string_protocol_is_used_by_txframe_class(impl):
    P = stateful(impl.Int16StringReceiver)
    assert P.stringReceived is twisted_basic.StatefulStringProtocol.stringReceived
    proto, transport = connect(P)
    proto.dataReceived(frames([b"a", b"bye", b"c"], "!H"))
    assert proto.seen == [("init", b"a"), ("second", b"bye"), ("done", b"c")]
    assert transport.disconnecting


# ---------------------------------------------------------------------------
# F. PrefixFramer with a tiny sink.
# ---------------------------------------------------------------------------


class Sink:
    structFormat = "!H"
    prefixLength = 2
    MAX_LENGTH = 99999
    transport = None

    def __init__(self, framer=None):
        self.events = []
        self.framer = framer
        self.on_string = None

    def stringReceived(self, string):
        self.events.append(("string", string))
        if self.on_string is not None:
            self.on_string(string)

    def lengthLimitExceeded(self, length):
        self.events.append(("exceeded", length, self.framer.buffered() if self.framer else None))

    def _netstringParseError(self, message):  # not used by PrefixFramer
        self.events.append(("error", message))


def test_prefix_framer_feed_and_buffered(impl):
    framer = impl.PrefixFramer()
    sink = Sink(framer)
    assert framer.buffered() == b"" and not framer.paused
    stream = frames([b"abc", b"", b"de"], "!H") + b"\x00\x05fg"
    for k in range(len(stream)):
        assert framer.feed(sink, stream[k : k + 1]) is None
    assert sink.events == [("string", b"abc"), ("string", b""), ("string", b"de")]
    assert framer.buffered() == b"\x00\x05fg" and type(framer.buffered()) is bytes
    framer.feed(sink, b"hij" + b"\x00")
    assert sink.events[-1] == ("string", b"fghij")
    assert framer.buffered() == b"\x00"


def test_prefix_framer_clear(impl):
    framer = impl.PrefixFramer()
    sink = Sink(framer)
    framer.feed(sink, b"\x00\x03ab")
    assert framer.clear() == b"\x00\x03ab"
    assert framer.buffered() == b"" and framer.clear() == b""
    framer.feed(sink, b"\x00\x01z")
    assert sink.events == [("string", b"z")]


def test_prefix_framer_replace(impl):
    framer = impl.PrefixFramer()
    sink = Sink(framer)
    framer.feed(sink, b"\x00\x03ab")
    framer.replace(b"\x00\x02x")
    assert framer.buffered() == b"\x00\x02x"
    framer.feed(sink, b"y")
    assert sink.events == [("string", b"xy")]
    framer.replace(bytearray(b"\x00"))
    framer.feed(sink, memoryview(b"\x01q"))
    assert sink.events[-1] == ("string", b"q")
    framer.replace(b"")
    framer.replace("")
    assert framer.buffered() == b""
    # inside a callback: parsing goes on with the new bytes at once
    sink.on_string = lambda s: framer.replace(b"\x00\x01r\x00") if s == b"swap" else None
    framer.feed(sink, frames([b"swap", b"lost"], "!H"))
    assert sink.events[-2:] == [("string", b"swap"), ("string", b"r")]
    assert framer.buffered() == b"\x00"


def test_prefix_framer_paused(impl):
    framer = impl.PrefixFramer()
    sink = Sink(framer)
    framer.paused = 1
    assert framer.paused is True
    framer.feed(sink, frames([b"a", b"b"], "!H"))
    assert sink.events == [] and framer.buffered() == frames([b"a", b"b"], "!H")
    framer.paused = 0
    assert framer.paused is False
    framer.feed(sink, b"")
    assert sink.events == [("string", b"a"), ("string", b"b")]
    sink.on_string = lambda s: setattr(framer, "paused", True)
    framer.feed(sink, frames([b"c", b"d"], "!H"))
    assert sink.events[-1] == ("string", b"c") and framer.buffered() == frame(b"d", "!H")


def test_prefix_framer_reads_sink_settings(impl):
    framer = impl.PrefixFramer()
    sink = Sink(framer)
    sink.MAX_LENGTH = 2
    framer.feed(sink, b"\x00\x03abc\x00\x01d")
    assert sink.events == [("exceeded", 3, b"\x00\x03abc\x00\x01d"), ("string", b"d")]
    sink.MAX_LENGTH = 100
    sink.structFormat, sink.prefixLength = "<I", 4
    framer.feed(sink, b"\x03\x00\x00\x00abc")
    assert sink.events[-1] == ("string", b"abc")
    sink.structFormat, sink.prefixLength = "!i", 4
    framer.feed(sink, b"\xff\xff\xff\xfe" + frame(b"e", "!i"))
    assert sink.events[-2:] == [("exceeded", -2, b"\xff\xff\xff\xfe" + frame(b"e", "!i")), ("string", b"e")]


def test_prefix_framer_skips_too_long_strings_without_transport(impl):
    framer = impl.PrefixFramer()
    sink = Sink(framer)
    sink.MAX_LENGTH = 3
    framer.feed(sink, b"\x00\x0a01234")
    assert framer.buffered() == b""
    framer.feed(sink, b"56789\x00\x01z")
    assert sink.events == [("exceeded", 10, b"\x00\x0a01234"), ("string", b"z")]


def test_prefix_framer_stops_after_too_long_once_disconnecting(impl):
    class Transport:
        disconnecting = True

    framer = impl.PrefixFramer()
    sink = Sink(framer)
    sink.transport = Transport()
    sink.MAX_LENGTH = 3
    framer.feed(sink, b"\x00\x01a\x00\x0a0123456789\x00\x01z")
    assert sink.events == [("string", b"a"), ("exceeded", 10, b"\x00\x0a0123456789\x00\x01z")]


def test_prefix_framer_reentrant_feed_and_exceptions(impl):
    framer = impl.PrefixFramer()
    sink = Sink(framer)

    def on_string(string):
        if string == b"feed":
            framer.feed(sink, b"\x00\x01n")
        if string == b"boom":
            raise Boom(string)

    sink.on_string = on_string
    framer.feed(sink, frames([b"feed", b"a"], "!H"))
    assert sink.events == [("string", b"feed"), ("string", b"a"), ("string", b"n")]
    with pytest.raises(Boom):
        framer.feed(sink, frames([b"boom", b"b"], "!H"))
    assert framer.buffered() == frame(b"b", "!H")
    framer.feed(sink, b"")
    assert sink.events[-1] == ("string", b"b")
    with pytest.raises(TypeError, match="bytes"):
        framer.feed(sink, "\x00\x01x")
    assert framer.buffered() == b""


@settings(max_examples=60, deadline=None)
@given(
    strings=st.lists(st.binary(max_size=40), max_size=12),
    fmt=st.sampled_from(["!I", "!H", "!B", "<I", "!Q", ">H"]),
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=10),
)
def test_prefix_framer_splits_any_chunking(impl, strings, fmt, sizes):
    framer = impl.PrefixFramer()
    sink = Sink(framer)
    sink.structFormat, sink.prefixLength = fmt, calcsize(fmt)
    stream = frames(strings, fmt) + pack(fmt, 1)
    for piece in cut_into(stream, sizes):
        framer.feed(sink, piece)
    assert sink.events == [("string", s) for s in strings]
    assert framer.buffered() == pack(fmt, 1)


@pytest.mark.parametrize("call", ["clear", "reset", "disregard"])
@pytest.mark.parametrize("fmt", ["!H", "<H"])  # the fast path and struct's
def test_prefix_framer_emptied_in_length_limit_exceeded(impl, call, fmt):
    """clear(), reset() or disregard() from lengthLimitExceeded take the prefix with
    them: nothing more is skipped, and what arrives next is a new string (issue 16:
    the compiled framer stepped its read offset past the end, then crashed)."""
    framer = impl.PrefixFramer()
    sink = Sink(framer)
    sink.structFormat, sink.MAX_LENGTH = fmt, 3

    def exceeded(length):
        sink.events.append(("exceeded", length))
        getattr(framer, call)()

    sink.lengthLimitExceeded = exceeded
    framer.feed(sink, pack(fmt, 10) + b"0123")
    assert framer.buffered() == b""
    framer.feed(sink, frame(b"z", fmt) + pack(fmt, 1))
    framer.feed(sink, b"y")
    strings = [] if call == "disregard" else [("string", b"z"), ("string", b"y")]
    assert sink.events == [("exceeded", 10)] + strings
    assert framer.buffered() == b""
