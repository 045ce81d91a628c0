"""AMP boxes in pure Python: the reference implementation. The compiled twin is
``_boxes_c.pyx``; import from :mod:`txframe.framing`. Nothing here imports Twisted.

A box is a mapping of byte keys (1 to 255 bytes) to byte values (0 to 65,535 bytes).
On the wire each key and each value is a string with a 2-byte big-endian length
prefix, keys sorted, and a zero-length key ends the box.

``BoxFramer`` splits a stream into boxes for a *sink* (a BinaryBoxProtocol):

- each box goes to ``sink.boxReceiver.ampBoxReceived(box)``, made with the framer's
  ``box_type``;
- a key longer than ``sink._MAX_KEY_LENGTH``, or a value longer than
  ``sink._MAX_VALUE_LENGTH``, goes to ``sink.lengthLimitExceeded(length)``; a box
  whose size passes ``sink.MAX_BOX_LENGTH`` goes to ``sink.boxLengthExceeded(size)``
  (its size: the bytes of its keys, values and prefixes, plus ``PAIR_OVERHEAD`` a
  pair, about what it takes in memory). Either way the stream is broken: what follows
  is disregarded, so memory stays bounded;
- the limits are read once per ``feed``; ``replace()`` makes new bytes the unparsed
  data at once (a protocol switch); nothing is delivered while ``paused``.

``encode_box`` writes a mapping, ``decode_boxes`` reads a string of whole boxes, and
``Schema`` converts a Command's arguments to and from the wire without building a
box in between (see its docstring).
"""

from __future__ import annotations

import struct
from functools import partial
from typing import Any, Callable

from ._strings_py import _Buffer

MAX_KEY_LENGTH = 0xFF
MAX_VALUE_LENGTH = 0xFFFF
PAIR_OVERHEAD = 64  # what a key/value pair costs beyond its bytes, for MAX_BOX_LENGTH

EMPTY_KEY = "AMP box keys must be 1 to 255 bytes long, not empty"

_pack_length = struct.Struct(">H").pack
_LENGTHS = [_pack_length(n) for n in range(1024)]  # the common prefixes, made once


class FieldTooLong(ValueError):
    """A key or value over its limit (the codec's default; AMP raises TooLong)."""

    def __init__(self, isKey: bool, isLocal: bool, value: Any, keyName: Any = None) -> None:
        super().__init__(isKey, isLocal, value, keyName)
        self.isKey = isKey
        self.isLocal = isLocal
        self.value = value
        self.keyName = keyName


def _prefix(n: int) -> bytes:
    return _LENGTHS[n] if n < 1024 else _pack_length(n)


