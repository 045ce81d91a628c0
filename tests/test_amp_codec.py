"""The AMP box codec — ``encode_box``, ``decode_boxes``, ``BoxFramer`` (through
``txframe.amp.BinaryBoxProtocol``) and ``Schema`` — on both implementations.

Every test takes the ``impl`` fixture, so it runs on the compiled and the pure codec,
and is checked against Twisted's own classes (``twisted.protocols.amp``) wherever
Twisted defines the behaviour. The deliberate differences are tested as txframe
behaviour, each marked ``# Difference N``:

1. an empty key is a ValueError when encoding (Twisted writes it, which ends the box
   early on the wire: a corrupt stream);
2. ``decode_boxes`` / ``parseString`` raise TooLong for a key over 255 bytes (Twisted's
   ``parseString`` raises AttributeError, and so does its AmpList decoding);
3. after a key over 255 bytes (or a box over ``MAX_BOX_LENGTH``) everything the peer
   sends is disregarded, so memory stays bounded (Twisted keeps it and parses it again
   on the next ``dataReceived``);
4. ``MAX_BOX_LENGTH``: a box whose keys, values and their 2-byte prefixes pass it goes
   to ``boxLengthExceeded`` (Twisted has no limit);
5. ``dataReceived`` takes bytearray / memoryview (Twisted's BinaryBoxProtocol only
   bytes).
"""

from __future__ import annotations

import datetime
import decimal
import enum
import io
import math
import struct
from collections import OrderedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import AccumulatingProtocol, StringTransport
from twisted.protocols import amp as tamp
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from scripted import as_kind
from txframe import amp as xamp
from txframe.framing import (
    BOOLEAN,
    BOXES,
    FLOAT,
    INTEGER,
    LIST,
    METHOD,
    STRING,
    UNICODE,
    FieldTooLong,
)
from txframe.testing import chunks as cut_into

TooLong = tamp.TooLong
END = b"\x00\x00"


def pair(key, value):
    """One key/value pair on the wire (no checks: for hand-made streams)."""
    return struct.pack("!H", len(key)) + key + struct.pack("!H", len(value)) + value


def twisted_box(mapping):
    """Twisted's AmpBox holding exactly *mapping* (its constructor would encode str
    keys, so the items are set one by one)."""
    box = tamp.AmpBox()
    for key, value in mapping.items():
        box[key] = value
    return box


def serialize(mapping):
    return twisted_box(mapping).serialize()


def outcome(call, *args, **kwargs):
    """``("ok", result)``, or what was raised: its type, plus TooLong's fields and
    KeyError's arguments (what callers look at)."""
    try:
        return ("ok", call(*args, **kwargs))
    except (TooLong, FieldTooLong) as exc:
        return ("raised", type(exc).__name__, exc.isKey, exc.isLocal, exc.value, exc.keyName)
    except KeyError as exc:
        return ("raised", "KeyError", exc.args)
    except Exception as exc:
        return ("raised", type(exc).__name__)


# ---------------------------------------------------------------------------
# Strategies.
# ---------------------------------------------------------------------------

#: Keys that sort trickily: prefixes of each other, high and low bytes, the
#: underscore keys AMP uses.
TRICKY_KEYS = [
    b"\x00", b"\x00\x00", b"\x01", b"a", b"aa", b"ab", b"a\x00", b"a\xff", b"b",
    b"\x7f", b"\x80", b"\x80\x00", b"\xfe", b"\xff", b"\xff\xff", b"_", b"_ask",
    b"_answer", b"_command", b"_error", b"A", b"Z", b"k" * 254, b"k" * 255,
]


@st.composite
def box_keys(draw, max_keys=20):
    """Distinct keys of 1 to 255 bytes, often prefixes or extensions of each other."""
    keys = []
    for _ in range(draw(st.integers(0, max_keys))):
        how = draw(st.integers(0, 4)) if keys else 0
        if how == 0:
            key = draw(st.one_of(st.binary(min_size=1, max_size=255), st.sampled_from(TRICKY_KEYS)))
        elif how == 1:  # a prefix of another key
            other = draw(st.sampled_from(keys))
            key = other[: draw(st.integers(1, len(other)))]
        elif how == 2:  # another key, extended
            other = draw(st.sampled_from(keys))
            key = (other + draw(st.binary(min_size=1, max_size=3)))[:255]
        elif how == 3:  # another key with its last byte nudged
            other = bytearray(draw(st.sampled_from(keys)))
            other[-1] = (other[-1] + draw(st.sampled_from([1, 255, 128]))) % 256
            key = bytes(other)
        else:
            atoms = st.sampled_from([b"\x00", b"a", b"\x80", b"\xff"])
            key = b"".join(draw(st.lists(atoms, min_size=1, max_size=6)))
        if key not in keys:
            keys.append(key)
    return keys


#: Values of 0 to 65,535 bytes; the big ones are runs of one byte (cheap to make).
box_values = st.one_of(
    st.binary(max_size=40),
    st.binary(max_size=40),
    st.builds(lambda n, b: bytes([b]) * n, st.integers(0, 65535), st.integers(0, 255)),
    st.sampled_from([b"", END, b"v" * 65535, b"\x00" * 65534]),
)


@st.composite
def boxes(draw, max_keys=20, values=box_values):
    keys = draw(box_keys(max_keys))
    return {key: draw(values) for key in keys}


#: Small boxes, for streams fed a byte at a time.
small_boxes = boxes(max_keys=6, values=st.binary(max_size=40))

chunk_sizes = st.one_of(
    st.just([1]),
    st.lists(st.integers(1, 7), min_size=1, max_size=8),
    st.lists(st.integers(1, 300), min_size=1, max_size=8),
)
chunk_kinds = st.lists(st.sampled_from(["bytes", "bytes", "bytearray", "memoryview"]), min_size=1, max_size=4)


@st.composite
def streams(draw, max_boxes=8, box_strategy=small_boxes):
    """(boxes, stream of their encodings by Twisted, a truncated box after them)."""
    items = draw(st.lists(box_strategy, max_size=max_boxes))
    stream = b"".join(serialize(box) for box in items)
    tail = b""
    if draw(st.booleans()):
        last = serialize(draw(box_strategy))
        tail = last[: draw(st.integers(0, len(last) - 1))]
    return items, stream, tail


# ---------------------------------------------------------------------------
# 1. Encoding.
# ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(box=boxes())
def test_encode_matches_twisted(impl, box):
    expected = serialize(box)
    assert impl.encode_box(box) == expected
    assert impl.encode_box(box, TooLong) == expected
    assert impl.encode_box(twisted_box(box)) == expected
    assert impl.encode_box(OrderedDict(reversed(list(box.items())))) == expected
    assert xamp.AmpBox(box).serialize() == expected


@settings(max_examples=60, deadline=None)
@given(box=boxes(max_keys=8))
def test_send_box_writes_the_encoding(impl, box):
    proto = impl.BinaryBoxProtocol(Receiver())
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.sendBox(xamp.AmpBox(box))
    proto.sendBox(twisted_box(box))
    assert transport.value() == serialize(box) * 2


def test_encode_the_empty_box(impl):
    assert impl.encode_box({}) == END == tamp.AmpBox().serialize()


def test_encode_limits_exactly(impl):
    box = {b"k" * 255: b"v" * 65535, b"\xff" * 255: b""}
    assert impl.encode_box(box) == serialize(box)


def test_encode_str_key_is_a_type_error_as_in_twisted(impl):
    box = {"key": b"value"}
    with pytest.raises(TypeError) as theirs:
        twisted_box(box).serialize()
    with pytest.raises(TypeError) as ours:
        impl.encode_box(box)
    assert str(ours.value) == str(theirs.value)


def test_encode_str_value_is_a_type_error_as_in_twisted(impl):
    box = {b"key": "value"}
    with pytest.raises(TypeError) as theirs:
        twisted_box(box).serialize()
    with pytest.raises(TypeError) as ours:
        impl.encode_box(box, TooLong)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(TypeError):
        xamp.AmpBox(box).serialize()


@pytest.mark.parametrize("value", [None, 7, 1.5, object()])
def test_encode_other_value_types_are_type_errors_as_in_twisted(impl, value):
    box = {b"key": value}
    with pytest.raises(TypeError):
        twisted_box(box).serialize()
    with pytest.raises(TypeError):
        impl.encode_box(box)


def test_encode_non_bytes_key_is_a_type_error(impl):
    with pytest.raises(TypeError):
        twisted_box({7: b"v"}).serialize()
    with pytest.raises(TypeError):
        impl.encode_box({7: b"v"})


@pytest.mark.parametrize(
    "box",
    [
        {b"a": b"1", "b": b"2"},
        {"b": b"2", b"a": b"1"},
        {"b": b"2", "a": b"1"},
        {b"a": b"1", 7: b"2", b"c": b"3"},
        {memoryview(b"b"): b"2", b"a": b"1"},
    ],
    ids=["bytes-str", "str-bytes", "str-str", "bytes-int", "memoryview-bytes"],
)
def test_encode_mixed_keys_is_twisteds_type_error(impl, box):
    """The same error, in the same words, as Twisted (sorting the items decides which;
    the compiled codec said another thing before issue 16)."""
    with pytest.raises(TypeError) as theirs:
        twisted_box(box).serialize()
    with pytest.raises(TypeError) as ours:
        impl.encode_box(box)
    assert str(ours.value) == str(theirs.value)


def test_encode_key_too_long(impl):
    key = b"k" * 256
    box = {key: b"v"}
    with pytest.raises(TooLong) as theirs:
        twisted_box(box).serialize()
    with pytest.raises(TooLong) as ours:
        impl.encode_box(box, TooLong)
    for exc in (theirs.value, ours.value):
        assert (exc.isKey, exc.isLocal, exc.value, exc.keyName) == (True, True, key, None)
    # the codec's own default: a ValueError with the same fields
    with pytest.raises(FieldTooLong) as default:
        impl.encode_box(box)
    assert isinstance(default.value, ValueError)
    assert (default.value.isKey, default.value.isLocal, default.value.value, default.value.keyName) == (
        True, True, key, None,
    )
    with pytest.raises(TooLong):
        xamp.AmpBox(box).serialize()


def test_encode_value_too_long(impl):
    value = b"v" * 65536
    box = {b"a": b"", b"key": value}
    with pytest.raises(TooLong) as theirs:
        twisted_box(box).serialize()
    with pytest.raises(TooLong) as ours:
        impl.encode_box(box, TooLong)
    for exc in (theirs.value, ours.value):
        assert (exc.isKey, exc.isLocal, exc.value, exc.keyName) == (False, True, value, b"key")
    with pytest.raises(FieldTooLong) as default:
        impl.encode_box(box)
    assert (default.value.isKey, default.value.isLocal, default.value.keyName) == (False, True, b"key")
    assert default.value.value == value


def test_encode_too_long_comes_in_sorted_key_order(impl):
    # Twisted checks the items in sorted order: the first bad one (by key) is reported
    box = {b"z": b"v" * 65536, b"b" * 300: b"", b"m": b"w" * 70000}
    theirs = outcome(twisted_box(box).serialize)
    ours = outcome(impl.encode_box, box, TooLong)
    assert ours == theirs == ("raised", "TooLong", True, True, b"b" * 300, None)
    box = {b"z": b"v" * 65536, b"m": b"w" * 70000, b"q": "text"}
    assert outcome(impl.encode_box, box, TooLong) == outcome(twisted_box(box).serialize)
    assert outcome(impl.encode_box, box, TooLong)[1:4] == ("TooLong", False, True)


def test_encode_str_value_is_checked_before_the_key_length_as_in_twisted(impl):
    # Twisted's order within one item: str key, str value, key length, value length.
    box = {b"k" * 256: "text"}
    assert outcome(twisted_box(box).serialize) == ("raised", "TypeError")
    assert outcome(impl.encode_box, box, TooLong) == ("raised", "TypeError")


@pytest.mark.parametrize("value", [None, 5])
def test_encode_key_length_is_checked_before_a_value_without_length(impl, value):
    # Twisted's order within one item: ... key length, then len(value).
    box = {b"k" * 256: value}
    expected = ("raised", "TooLong", True, True, b"k" * 256, None)
    assert outcome(twisted_box(box).serialize) == expected
    assert outcome(impl.encode_box, box, TooLong) == expected


def test_encode_mixed_memoryview_and_bytes_keys_is_a_type_error(impl):
    # Twisted sorts the items as they are: a memoryview and bytes do not compare.
    box = {memoryview(b"a"): b"1", b"b": b"2"}
    assert outcome(twisted_box(box).serialize) == ("raised", "TypeError")
    assert outcome(impl.encode_box, box, TooLong) == ("raised", "TypeError")


def test_encode_empty_key_is_a_value_error(impl):
    # Difference 1: Twisted writes the empty key, which ends the box on the wire.
    box = {b"": b"value", b"b": b"2"}
    written = twisted_box(box).serialize()
    assert tamp.parseString(written) == [{}]  # the peer sees an empty box, then garbage
    with pytest.raises(ValueError):
        impl.encode_box(box)
    with pytest.raises(ValueError):
        impl.encode_box(box, TooLong)
    with pytest.raises(ValueError):
        xamp.AmpBox(box).serialize()


@pytest.mark.parametrize("kind", ["bytearray", "memoryview"])
def test_encode_bytes_like_values_as_twisted(impl, kind):
    box = {b"a": as_kind(kind, b"first"), b"b": as_kind(kind, b""), b"c": as_kind(kind, b"x" * 65535)}
    expected = twisted_box(box).serialize()
    assert expected == serialize({key: bytes(value) for key, value in box.items()})
    assert impl.encode_box(box) == expected
    too_long = {b"a": as_kind(kind, b"x" * 65536)}
    theirs = outcome(twisted_box(too_long).serialize)
    assert outcome(impl.encode_box, too_long, TooLong) == theirs


def test_encode_memoryview_key_as_twisted(impl):
    box = {memoryview(b"key"): b"value"}
    assert impl.encode_box(box) == twisted_box(box).serialize() == serialize({b"key": b"value"})


class SubBytes(bytes):
    """A bytes subclass (Twisted's serialize takes anything but an exact str)."""


def test_encode_bytes_subclasses_as_twisted(impl):
    box = {SubBytes(b"key"): SubBytes(b"value"), b"other": SubBytes(b"")}
    expected = twisted_box(box).serialize()
    assert expected == serialize({b"key": b"value", b"other": b""})
    assert impl.encode_box(box) == expected


def reference_encode_errors(box):
    """The errors txframe may raise first (a list; empty: none): Twisted's serialize
    checks the items in sorted key order, each for a str key, a str value, the key's
    length, then the value's length (a TypeError if it has none). txframe's one
    difference: an empty key is a ValueError (Difference 1) — where Twisted checks
    the key's length, or (Twisted does not say) after a value without a length."""
    try:
        items = sorted(box.items())
    except TypeError:
        return [("raised", "TypeError")]
    for key, value in items:
        if type(key) is str or type(value) is str:
            return [("raised", "TypeError")]
        if not key:
            if value is None:
                return [("raised", "ValueError"), ("raised", "TypeError")]
            return [("raised", "ValueError")]
        if len(key) > 255:
            return [("raised", "TooLong", True, True, key, None)]
        if value is None:
            return [("raised", "TypeError")]
        if len(value) > 65535:
            return [("raised", "TooLong", False, True, value, key)]
    return []


bad_keys = st.one_of(
    st.sampled_from([b"", "text", "k"]),
    st.builds(lambda n: b"K" * n, st.integers(256, 400)),
)
bad_values = st.one_of(
    st.sampled_from(["text", "", None]),
    st.builds(lambda n: b"V" * n, st.integers(65536, 65540)),
)


@st.composite
def boxes_with_bad_items(draw):
    box = draw(boxes(max_keys=6, values=st.binary(max_size=10)))
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.one_of(bad_keys, st.binary(min_size=1, max_size=3)))
        value = draw(st.one_of(bad_values, st.binary(max_size=3)))
        box[key] = value
    return box


@settings(max_examples=200, deadline=None)
@given(box=boxes_with_bad_items())
def test_encode_first_error_matches_twisted(impl, box):
    expected = reference_encode_errors(box)
    if not any(key == b"" for key in box):  # then the model is Twisted's own behaviour
        theirs = outcome(twisted_box(box).serialize)
        assert [theirs] == (expected or [("ok", theirs[1])])
    ours = outcome(impl.encode_box, box, TooLong)
    if expected:
        assert ours in expected
    else:
        assert ours == ("ok", serialize(box))


# ---------------------------------------------------------------------------
# 2. Decoding.
# ---------------------------------------------------------------------------


def reason_record(reason):
    value = reason.value
    if isinstance(value, TooLong):
        return ("TooLong", value.isKey, value.isLocal, value.value, value.keyName)
    return (type(value).__name__,)


class Receiver:
    """An IBoxReceiver recording what it is told; ``on_box(receiver, box)``, if given,
    runs inside ``ampBoxReceived``."""

    def __init__(self, on_box=None):
        self.events = []
        self.boxes = []
        self.on_box = on_box
        self.sender = None

    def startReceivingBoxes(self, sender):
        self.sender = sender
        self.events.append(("start",))

    def ampBoxReceived(self, box):
        self.boxes.append(box)
        self.events.append(("box", list(box.items())))
        if self.on_box is not None:
            self.on_box(self, box)

    def stopReceivingBoxes(self, reason):
        self.events.append(("stop", reason_record(reason)))


def connect(cls, receiver=None):
    receiver = Receiver() if receiver is None else receiver
    proto = cls(receiver)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport, receiver


def held(proto):
    """What the framer holds (not via ``recvd``, so nothing is made on demand)."""
    framer = proto._framer
    return b"" if framer is None else framer.buffered()