def _as_field(item: Any, key: Any) -> bytes:
    """A key (*key* None) or value that is not exactly ``bytes``, as bytes: copied if
    bytes-like, else a TypeError (Twisted's message for ``str``)."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):
        if key is None:
            raise TypeError(f"Unicode key not allowed: {item!r}")
        raise TypeError(f"Unicode value for key {key!r} not allowed: {item!r}")
    what = "keys" if key is None else "values"
    raise TypeError(f"AMP box {what} must be bytes, not {type(item).__name__}")


def _put(out: list[bytes], key: bytes, value: Any, too_long: Callable[..., Exception]) -> None:
    """Append a key (already checked) and its value to *out*."""
    if type(value) is not bytes:
        value = _as_field(value, key)
    n = len(value)
    if n > MAX_VALUE_LENGTH:
        raise too_long(False, True, value, key)
    out += (_prefix(len(key)), key, _prefix(n), value)


def encode_box(box: Any, too_long: Callable[..., Exception] = FieldTooLong) -> bytes:
    """The wire form of the mapping *box*: its items sorted by key, then the end.

    Each item in key order is checked as Twisted checks it: a ``str`` key or value is
    a TypeError; an empty key is a ValueError; a key over 255 bytes, or then a value
    over 65,535, is ``too_long(isKey, True, value, keyName)``.
    """
    out: list[bytes] = []
    for key, value in sorted(box.items()):
        if type(key) is not bytes:
            key = _as_field(key, None)
        if type(value) is str:
            _as_field(value, key)
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            if not key:
                raise ValueError(EMPTY_KEY)
            raise too_long(True, True, key, None)
        _put(out, key, value, too_long)
    out.append(b"\x00\x00")
    return b"".join(out)


class BoxFramer(_Buffer):
    """Split a stream of AMP boxes (BinaryBoxProtocol's framing)."""

    __slots__ = ("_box", "_size", "_new_box")

    def __init__(self, box_type: Callable[[], Any] = dict) -> None:
        super().__init__()
        if isinstance(box_type, type) and issubclass(box_type, dict):
            # a dict type's __init__ has nothing to do for an empty box: skip it
            self._new_box: Callable[[], Any] = partial(dict.__new__, box_type)
        else:
            self._new_box = box_type
        self._box: Any = None  # the box being received, with its complete pairs
        self._size = 0  # and its bytes so far

    def _restart(self) -> None:
        self._box = None
        self._size = 0

    def _deliver(self, sink: Any) -> None:
        max_key = sink._MAX_KEY_LENGTH
        max_value = sink._MAX_VALUE_LENGTH
        max_box = sink.MAX_BOX_LENGTH
        while not self._paused and not self._broken:
            data = self._data
            pos = self._pos
            end = len(data)
            box = self._box
            size = self._size
            while True:  # the pairs of one box
                if end - pos < 2:
                    break
                key_end = pos + 2 + (data[pos] << 8 | data[pos + 1])
                if key_end == pos + 2:  # the empty key: the box is complete
                    break
                if key_end - pos - 2 > max_key:
                    return self._too_long(sink.lengthLimitExceeded, key_end - pos - 2)
                if end - key_end < 2:
                    break
                value_end = key_end + 2 + (data[key_end] << 8 | data[key_end + 1])
                if value_end - key_end - 2 > max_value:
                    return self._too_long(sink.lengthLimitExceeded, value_end - key_end - 2)
                if value_end > end:
                    break
                size += value_end - pos + PAIR_OVERHEAD
                if size > max_box:
                    return self._too_long(sink.boxLengthExceeded, size)
                if box is None:
                    box = self._new_box()
                if type(data) is bytes:
                    box[data[pos + 2 : key_end]] = data[key_end + 2 : value_end]
                else:
                    box[bytes(data[pos + 2 : key_end])] = bytes(data[key_end + 2 : value_end])
                pos = value_end
            if end - pos < 2 or data[pos] or data[pos + 1]:  # wait for the rest
                self._pos = pos
                self._box = box
                self._size = size
                return
            self._pos = pos + 2
            self._box = None
            self._size = 0
            sink.boxReceiver.ampBoxReceived(self._new_box() if box is None else box)

    def _too_long(self, report: Callable[[int], Any], length: int) -> None:
        self.disregard()
        self._restart()
        report(length)


class _Collector:
    """The sink ``decode_boxes`` feeds."""

    _MAX_KEY_LENGTH = MAX_KEY_LENGTH
    _MAX_VALUE_LENGTH = MAX_VALUE_LENGTH
    MAX_BOX_LENGTH = float("inf")

    def __init__(self, too_long: Callable[..., Exception]) -> None:
        self.boxes: list[Any] = []
        self.boxReceiver = self
        self.too_long = too_long

    def ampBoxReceived(self, box: Any) -> None:
        self.boxes.append(box)

    def lengthLimitExceeded(self, length: int) -> None:
        raise self.too_long(True, False, None, None)


def decode_boxes(
    data: bytes, box_type: Callable[[], Any] = dict, too_long: Callable[..., Exception] = FieldTooLong
) -> list[Any]:
    """The whole boxes in *data* (an incomplete last one is dropped, as Twisted's
    ``parseString`` drops it); a key over 255 bytes is ``too_long(True, False, None,
    None)``."""
    collector = _Collector(too_long)
    BoxFramer(box_type).feed(collector, data)
    return collector.boxes


# -- arguments -------------------------------------------------------------------------

# How a Schema field converts its value: the built-in AMP argument types, done here;
# METHOD calls the Argument's toStringProto / fromStringProto; LIST is ListOf (its
# element's kind, with METHOD meaning toString / fromString); BOXES is AmpList (a
# Schema per element).
STRING, INTEGER, UNICODE, BOOLEAN, FLOAT, METHOD, LIST, BOXES = range(8)

_ABSENT: Any = object()  # an optional argument left out


def _integer_to_wire(value: Any) -> bytes:
    return b"%d" % (value,)


def _unicode_to_wire(value: str) -> bytes:
    return value.encode("utf-8")


def _boolean_to_wire(value: Any) -> bytes:
    return b"True" if value else b"False"


def _float_to_wire(value: Any) -> bytes:
    if not isinstance(value, float):
        raise ValueError(f"Bad float value {value!r}")
    return str(value).encode("ascii")


def _boolean_from_wire(string: bytes) -> bool:
    if string == b"True":
        return True
    if string == b"False":
        return False
    raise TypeError(f"Bad boolean value: {string!r}")


def _unicode_from_wire(string: bytes) -> str:
    return string.decode("utf-8")


_TO_WIRE: dict[int, Any] = {
    STRING: None,
    INTEGER: _integer_to_wire,
    UNICODE: _unicode_to_wire,
    BOOLEAN: _boolean_to_wire,
    FLOAT: _float_to_wire,
}
_FROM_WIRE: dict[int, Any] = {
    STRING: None,
    INTEGER: int,
    UNICODE: _unicode_from_wire,
    BOOLEAN: _boolean_from_wire,
    FLOAT: float,
}


def _element_converters(kind: int, arg: Any) -> tuple[Any, Any]:
    if kind == METHOD:
        return arg.toString, arg.fromString
    return _TO_WIRE[kind], _FROM_WIRE[kind]


def _split_list(string: bytes) -> list[bytes]:
    """ListOf's elements: 2-byte-prefixed strings (an incomplete last one is dropped,
    as Twisted's Int16StringReceiver leaves it)."""
    items = []
    pos = 0
    end = len(string)
    while end - pos >= 2:
        stop = pos + 2 + (string[pos] << 8 | string[pos + 1])
        if stop > end:
            break
        items.append(string[pos + 2 : stop])
        pos = stop
    return items


class Schema:
    """How a Command's arguments (or its response) go to and from the wire.

    *fields* is a sequence of ``(wire name, python name, kind, optional, detail)``
    in declared order, where *detail* is the Argument (METHOD), ``(element kind,
    element Argument)`` (LIST) or a Schema (BOXES), else None. *constants* are
    ``(key, value)`` pairs written into every box (``_command``), and *tag_key* the
    key the per-call tag goes under (``_ask``, ``_answer``).

    Conversion follows Twisted's Argument rules exactly, in declared order, so the
    same error comes first; the bytes are written in key order as AmpBox.serialize
    writes them. The keys must be distinct, valid ones (the caller checks).
    """

    def __init__(
        self,
        fields: Any,
        constants: Any = (),
        tag_key: bytes | None = None,
        too_long: Callable[..., Exception] = FieldTooLong,
    ) -> None:
        self.fields = tuple(fields)
        self.too_long = too_long
        self.tag_key = tag_key
        self.constants = tuple(constants)
        # Every key to write, sorted: a field's index, or a constant's value, or
        # None for the tag.
        slots: list[tuple[bytes, Any]] = [(f[0], i) for i, f in enumerate(self.fields)]
        slots += [(key, value) for key, value in self.constants]
        if tag_key is not None:
            slots.append((tag_key, None))
        self._slots = sorted(slots, key=lambda slot: slot[0])
        self._convert = [self._converters(kind, detail) for _, _, kind, _, detail in self.fields]

    @staticmethod
    def _converters(kind: int, detail: Any) -> tuple[Any, Any, bool]:
        """(to wire, from wire, whether they take the protocol too)."""
        if kind == METHOD:
            return detail.toStringProto, detail.fromStringProto, True
        if kind == LIST:
            to_element, from_element = _element_converters(*detail)
            return _list_to_wire(to_element), _list_from_wire(from_element), False
        if kind == BOXES:
            return detail.encode_many, detail.decode_many, True
        return _TO_WIRE[kind], _FROM_WIRE[kind], False

    def fits(self, objects: Any) -> bool:
        """Whether the mapping *objects* has every required argument and no unknown
        one."""
        found = 0
        for field in self.fields:
            if field[1] in objects:
                found += 1
            elif not field[3]:
                return False
        return found == len(objects)

    def encode(self, objects: Any, proto: Any, tag: bytes | None = None) -> bytes:
        """The box for *objects* (python name -> value), *tag* under the tag key (or
        no tag key, if None), as bytes."""
        return self.write(self.convert(objects, proto), tag)

    def convert(self, objects: Any, proto: Any) -> list[Any]:
        """The wire values for *objects*, converted in declared order (Twisted's
        ``makeArguments`` / ``makeResponse``): what ``write`` takes."""
        values: list[Any] = []
        for field, (to_wire, _, with_proto) in zip(self.fields, self._convert):
            name = field[1]
            if field[3]:  # optional: absent or None is left out
                value = objects.get(name)
                if value is None:
                    values.append(_ABSENT)
                    continue
            else:
                value = objects[name]
            if to_wire is not None:
                value = to_wire(value, proto) if with_proto else to_wire(value)
            values.append(value)
        return values

    def write(self, values: list[Any], tag: bytes | None = None) -> bytes:
        """The box of converted *values* (``AmpBox.serialize``'s checks and order)."""
        out: list[bytes] = []
        for key, slot in self._slots:
            if type(slot) is int:
                value = values[slot]
                if value is _ABSENT:
                    continue
            elif slot is None:
                if tag is None:
                    continue
                value = tag
            else:
                value = slot
            _put(out, key, value, self.too_long)
        out.append(b"\x00\x00")
        return b"".join(out)

    def decode(self, box: Any, proto: Any) -> dict[str, Any]:
        """The python objects for the box *box* (wire name -> bytes)."""
        objects: dict[str, Any] = {}
        for field, (_, from_wire, with_proto) in zip(self.fields, self._convert):
            wire, name, _, optional, _ = field
            string = box.get(wire)
            if string is None:
                if not optional:
                    raise KeyError(wire)
                objects[name] = None
                continue
            if from_wire is not None:
                string = from_wire(string, proto) if with_proto else from_wire(string)
            objects[name] = string
        return objects

    def encode_many(self, items: Any, proto: Any) -> bytes:
        """AmpList's wire form: one box per mapping."""
        return b"".join([self.encode(objects, proto) for objects in items])

    def decode_many(self, string: bytes, proto: Any) -> list[dict[str, Any]]:
        return [self.decode(box, proto) for box in decode_boxes(string, dict, self.too_long)]


def _list_to_wire(to_element: Any) -> Callable[[Any], bytes]:
    def to_wire(items: Any) -> bytes:
        out: list[bytes] = []
        for item in items:
            string = item if to_element is None else to_element(item)
            out += (_pack_length(len(string)), string)
        return b"".join(out)

    return to_wire


def _list_from_wire(from_element: Any) -> Callable[[bytes], list[Any]]:
    def from_wire(string: bytes) -> list[Any]:
        items = _split_list(string)
        return items if from_element is None else [from_element(item) for item in items]

    return from_wire