def twisted_run(stream, pieces=None, on_box=None, lose=True):
    """Twisted's BinaryBoxProtocol fed *stream* (whole, or as *pieces*), stopping once
    it is disconnecting (it re-parses what follows); then the connection is lost."""
    proto, transport, receiver = connect(tamp.BinaryBoxProtocol, Receiver(on_box))
    for piece in [stream] if pieces is None else pieces:
        if transport.disconnecting:
            break
        proto.dataReceived(piece)
    disconnecting = transport.disconnecting
    if lose:
        proto.connectionLost(Failure(ConnectionDone()))
    return receiver.events, disconnecting


def txframe_run(impl, stream, sizes=1, kinds=("bytes",), on_box=None, lose=True, stop_on_disconnect=False):
    """txframe's BinaryBoxProtocol fed *stream* in pieces of *sizes*, as *kinds* —
    all of them, unless *stop_on_disconnect* (txframe disregards what follows)."""
    proto, transport, receiver = connect(impl.BinaryBoxProtocol, Receiver(on_box))
    for index, piece in enumerate(cut_into(stream, sizes)):
        if stop_on_disconnect and transport.disconnecting:
            break
        proto.dataReceived(as_kind(kinds[index % len(kinds)], piece))
    disconnecting = transport.disconnecting
    rest = held(proto)
    if lose:
        proto.connectionLost(Failure(ConnectionDone()))
    return receiver, disconnecting, rest


def assert_boxes_are_amp_boxes(receiver):
    for box in receiver.boxes:
        assert type(box) is xamp.AmpBox
        assert isinstance(box, tamp.AmpBox)
        for key, value in box.items():
            assert type(key) is bytes and type(value) is bytes


@settings(max_examples=120, deadline=None)
@given(stream=streams(), sizes=chunk_sizes, kinds=chunk_kinds)
def test_decode_matches_twisted(impl, stream, sizes, kinds):
    items, data, tail = stream
    expected, _ = twisted_run(data + tail)
    receiver, disconnecting, rest = txframe_run(impl, data + tail, sizes, kinds)
    assert receiver.events == expected
    assert [dict(box) for box in receiver.boxes] == items
    assert not disconnecting
    assert tail.endswith(rest)  # the pairs of a box are taken as they complete
    assert_boxes_are_amp_boxes(receiver)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    stream=streams(max_boxes=4, box_strategy=boxes(max_keys=6)),
    sizes=st.lists(st.integers(1, 70000), min_size=1, max_size=5),
)
def test_decode_big_values_matches_twisted(impl, stream, sizes):
    items, data, tail = stream
    expected, _ = twisted_run(data + tail)
    receiver, _, rest = txframe_run(impl, data + tail, sizes)
    assert receiver.events == expected
    assert tail.endswith(rest)


def test_decode_biggest_pair_in_small_chunks(impl):
    box = {b"k" * 255: bytes(range(256)) * 255 + b"x" * 255}  # 65,535 bytes
    data = serialize(box) * 2
    for sizes in ([1000], [7, 4096, 1], [len(data)]):
        receiver, _, rest = txframe_run(impl, data, sizes)
        assert [dict(b) for b in receiver.boxes] == [box, box]
        assert rest == b""


STREAM = b"".join(
    [
        serialize({b"a": b"1", b"bb": b"", b"\xff": b"\x00\x00"}),
        END,  # the empty box
        pair(b"dup", b"first") + pair(b"x", b"y") + pair(b"dup", b"second") + END,
        serialize({b"_ask": b"1", b"_command": b"Sum", b"a": b"13", b"b": b"81"}),
    ]
)


def test_every_split_point_matches_twisted(impl):
    expected, _ = twisted_run(STREAM)
    assert [event[0] for event in expected] == ["start", "box", "box", "box", "box", "stop"]
    for cut in range(len(STREAM) + 1):
        receiver, _, rest = txframe_run(impl, STREAM, [cut or 1, len(STREAM)])
        assert receiver.events == expected, cut
        assert rest == b""
    receiver, _, _ = txframe_run(impl, STREAM, 1)
    assert receiver.events == expected


def test_empty_box_and_duplicate_keys_as_twisted(impl):
    data = END + pair(b"dup", b"first") + pair(b"x", b"y") + pair(b"dup", b"second") + END
    theirs = tamp.parseString(data)
    assert theirs == [{}, {b"dup": b"second", b"x": b"y"}]
    receiver, _, _ = txframe_run(impl, data, len(data))
    assert [list(box.items()) for box in receiver.boxes] == [list(box.items()) for box in theirs]
    assert list(receiver.boxes[1]) == [b"dup", b"x"]  # the last value, in the first place
    assert_boxes_are_amp_boxes(receiver)


def test_boxes_are_fresh_objects(impl):
    receiver, _, _ = txframe_run(impl, END * 3 + serialize({b"a": b"b"}) * 2, 100)
    assert len(receiver.boxes) == 5
    assert len({id(box) for box in receiver.boxes}) == 5


@settings(max_examples=120, deadline=None)
@given(stream=streams(max_boxes=6), kind=st.sampled_from(["bytes", "bytearray", "memoryview"]))
def test_decode_boxes_matches_parse_string(impl, stream, kind):
    items, data, tail = stream
    theirs = tamp.parseString(data + tail)
    assert theirs == items
    ours = impl.decode_boxes(as_kind(kind, data + tail))
    assert [list(box.items()) for box in ours] == [list(box.items()) for box in theirs]
    assert all(type(box) is dict for box in ours)
    typed = impl.decode_boxes(as_kind(kind, data + tail), xamp.AmpBox, TooLong)
    assert [list(box.items()) for box in typed] == [list(box.items()) for box in theirs]
    assert all(type(box) is xamp.AmpBox for box in typed)
    ordered = impl.decode_boxes(data + tail, OrderedDict)
    assert all(type(box) is OrderedDict for box in ordered) and ordered == items
    for box in ours:
        assert all(type(key) is bytes and type(value) is bytes for key, value in box.items())


def test_parse_and_parse_string(impl):
    assert xamp.parseString(STREAM) == tamp.parseString(STREAM)
    assert all(type(box) is xamp.AmpBox for box in xamp.parseString(STREAM))
    assert xamp.parse(io.BytesIO(STREAM + b"\x00")) == tamp.parse(io.BytesIO(STREAM + b"\x00"))
    assert impl.decode_boxes(b"") == [] == tamp.parseString(b"")


def test_decode_boxes_key_too_long(impl):
    # Difference 2: Twisted's parseString raises AttributeError (its helper has no
    # loseConnection); txframe's reports the key as TooLong (remote, a key).
    data = serialize({b"a": b"1"}) + b"\x01\x00" + b"k" * 256 + pair(b"", b"")
    with pytest.raises(AttributeError):
        tamp.parseString(data)
    with pytest.raises(FieldTooLong) as default:
        impl.decode_boxes(data)
    assert (default.value.isKey, default.value.isLocal, default.value.value, default.value.keyName) == (
        True, False, None, None,
    )
    with pytest.raises(TooLong) as ours:
        impl.decode_boxes(data, xamp.AmpBox, TooLong)
    assert (ours.value.isKey, ours.value.isLocal) == (True, False)
    with pytest.raises(TooLong):
        xamp.parseString(data)


def test_str_data_is_a_type_error(impl):
    proto, _, receiver = connect(impl.BinaryBoxProtocol)
    with pytest.raises(TypeError):
        proto.dataReceived("\x00\x00")
    assert receiver.boxes == []
    proto.dataReceived(END)
    assert receiver.boxes == [{}]


# ---------------------------------------------------------------------------
# 3. Bad input on the protocol.
# ---------------------------------------------------------------------------


def lost(proto, reason=None):
    proto.connectionLost(Failure(ConnectionDone() if reason is None else reason))


@pytest.mark.parametrize("length", [256, 0x1234, 0xFFFF])
@pytest.mark.parametrize("where", ["first key", "later key"])
def test_key_too_long_drops_the_connection_as_twisted(impl, length, where):
    before = serialize({b"a": b"1"}) + END + serialize({b"b": b"2", b"c": b"3"})
    if where == "later key":
        before += pair(b"x", b"in the bad box")
    after = struct.pack("!H", length) + b"k" * 300 + serialize({b"after": b"!"}) * 50
    data = before + after
    expected, disconnected = twisted_run(data)
    assert disconnected
    assert expected[-1] == ("stop", ("TooLong", True, False, None, None))
    for sizes in ([len(data)], [1], [3, 50]):
        proto, transport, receiver = connect(impl.BinaryBoxProtocol)
        for piece in cut_into(data, sizes):
            proto.dataReceived(piece)  # all of it: txframe disregards what follows
        assert transport.disconnecting
        assert held(proto) == b""
        assert receiver.boxes == [{b"a": b"1"}, {}, {b"b": b"2", b"c": b"3"}]
        lost(proto)
        assert receiver.events == expected


def test_length_limit_exceeded_is_told_the_length_as_twisted(impl):
    calls = []

    def recording(base):
        def lengthLimitExceeded(self, length):
            calls.append((base.__name__, length))
            base.lengthLimitExceeded(self, length)

        return type("Recording", (base,), {"lengthLimitExceeded": lengthLimitExceeded})

    data = serialize({b"a": b"1"}) + b"\x03\x00" + b"k" * 800
    for cls in (tamp.BinaryBoxProtocol, impl.BinaryBoxProtocol):
        proto, transport, _ = connect(recording(cls))
        proto.dataReceived(data)
        assert transport.disconnecting
    assert [length for _, length in calls] == [0x300, 0x300]


def test_data_after_key_too_long_is_never_buffered(impl):
    # Difference 3: Twisted keeps all of it, and parses it again on the next call.
    proto, transport, receiver = connect(impl.BinaryBoxProtocol)
    proto.dataReceived(serialize({b"a": b"b"}) + b"\x01\x00")
    assert transport.disconnecting
    chunk = serialize({b"k": b"v" * 100}) * 600  # ~64 KB of valid boxes
    for _ in range(64):  # 4 MB
        proto.dataReceived(chunk)
        assert held(proto) == b""
    assert receiver.boxes == [{b"a": b"b"}]


def test_key_too_long_disregards_what_follows_even_if_the_connection_stays(impl):
    class KeepOpen(impl.BinaryBoxProtocol):
        def lengthLimitExceeded(self, length):
            self.exceeded = length

    proto, transport, receiver = connect(KeepOpen)
    proto.dataReceived(serialize({b"a": b"1"}) + b"\x01\x00" + b"k" * 256)
    proto.dataReceived(serialize({b"b": b"2"}) * 10)
    assert proto.exceeded == 256
    assert not transport.disconnecting
    assert receiver.boxes == [{b"a": b"1"}]
    assert held(proto) == b""


def test_value_limit_set_on_the_instance_as_twisted(impl):
    # Twisted reads _MAX_VALUE_LENGTH for each value; a value over it is reported like a
    # key (the connection drops and the receiver is told TooLong(True, False, ...)).
    data = serialize({b"a": b"12345"}) + serialize({b"a": b"123456"}) + serialize({b"z": b""})
    for limit, delivered in ((5, 1), (6, 3)):
        results = []
        for cls in (tamp.BinaryBoxProtocol, impl.BinaryBoxProtocol):
            receiver = Receiver()
            proto = cls(receiver)
            proto._MAX_VALUE_LENGTH = limit
            transport = StringTransport()
            proto.makeConnection(transport)
            proto.dataReceived(data)
            disconnecting = transport.disconnecting
            lost(proto)
            results.append((receiver.events, disconnecting))
        assert results[0] == results[1]
        assert len(results[1][0]) == delivered + 2


class BoxLengthRecorder:
    """Mixin recording boxLengthExceeded calls, then doing the default."""

    def boxLengthExceeded(self, length):
        self.exceeded = getattr(self, "exceeded", []) + [length]
        super().boxLengthExceeded(length)


#: What each pair counts beyond its bytes towards MAX_BOX_LENGTH (the documented
#: contract: "its keys and values plus 64 bytes for each pair").
PAIR_OVERHEAD = 64


def box_size(box):
    return sum(4 + len(key) + len(value) + PAIR_OVERHEAD for key, value in box.items())


def test_box_length_limit_boundary(impl):
    # Difference 4: a box's keys, values, their prefixes and 64 bytes a pair.
    assert box_size({b"k": b"12345"}) == 74
    cls = type("Limited", (BoxLengthRecorder, impl.BinaryBoxProtocol), {})
    proto, transport, receiver = connect(cls)
    proto.MAX_BOX_LENGTH = 74
    proto.dataReceived(serialize({b"k": b"12345"}) + END + serialize({b"k": b"123456"}) + END)
    assert receiver.boxes == [{b"k": b"12345"}, {}]
    assert proto.exceeded == [75]
    assert transport.disconnecting
    assert held(proto) == b""
    lost(proto)
    assert receiver.events[-1] == ("stop", ("TooLong", False, False, None, None))


def test_box_length_counts_every_pair(impl):
    three = {b"a": b"12345", b"b": b"12345", b"c": b"12345"}
    four = {**three, b"d": b""}
    cls = type("Limited", (BoxLengthRecorder, impl.BinaryBoxProtocol), {"MAX_BOX_LENGTH": box_size(three)})
    proto, transport, receiver = connect(cls)
    proto.dataReceived(serialize(three) * 2)
    assert receiver.boxes == [three] * 2
    for piece in cut_into(serialize(four), 1):
        proto.dataReceived(piece)
    assert proto.exceeded == [box_size(four)]
    assert transport.disconnecting


def test_a_box_that_never_ends_is_bounded(impl):
    limit = 200_000
    cls = type("Limited", (BoxLengthRecorder, impl.BinaryBoxProtocol), {})
    proto, transport, receiver = connect(cls)
    proto.MAX_BOX_LENGTH = limit
    proto.dataReceived(serialize({b"first": b"box"}))
    pairs = b"".join(pair(b"key%d" % n, b"v" * 1000) for n in range(100))  # ~100 KB
    fed = 0
    while not transport.disconnecting:
        for piece in cut_into(pairs, 4096):
            proto.dataReceived(piece)
            assert len(held(proto)) < 4096 + 1010  # at most one partial pair, one chunk
        fed += len(pairs)
        assert fed < 10 * limit
    assert len(proto.exceeded) == 1 and limit < proto.exceeded[0] <= limit + 1010 + PAIR_OVERHEAD
    assert held(proto) == b""
    for _ in range(30):  # ~3 MB more: disregarded
        proto.dataReceived(pairs)
        assert held(proto) == b""
    assert receiver.boxes == [{b"first": b"box"}]
    assert len(proto.exceeded) == 1
    lost(proto)
    assert receiver.events[-1] == ("stop", ("TooLong", False, False, None, None))


def test_box_length_exceeded_disregards_what_follows_even_if_the_connection_stays(impl):
    class KeepOpen(impl.BinaryBoxProtocol):
        MAX_BOX_LENGTH = 100

        def boxLengthExceeded(self, length):
            self.exceeded = length

    proto, transport, receiver = connect(KeepOpen)
    proto.dataReceived(serialize({b"a": b"1"}) + serialize({b"big": b"x" * 200}) + serialize({b"b": b"2"}))
    proto.dataReceived(serialize({b"c": b"3"}))
    assert proto.exceeded == box_size({b"big": b"x" * 200})
    assert not transport.disconnecting
    assert receiver.boxes == [{b"a": b"1"}]
    assert held(proto) == b""


def test_default_box_length_limit(impl):
    assert impl.BinaryBoxProtocol.MAX_BOX_LENGTH == 16 * 1024 * 1024
    value = b"v" * 65535
    box = {b"%05d" % n: value for n in range(200)}  # ~13 MB: under the limit
    receiver, disconnecting, _ = txframe_run(impl, serialize(box), 1 << 20)
    assert not disconnecting
    assert receiver.boxes == [box]


@pytest.mark.parametrize("reason", [ConnectionDone(), ConnectionLost()])
def test_truncated_box_then_connection_lost_as_twisted(impl, reason):
    last = serialize({b"key": b"value", b"other": b"x" * 300})
    for cut in range(len(last)):
        data = serialize({b"a": b"1"}) + last[:cut]
        theirs, _ = twisted_run(data, lose=False)
        proto, transport, receiver = connect(impl.BinaryBoxProtocol)
        for piece in cut_into(data, [5, 1, 100]):
            proto.dataReceived(piece)
        assert receiver.events == theirs
        lost(proto, reason)
        assert receiver.events == theirs + [("stop", (type(reason).__name__,))]
        assert receiver.boxes == [{b"a": b"1"}]
        assert not transport.disconnecting


@st.composite
def garbage(draw):
    """Byte soup, often shaped like boxes: length prefixes small and large, valid pairs,
    ends of boxes, random bytes."""
    parts = draw(
        st.lists(
            st.one_of(
                st.binary(max_size=12),
                st.builds(pair, st.binary(min_size=1, max_size=4), st.binary(max_size=6)),
                st.just(END),
                st.builds(struct.pack, st.just("!H"), st.integers(0, 300)),
                st.builds(struct.pack, st.just("!H"), st.integers(0, 0xFFFF)),
            ),
            max_size=25,
        )
    )
    return b"".join(parts)


@settings(max_examples=200, deadline=None)
@given(data=garbage(), sizes=chunk_sizes, kinds=chunk_kinds)
def test_binary_garbage_matches_twisted(impl, data, sizes, kinds):
    expected, disconnected = twisted_run(data)
    receiver, disconnecting, rest = txframe_run(impl, data, sizes, kinds)
    assert receiver.events == expected
    assert disconnecting == disconnected
    if disconnecting:
        assert rest == b""
    assert_boxes_are_amp_boxes(receiver)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200), sizes=chunk_sizes)
def test_random_bytes_match_twisted(impl, data, sizes):
    expected, disconnected = twisted_run(data)
    receiver, disconnecting, _ = txframe_run(impl, data, sizes)
    assert receiver.events == expected
    assert disconnecting == disconnected


# -- pausing, recvd, switching ----------------------------------------------------------


def test_pause_holds_boxes_back_until_resume(impl):
    proto, transport, receiver = connect(impl.BinaryBoxProtocol)
    proto.pauseProducing()
    assert transport.producerState == "paused"
    data = serialize({b"a": b"1"}) + END + serialize({b"b": b"2"})
    for piece in cut_into(data, 3):
        proto.dataReceived(piece)
    assert receiver.boxes == []
    proto.resumeProducing()
    assert transport.producerState == "producing"
    assert receiver.boxes == [{b"a": b"1"}, {}, {b"b": b"2"}]


def driven(impl_or_none, data, pieces, resume_after, pause_key=b"pause"):
    """Feed *pieces*; a box holding *pause_key* pauses; after piece i the driver
    resumes if ``resume_after[i]``; at the end it resumes until nothing is held."""
    cls = tamp.BinaryBoxProtocol if impl_or_none is None else impl_or_none.BinaryBoxProtocol
    events = []

    def on_box(receiver, box):
        if pause_key in box:
            receiver.sender.pauseProducing()
            events.append(("paused",))

    proto, transport, receiver = connect(cls, Receiver(on_box))
    receiver.events = events
    for index, piece in enumerate(pieces):
        proto.dataReceived(piece)
        if resume_after[index % len(resume_after)] and proto.paused:
            events.append(("resume",))
            proto.resumeProducing()
    for _ in range(100):
        if not proto.paused:
            break
        events.append(("resume",))
        proto.resumeProducing()
    events.append(("end", bool(proto.paused), bytes(proto.recvd)))
    return events


pausing_boxes = st.one_of(
    small_boxes,
    small_boxes.map(lambda box: {**box, b"pause": b""}),
)


@settings(max_examples=100, deadline=None)
@given(
    items=st.lists(pausing_boxes, max_size=8),
    sizes=chunk_sizes,
    resume_after=st.lists(st.booleans(), min_size=1, max_size=5),
)
def test_pausing_in_box_received_matches_twisted(impl, items, sizes, resume_after):
    data = b"".join(serialize(box) for box in items)
    pieces = list(cut_into(data, sizes))
    assert driven(impl, data, pieces, resume_after) == driven(None, data, pieces, resume_after)


@settings(max_examples=100, deadline=None)
@given(stream=streams(max_boxes=6), sizes=chunk_sizes)
def test_recvd_in_box_received_matches_twisted(impl, stream, sizes):
    _, data, tail = stream
    pieces = list(cut_into(data + tail, sizes))

    def run(cls):
        seen = []
        proto, _, receiver = connect(cls, Receiver(lambda r, box: seen.append(bytes(r.sender.recvd))))
        for piece in pieces:
            proto.dataReceived(piece)
        # (between boxes only: inside a box, Twisted's recvd starts after its last
        # complete key or value, txframe's after its last complete pair)
        return seen, receiver.events, bytes(proto.recvd) if not tail else None

    assert run(impl.BinaryBoxProtocol) == run(tamp.BinaryBoxProtocol)


def test_recvd_is_the_bytes_after_the_box(impl):
    first = serialize({b"a": b"1"})
    rest = serialize({b"b": b"2"}) + b"\x00\x05tru"
    seen = []
    proto, _, receiver = connect(impl.BinaryBoxProtocol, Receiver(lambda r, box: seen.append(r.sender.recvd)))
    proto.dataReceived(first + rest)
    assert seen == [rest, b"\x00\x05tru"]
    assert proto.recvd == b"\x00\x05tru"


@settings(max_examples=100, deadline=None)
@given(
    before=st.lists(small_boxes, max_size=3),
    after=st.lists(small_boxes, min_size=1, max_size=3),
    sizes=chunk_sizes,
    replacement=st.lists(small_boxes, max_size=3),
    replacement_tail=st.binary(max_size=3),
)
def test_recvd_assigned_in_box_received_matches_twisted(
    impl, before, after, sizes, replacement, replacement_tail
):
    switch = serialize({b"replace": b""})
    data = b"".join(map(serialize, before)) + switch + b"".join(map(serialize, after))
    new = b"".join(map(serialize, replacement)) + replacement_tail

    def on_box(receiver, box):
        if b"replace" in box:
            receiver.sender.recvd = new

    pieces = list(cut_into(data, sizes))

    def run(cls):
        proto, transport, receiver = connect(cls, Receiver(on_box))
        for piece in pieces:
            if transport.disconnecting:
                break  # the replacement may end in garbage; Twisted would parse it again
            proto.dataReceived(piece)
        disconnecting = transport.disconnecting
        return receiver.events, disconnecting, None if disconnecting else bytes(proto.recvd)

    assert run(impl.BinaryBoxProtocol) == run(tamp.BinaryBoxProtocol)


@settings(max_examples=100, deadline=None)
@given(
    before=st.lists(small_boxes, max_size=3),
    after=st.lists(small_boxes, max_size=3),
    raw=st.binary(max_size=30),
    sizes=chunk_sizes,
)
def test_recvd_assigned_empty_str_drops_the_rest_as_twisted(impl, before, after, raw, sizes):
    switch = serialize({b"switch": b""})
    data = b"".join(map(serialize, before)) + switch + b"".join(map(serialize, after)) + raw

    def on_box(receiver, box):
        if b"switch" in box:
            receiver.sender.recvd = ""  # what BinaryBoxProtocol._switchTo does
            receiver.switched = True

    def run(cls):
        receiver = Receiver(on_box)
        receiver.switched = False
        proto, _, _ = connect(cls, receiver)
        fed = 0
        for piece in cut_into(data, sizes):
            if receiver.switched:
                break  # Twisted's buffer is the str "" now: it takes no more
            proto.dataReceived(piece)
            fed += len(piece)
        return receiver.events, fed

    ours, theirs = run(impl.BinaryBoxProtocol), run(tamp.BinaryBoxProtocol)
    assert ours == theirs
    assert ours[0][-1] == ("box", [(b"switch", b"")])


def test_recvd_assigned_empty_str_drops_the_rest_of_the_chunk(impl):
    seen = []

    def on_box(receiver, box):
        if b"switch" in box:
            seen.append(receiver.sender.recvd)
            receiver.sender.recvd = ""
            seen.append(receiver.sender.recvd)

    after = serialize({b"after": b""}) * 3 + b"\x00\x01"
    proto, _, receiver = connect(impl.BinaryBoxProtocol, Receiver(on_box))
    proto.dataReceived(serialize({b"a": b""}) + serialize({b"switch": b""}) + after)
    assert receiver.boxes == [{b"a": b""}, {b"switch": b""}]
    assert seen == [after, b""]
    assert proto.recvd == b""


@settings(max_examples=100, deadline=None)
@given(
    before=st.lists(small_boxes, max_size=3),
    raw=st.binary(max_size=60),
    sizes=chunk_sizes,
)
def test_switch_protocol_in_box_received_matches_twisted(impl, before, raw, sizes):
    data = b"".join(map(serialize, before)) + serialize({b"switch": b""}) + raw
    pieces = list(cut_into(data, sizes))

    def run(cls):
        inner = AccumulatingProtocol()

        def on_box(receiver, box):
            if b"switch" in box:
                receiver.sender._switchTo(inner)

        proto, _, receiver = connect(cls, Receiver(on_box))
        for piece in pieces:
            proto.dataReceived(piece)
        return receiver.events, inner.data, bool(inner.made)

    ours = run(impl.BinaryBoxProtocol)
    assert ours == run(tamp.BinaryBoxProtocol)
    assert ours[1] == raw


def test_exception_in_box_received_propagates_and_the_next_call_goes_on(impl):
    # txframe behaviour: the boxes after the failing one are delivered once, in order.
    class Boom(Exception):
        pass

    def on_box(receiver, box):
        if b"boom" in box:
            raise Boom()

    proto, _, receiver = connect(impl.BinaryBoxProtocol, Receiver(on_box))
    with pytest.raises(Boom):
        proto.dataReceived(serialize({b"a": b""}) + serialize({b"boom": b""}) + serialize({b"b": b""}))
    assert receiver.boxes == [{b"a": b""}, {b"boom": b""}]
    proto.dataReceived(b"")
    assert receiver.boxes == [{b"a": b""}, {b"boom": b""}, {b"b": b""}]


def test_reentrant_data_received_keeps_order(impl):
    def on_box(receiver, box):
        if b"more" in box:
            receiver.sender.dataReceived(serialize({b"inner": b""}))

    proto, _, receiver = connect(impl.BinaryBoxProtocol, Receiver(on_box))
    proto.dataReceived(serialize({b"more": b""}) + serialize({b"after": b""}))
    assert receiver.boxes == [{b"more": b""}, {b"after": b""}, {b"inner": b""}]


# ---------------------------------------------------------------------------
# 4. Schema.
# ---------------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1
    BLUE = 2


class LoudFloat(float):
    """A float subclass whose str differs from float's (Twisted's Float uses str)."""

    def __str__(self):
        return "loud" + float.__repr__(self)


TIMEZONES = [
    datetime.timezone.utc,
    tamp.utc,
    datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
    datetime.timezone(-datetime.timedelta(hours=8)),
]
path_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)


def values_for(arg):
    """Valid Python values for the Argument *arg*."""
    kind = type(arg)
    if kind is tamp.Integer:
        return st.one_of(
            st.integers(), st.integers(-(2**80), 2**80), st.sampled_from([True, False, Color.BLUE, 0])
        )
    if kind is tamp.String:
        return st.one_of(
            st.binary(max_size=30), st.builds(lambda n: b"s" * n, st.integers(0, 65535))
        )
    if kind is tamp.Unicode:
        return st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
    if kind is tamp.Boolean:
        return st.one_of(st.booleans(), st.sampled_from([0, 1, "", "x", [], [0]]))
    if kind is tamp.Float:
        return st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324]))
    if kind is tamp.Decimal:
        return st.one_of(
            st.decimals(allow_nan=True, allow_infinity=True),
            st.sampled_from([decimal.Decimal("sNaN"), decimal.Decimal("-0"), decimal.Decimal("1E+2")]),
        )
    if kind is tamp.DateTime:
        return st.datetimes(timezones=st.sampled_from(TIMEZONES))
    if kind is tamp.Path:
        return path_text.map(FilePath)
    if kind is tamp.ListOf:
        return st.lists(values_for(arg.elementType), max_size=5)
    if kind is tamp.AmpList:
        return st.lists(objects_for(arg.subargs), max_size=3)
    raise AssertionError(arg)


def bad_values_for(arg):
    """Values Twisted fails to convert for *arg* (or to fit in a box)."""
    kind = type(arg)
    if kind is tamp.Integer:
        return st.sampled_from(["1", b"1", None, 10**5000, [1]])
    if kind is tamp.String:
        return st.sampled_from(["text", None, 5, b"s" * 65536])
    if kind in (tamp.Unicode, tamp.Path):
        return st.sampled_from([b"bytes", None, "\ud800", 5])
    if kind is tamp.Boolean:
        return st.just(Unbooleanable())
    if kind is tamp.Float:
        return st.sampled_from([1, True, "1.5", None, decimal.Decimal("1.5")])
    if kind is tamp.Decimal:
        return st.sampled_from([1.5, 1, "1", None])
    if kind is tamp.DateTime:
        return st.sampled_from([datetime.datetime(2020, 1, 1), None, "2020"])
    if kind is tamp.ListOf:
        return st.one_of(
            st.sampled_from([None, 5]),
            st.lists(
                st.one_of(values_for(arg.elementType), bad_values_for(arg.elementType)), min_size=1, max_size=3
            ),
        )
    if kind is tamp.AmpList:
        return st.sampled_from([None, [{}], [{"nope": 1}], 5])
    raise AssertionError(arg)


class Unbooleanable:
    def __bool__(self):
        raise ZeroDivisionError("no truth here")


ABSENT = object()


@st.composite
def objects_for(draw, arglist, bad=False):
    """A mapping of python names to values for *arglist*; an optional argument may be
    absent or None; with *bad*, some values may be wrong (or required ones absent)."""
    objects = {}
    for name, arg in arglist:
        choices = [values_for(arg)]
        if arg.optional:
            choices += [st.just(ABSENT), st.just(None)]
        if bad:
            choices += [bad_values_for(arg), st.just(ABSENT)]
        value = draw(st.one_of(choices))
        if value is not ABSENT:
            objects[tamp._wireNameToPythonIdentifier(name)] = value
    return objects


SIMPLE = [
    tamp.Integer,
    tamp.String,
    tamp.Unicode,
    tamp.Boolean,
    tamp.Float,
    tamp.Decimal,
    tamp.DateTime,
    tamp.Path,
]

ARGLISTS = {
    "simple": [(b"int", tamp.Integer()), (b"str", tamp.String()), (b"uni", tamp.Unicode()),
               (b"bool", tamp.Boolean()), (b"float", tamp.Float()), (b"dec", tamp.Decimal()),
               (b"when", tamp.DateTime()), (b"path", tamp.Path())],
    "optional": [(b"o-" + cls.__name__.lower().encode(), cls(optional=True)) for cls in SIMPLE],
    "lists": [(b"list-" + cls.__name__.lower().encode(), tamp.ListOf(cls())) for cls in SIMPLE]
    + [(b"maybe-ints", tamp.ListOf(tamp.Integer(), optional=True))],
    "amplist": [
        (b"rows", tamp.AmpList([(b"a", tamp.Integer()), (b"b", tamp.Unicode(optional=True)),
                                (b"c", tamp.ListOf(tamp.String())), (b"d", tamp.Float(optional=True))])),
        (b"nested", tamp.AmpList([(b"inner", tamp.AmpList([(b"x", tamp.Boolean()), (b"y", tamp.String())])),
                                  (b"z", tamp.Decimal(optional=True))], optional=True)),
        (b"n", tamp.Integer()),
    ],
    # names sorting around the keys AMP adds, names that change in Python
    "names": [(b"A", tamp.String()), (b"_a", tamp.Integer()), (b"_ask2", tamp.Unicode(optional=True)),
              (b"_commanc", tamp.Boolean()), (b"_command_", tamp.String(optional=True)),
              (b"a-b", tamp.Integer()), (b"from", tamp.String()), (b"~", tamp.Float(optional=True)),
              (b"z" * 255, tamp.String())],
}


def normal(value):
    """*value* made comparable: floats by bits (any NaN alike), Decimals and paths by
    their text, datetimes with their offsets, and every value with its type."""
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else struct.pack("!d", value))
    if isinstance(value, decimal.Decimal):
        return ("Decimal", str(value))
    if isinstance(value, FilePath):
        return ("FilePath", value.path)
    if isinstance(value, datetime.datetime):  # (offsets out of datetime's range too)
        zone = value.tzinfo
        return ("datetime", value.replace(tzinfo=None).isoformat(), zone and zone.utcoffset(value))
    if isinstance(value, list):
        return ("list", [normal(item) for item in value])
    if isinstance(value, dict):
        return ("dict", sorted((key, normal(item)) for key, item in value.items()))
    return (type(value).__name__, value)


def normal_outcome(result):
    return ("ok", normal(result[1])) if result[0] == "ok" else result


def make_schema(impl, arglist, request=True):
    if request:
        schema = xamp._schema(
            arglist, impl.Schema, (tamp.COMMAND, tamp.ASK),
            constants=[(tamp.COMMAND, b"TheCommand")], tag_key=tamp.ASK,
        )
    else:
        schema = xamp._schema(arglist, impl.Schema, (tamp.ANSWER,), tag_key=tamp.ANSWER)
    assert schema is not None
    return schema


def twisted_encode(arglist, objects, proto, tag, request=True):
    box = tamp._objectsToStrings(objects, arglist, tamp.AmpBox(), proto)
    if request:
        box[tamp.COMMAND] = b"TheCommand"
        if tag is not None:
            box[tamp.ASK] = tag
    elif tag is not None:
        box[tamp.ANSWER] = tag
    return box.serialize()


PROTO = tamp.AMP()


@pytest.mark.parametrize("label", sorted(ARGLISTS))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), tag=st.one_of(st.none(), st.binary(min_size=1, max_size=8)), request=st.booleans())
def test_schema_matches_twisted(impl, label, data, tag, request):
    arglist = ARGLISTS[label]
    schema = make_schema(impl, arglist, request)
    objects = data.draw(objects_for(arglist))
    copied = dict(objects)
    expected = outcome(twisted_encode, arglist, objects, PROTO, tag, request)
    result = outcome(schema.encode, objects, PROTO, tag)
    assert result == expected
    assert objects == copied  # not consumed
    if result[0] != "ok":
        return  # a value over 65,535 bytes
    (box,) = tamp.parseString(result[1])
    before = dict(box)
    decoded = outcome(schema.decode, box, PROTO)
    assert normal_outcome(decoded) == normal_outcome(outcome(tamp._stringsToObjects, box, arglist, PROTO))
    assert box == before  # not consumed
    assert schema.fits(objects)
    assert decoded[0] == "ok"
    assert normal(schema.decode(dict(box), PROTO)) == normal(decoded[1])


@pytest.mark.parametrize("label", sorted(ARGLISTS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_schema_encoding_errors_match_twisted(impl, label, data):
    arglist = ARGLISTS[label]
    schema = make_schema(impl, arglist)
    objects = data.draw(objects_for(arglist, bad=True))
    expected = outcome(twisted_encode, arglist, objects, PROTO, b"7")
    assert outcome(schema.encode, objects, PROTO, b"7") == expected


NUMBERISH = b"0123456789+-_.eE xX\t\nnaifINFty"


def wire_for(arg):
    """Strings a peer might send for *arg*: valid encodings and junk."""
    kind = type(arg)
    junk = st.one_of(st.binary(max_size=12), st.binary(max_size=6).map(bytes.upper))
    if kind in (tamp.Integer, tamp.Float, tamp.Decimal):
        numberish = st.lists(st.sampled_from(sorted(set(NUMBERISH))), max_size=10).map(bytes)
        words = st.sampled_from([b"nan", b"-nan", b"inf", b"-Infinity", b"1e400", b" 1.5 ", b"1_0",
                                 b"0x10", b"", b"1" * 5000, b"sNaN", b"\xd9\xa1"])
        return st.one_of(values_for(arg).map(arg.toString), numberish, words, junk)
    if kind is tamp.Boolean:
        return st.one_of(st.sampled_from([b"True", b"False", b"true", b"", b"1", b"True "]), junk)
    if kind is tamp.String:
        return st.one_of(st.binary(max_size=30), st.just(b"\xff\xfe"))
    if kind in (tamp.Unicode, tamp.Path):
        text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
        return st.one_of(text.map(lambda t: t.encode("utf-8")), junk, st.just(b"\xff\xfe"))
    if kind is tamp.DateTime:
        return st.one_of(
            values_for(arg).map(arg.toString),
            st.binary(min_size=32, max_size=32),
            st.just(b"2020-01-01T00:00:00.000000+99:00"),
            junk,
        )
    if kind is tamp.ListOf:
        element = wire_for(arg.elementType)
        tail = st.sampled_from([b"", b"", b"\x00", b"\x00\x05ab"])
        return st.builds(
            lambda items, end: b"".join(struct.pack("!H", len(i)) + i for i in items) + end,
            st.lists(element, max_size=4), tail,
        )
    if kind is tamp.AmpList:
        return st.builds(
            lambda items, cut: b"".join(serialize(i) for i in items) + cut,
            st.lists(wire_boxes_for(arg.subargs), max_size=3),
            st.sampled_from([b"", b"\x00", b"\x00\x01a\x00"]),
        )
    raise AssertionError(arg)


@st.composite
def wire_boxes_for(draw, arglist, extra=(b"_command", b"_ask", b"unknown")):
    box = {}
    for name, arg in arglist:
        if draw(st.integers(0, 5)):
            box[name] = draw(wire_for(arg))
    for key in extra:
        if draw(st.booleans()):
            box[key] = draw(st.binary(max_size=4))
    return box


@pytest.mark.parametrize("label", sorted(ARGLISTS))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_schema_decoding_matches_twisted(impl, label, data):
    arglist = ARGLISTS[label]
    schema = make_schema(impl, arglist)
    box = data.draw(wire_boxes_for(arglist))
    for mapping in (box, twisted_box(box), xamp.AmpBox(box)):
        expected = outcome(tamp._stringsToObjects, twisted_box(box), arglist, PROTO)
        assert normal_outcome(outcome(schema.decode, mapping, PROTO)) == normal_outcome(expected)


def test_schema_decode_missing_required_key_is_a_key_error(impl):
    arglist = [(b"a", tamp.Integer()), (b"b-c", tamp.String()), (b"d", tamp.Unicode(optional=True))]
    schema = make_schema(impl, arglist)
    box = tamp.AmpBox({b"a": b"1"})
    with pytest.raises(KeyError) as theirs:
        tamp._stringsToObjects(box, arglist, PROTO)
    with pytest.raises(KeyError) as ours:
        schema.decode(box, PROTO)
    assert ours.value.args == theirs.value.args == (b"b-c",)
    assert schema.decode({b"a": b"1", b"b-c": b""}, PROTO) == {"a": 1, "b_c": b"", "d": None}


def test_schema_encode_missing_required_key_is_a_key_error(impl):
    arglist = [(b"a", tamp.Integer()), (b"b-c", tamp.String())]
    schema = make_schema(impl, arglist)
    with pytest.raises(KeyError) as theirs:
        twisted_encode(arglist, {"a": 1}, PROTO, b"1")
    with pytest.raises(KeyError) as ours:
        schema.encode({"a": 1}, PROTO, b"1")
    assert ours.value.args == theirs.value.args == ("b_c",)


# (argument, value, error, whether the message is Twisted's own, to compare too)
ENCODING_ERRORS = {
    "float-int": (tamp.Float(), 1, ValueError, True),
    "float-bool": (tamp.Float(), True, ValueError, True),
    "float-str": (tamp.Float(), "1.5", ValueError, True),
    "integer-str": (tamp.Integer(), "1", TypeError, False),
    "integer-too-many-digits": (tamp.Integer(), 10**5000, ValueError, False),
    "unicode-bytes": (tamp.Unicode(), b"bytes", AttributeError, False),
    "unicode-surrogate": (tamp.Unicode(), "\ud800", UnicodeEncodeError, False),
    "string-str": (tamp.String(), "text", TypeError, True),
    "string-none": (tamp.String(), None, TypeError, False),
    "boolean-raising": (tamp.Boolean(), Unbooleanable(), ZeroDivisionError, False),
    "datetime-naive": (tamp.DateTime(), datetime.datetime(2020, 1, 1), ValueError, True),
    "decimal-float": (tamp.Decimal(), 1.5, ValueError, True),
    "listof-element-too-long": (tamp.ListOf(tamp.String()), [b"x" * 65536], struct.error, False),
    "listof-bad-element": (tamp.ListOf(tamp.Integer()), ["1"], TypeError, False),
    "listof-none": (tamp.ListOf(tamp.Integer()), None, TypeError, False),
}


@pytest.mark.parametrize("case", list(ENCODING_ERRORS))
def test_schema_encoding_error_types(impl, case):
    arg, value, error, twisteds_message = ENCODING_ERRORS[case]
    arglist = [(b"x", arg)]
    schema = make_schema(impl, arglist)
    with pytest.raises(error) as theirs:
        twisted_encode(arglist, {"x": value}, PROTO, b"1")
    with pytest.raises(error) as ours:
        schema.encode({"x": value}, PROTO, b"1")
    assert type(ours.value) is type(theirs.value)
    if twisteds_message:
        assert str(ours.value) == str(theirs.value)


DECODING_ERRORS = {
    "float": (tamp.Float(), b"one", ValueError),
    "boolean": (tamp.Boolean(), b"true", TypeError),
    "integer": (tamp.Integer(), b"1.5", ValueError),
    "integer-too-many-digits": (tamp.Integer(), b"1" * 5000, ValueError),
    "unicode": (tamp.Unicode(), b"\xff", UnicodeDecodeError),
    "datetime": (tamp.DateTime(), b"2020", ValueError),
    "listof-boolean": (tamp.ListOf(tamp.Boolean()), b"\x00\x03yes", TypeError),
    "decimal": (tamp.Decimal(), b"1.2.3", decimal.InvalidOperation),
}


@pytest.mark.parametrize("case", list(DECODING_ERRORS))
def test_schema_decoding_error_types(impl, case):
    arg, wire, error = DECODING_ERRORS[case]
    arglist = [(b"x", arg)]
    schema = make_schema(impl, arglist)
    with pytest.raises(error) as theirs:
        tamp._stringsToObjects(tamp.AmpBox({b"x": wire}), arglist, PROTO)
    with pytest.raises(error) as ours:
        schema.decode({b"x": wire}, PROTO)
    assert type(ours.value) is type(theirs.value)
    if error is TypeError:
        assert str(ours.value) == str(theirs.value)  # Twisted's "Bad boolean value"


FLOATS = [math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, -5e-324, 1.7976931348623157e308,
          0.1, 1 / 3, 1e16, 1e-7, 123456789.0]


@pytest.mark.parametrize("value", FLOATS)
def test_schema_floats(impl, value):
    arglist = [(b"f", tamp.Float()), (b"fs", tamp.ListOf(tamp.Float()))]
    schema = make_schema(impl, arglist, request=False)
    objects = {"f": value, "fs": [value, -value]}
    encoded = schema.encode(objects, PROTO, b"1")
    assert encoded == twisted_encode(arglist, objects, PROTO, b"1", request=False)
    (box,) = tamp.parseString(encoded)
    ours = schema.decode(box, PROTO)
    theirs = tamp._stringsToObjects(box, arglist, PROTO)
    for got in (ours["f"], ours["fs"][0], theirs["f"]):
        assert type(got) is float
        if math.isnan(value):
            assert math.isnan(got)
        else:
            assert got == value and math.copysign(1, got) == math.copysign(1, value)
    assert normal(ours) == normal(theirs)


@pytest.mark.parametrize(
    "wire",
    [b"nan", b"-nan", b"NaN", b"inf", b"-Infinity", b"1e400", b"-0", b"-0.0", b" 1.5\n", b"1_0", b"0.1"],
)
def test_schema_float_strings(impl, wire):
    arglist = [(b"f", tamp.Float())]
    schema = make_schema(impl, arglist)
    ours = schema.decode({b"f": wire}, PROTO)["f"]
    theirs = tamp._stringsToObjects(tamp.AmpBox({b"f": wire}), arglist, PROTO)["f"]
    assert normal(ours) == normal(theirs)


class Indexable:
    """Not an int, but usable as one (``__index__``)."""

    def __index__(self):
        return 7


UNUSUAL_VALUES = {
    "integer-intenum": (tamp.Integer(), Color.RED),
    "integer-bool": (tamp.Integer(), True),
    "integer-float": (tamp.Integer(), 1.9),
    "integer-index": (tamp.Integer(), Indexable()),
    "integer-huge": (tamp.Integer(), -(2**200)),
    "float-subclass-str": (tamp.Float(), LoudFloat(2.5)),
    "boolean-none": (tamp.Boolean(), None),
    "boolean-list": (tamp.Boolean(), [0]),
    "unicode-astral": (tamp.Unicode(), "caf\xe9 \U0001f600"),
    "listof-tuple": (tamp.ListOf(tamp.Integer()), (1, 2, 3)),
    "listof-bytes-like": (tamp.ListOf(tamp.String()), (bytearray(b"ab"), memoryview(b"cd"))),
    "listof-empty": (tamp.ListOf(tamp.Unicode()), []),
    "amplist-empty": (tamp.AmpList([(b"a", tamp.Integer())]), []),
    "string-bytearray": (tamp.String(), bytearray(b"ba")),
    "string-memoryview": (tamp.String(), memoryview(b"mv")),
    "string-bytes-subclass": (tamp.String(), SubBytes(b"sub")),
}


@pytest.mark.parametrize("case", list(UNUSUAL_VALUES))
def test_schema_unusual_values_as_twisted(impl, case):
    arg, value = UNUSUAL_VALUES[case]
    arglist = [(b"x", arg)]
    schema = make_schema(impl, arglist)
    expected = outcome(twisted_encode, arglist, {"x": value}, PROTO, b"1")
    assert expected[0] == "ok"
    assert outcome(schema.encode, {"x": value}, PROTO, b"1") == expected


class Doubled(tamp.Argument):
    """A custom plain Argument: toString / fromString only."""

    def toString(self, inObject):
        return inObject * 2

    def fromString(self, inString):
        return inString[: len(inString) // 2]


class WithProto(tamp.Argument):
    """A custom Argument that needs the protocol."""

    def toStringProto(self, inObject, proto):
        return b"%s:%s" % (type(proto).__name__.encode(), inObject)

    def fromStringProto(self, inString, proto):
        return (type(proto).__name__, inString)


@settings(max_examples=40, deadline=None)
@given(a=st.binary(max_size=20), b=st.binary(max_size=20), items=st.lists(st.binary(max_size=5), max_size=4))
def test_schema_custom_arguments_match_twisted(impl, a, b, items):
    arglist = [(b"a", Doubled()), (b"b", WithProto()), (b"c", tamp.ListOf(Doubled())),
               (b"d", WithProto(optional=True))]
    schema = make_schema(impl, arglist)
    assert [xamp._field(name, arg, impl.Schema)[2] for name, arg in arglist] == [METHOD, METHOD, LIST, METHOD]
    objects = {"a": a, "b": b, "c": items}
    encoded = schema.encode(objects, PROTO, b"1")
    assert encoded == twisted_encode(arglist, objects, PROTO, b"1")
    (box,) = tamp.parseString(encoded)
    assert schema.decode(box, PROTO) == tamp._stringsToObjects(box, arglist, PROTO)


@pytest.mark.parametrize("optional", [False, True])
def test_schema_method_argument_without_a_protocol_as_twisted(impl, optional):
    # Twisted calls toStringProto / fromStringProto with whatever proto it is given,
    # None included.
    arglist = [(b"x", WithProto(optional=optional)), (b"y", tamp.ListOf(Doubled()))]
    schema = make_schema(impl, arglist)
    objects = {"x": b"v", "y": [b"ab"]}
    expected = outcome(twisted_encode, arglist, objects, None, b"1")
    assert expected[0] == "ok"
    assert outcome(schema.encode, objects, None, b"1") == expected
    box = tamp.AmpBox({b"x": b"v", b"y": b"\x00\x04abab"})
    assert schema.decode(box, None) == tamp._stringsToObjects(box, arglist, None)


def test_schema_fields_and_kinds(impl):
    arglist = [
        (b"s", tamp.String()), (b"i", tamp.Integer()), (b"u", tamp.Unicode()), (b"b", tamp.Boolean()),
        (b"f", tamp.Float()), (b"d", tamp.Decimal(optional=True)), (b"l", tamp.ListOf(tamp.Integer())),
        (b"m", tamp.ListOf(tamp.Decimal())), (b"r", tamp.AmpList([(b"x", tamp.String())])),
    ]
    fields = [xamp._field(name, arg, impl.Schema) for name, arg in arglist]
    kinds = [STRING, INTEGER, UNICODE, BOOLEAN, FLOAT, METHOD, LIST, LIST, BOXES]
    assert [field[2] for field in fields] == kinds
    assert [field[3] for field in fields] == [False] * 5 + [True] + [False] * 3
    assert fields[6][4] == (INTEGER, arglist[6][1].elementType)
    assert fields[7][4] == (METHOD, arglist[7][1].elementType)
    assert isinstance(fields[8][4], impl.Schema)
    assert make_schema(impl, arglist) is not None


def test_schema_built_directly(impl):
    fields = [
        (b"n", "n", INTEGER, False, None),
        (b"t", "t", UNICODE, True, None),
        (b"l", "l", LIST, False, (BOOLEAN, tamp.Boolean())),
    ]
    schema = impl.Schema(fields, constants=[(b"_command", b"Cmd")], tag_key=b"_ask")
    expected = serialize({b"n": b"5", b"l": b"\x00\x04True", b"_command": b"Cmd", b"_ask": b"a"})
    assert schema.encode({"n": 5, "l": [True]}, None, b"a") == expected
    assert schema.encode({"n": 5, "l": [True], "t": None}, None, b"a") == expected
    untagged = serialize({b"n": b"5", b"l": b"", b"t": b"\xc3\xa9", b"_command": b"Cmd"})
    assert schema.encode({"n": 5, "l": [], "t": "\xe9"}, None) == untagged
    assert schema.decode({b"n": b"5", b"l": b""}, None) == {"n": 5, "t": None, "l": []}
    with pytest.raises(FieldTooLong) as too_long:  # the codec's default error
        impl.Schema([(b"s", "s", STRING, False, None)]).encode({"s": b"x" * 65536}, None)
    assert (too_long.value.isKey, too_long.value.isLocal, too_long.value.keyName) == (False, True, b"s")
    plain = impl.Schema([(b"s", "s", STRING, False, None)])
    assert plain.encode({"s": b"v"}, None) == serialize({b"s": b"v"})


def test_schema_encode_many_and_decode_many(impl):
    sub = [(b"a", tamp.Integer()), (b"b", tamp.String(optional=True))]
    schema = xamp._schema(sub, impl.Schema)
    items = [{"a": 1}, {"a": 2, "b": b"x"}, {"a": 3, "b": None}]
    encoded = schema.encode_many(items, PROTO)
    assert encoded == tamp.AmpList(sub).toStringProto(items, PROTO)
    expected = tamp.AmpList(sub).fromStringProto(encoded, PROTO)
    assert schema.decode_many(encoded + b"\x00\x01", PROTO) == expected
    assert schema.encode_many([], PROTO) == b""


def test_schema_amplist_key_too_long(impl):
    # Difference 2, inside an AmpList: Twisted's parseString raises AttributeError.
    arglist = [(b"rows", tamp.AmpList([(b"a", tamp.String())]))]
    schema = make_schema(impl, arglist)
    wire = serialize({b"a": b"1"}) + b"\x01\x00" + b"k" * 256
    with pytest.raises(AttributeError):
        tamp._stringsToObjects(tamp.AmpBox({b"rows": wire}), arglist, PROTO)
    with pytest.raises(TooLong) as ours:
        schema.decode({b"rows": wire}, PROTO)
    assert (ours.value.isKey, ours.value.isLocal) == (True, False)


FITS_ARGS = [(b"a", tamp.String()), (b"b-c", tamp.String(optional=True)), (b"from", tamp.String()),
             (b"d", tamp.Integer(optional=True))]


class FitsCommand(tamp.Command):
    arguments = FITS_ARGS


@settings(max_examples=150, deadline=None)
@given(
    names=st.sets(st.sampled_from(["a", "b_c", "From", "d", "from", "b-c", "e"])),
    none=st.sets(st.sampled_from(["b_c", "d"])),
)
def test_schema_fits(impl, names, none):
    schema = make_schema(impl, FITS_ARGS)
    objects = {name: (None if name in none else 1 if name == "d" else b"v") for name in names}
    python_names = {"a", "b_c", "From", "d"}
    required = {"a", "From"}
    expected = required <= names <= python_names
    assert schema.fits(objects) is expected
    try:
        FitsCommand.makeArguments(dict(objects), PROTO)
    except (tamp.InvalidSignature, KeyError):
        accepted = False
    else:
        accepted = True
    assert accepted is expected


def test_schema_fits_empty(impl):
    schema = make_schema(impl, [])
    assert schema.fits({})
    assert not schema.fits({"x": 1})
    assert schema.encode({}, PROTO, b"1") == serialize({b"_command": b"TheCommand", b"_ask": b"1"})


@pytest.mark.parametrize("optional", [False, True])
def test_schema_python_names_colliding_take_twisteds_path(impl, optional):
    # b"a-b" and b"a_b" are both "a_b" in Python: Twisted's first argument takes the
    # value out, so the second finds nothing. No Schema is made for such a list, so
    # txframe.amp converts it Twisted's way (tests/test_amp.py checks it end to end).
    arglist = [(b"a-b", tamp.String(optional=optional)), (b"a_b", tamp.String(optional=optional))]
    assert xamp._schema(arglist, impl.Schema, (tamp.ANSWER,), tag_key=tamp.ANSWER) is None
    assert xamp._schema(list(reversed(arglist)), impl.Schema) is None