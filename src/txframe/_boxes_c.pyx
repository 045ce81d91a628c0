# cython: language_level=3, embedsignature=True
"""AMP boxes, compiled: the twin of ``_boxes_py.py`` (read its docstring for the
framer's sink, the encoder's errors and the Schema's rules)."""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Next, PyDict_SetItem
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.unicode cimport PyUnicode_AsUTF8String, PyUnicode_DecodeUTF8
from libc.stdio cimport snprintf
from libc.string cimport memcmp, memcpy

from txframe._framer_c cimport longest
from txframe._strings_c cimport StringFramer

from txframe._boxes_py import (
    BOOLEAN, BOXES, EMPTY_KEY, FLOAT, INTEGER, LIST, METHOD, PAIR_OVERHEAD as _OVERHEAD,
    STRING, UNICODE, FieldTooLong, _split_list, encode_box as encode_box_checked,
)

import struct

cdef extern from "Python.h":
    PyObject* PyDict_GetItemWithError(object, object) except? NULL
    bint PyDict_CheckExact(object)
    bint PyLong_CheckExact(object)
    bint PyFloat_CheckExact(object)
    bint PyUnicode_CheckExact(object)
    bint PyBytes_CheckExact(object)
    bint PyBytes_Check(object)
    long long PyLong_AsLongLongAndOverflow(object, int*) except? -1
    char* PyOS_double_to_string(double, char, int, int, int*) except NULL
    double PyFloat_AS_DOUBLE(object)
    int Py_DTSF_ADD_DOT_0
    object PyDict_New()

cdef enum:
    MAX_KEY = 0xFF
    MAX_VALUE = 0xFFFF
    KEY_CACHE = 32  # keys remembered by position in the box, to reuse their objects
    STACK_PAIRS = 32

cdef Py_ssize_t PAIR_OVERHEAD = _OVERHEAD
cdef bytes TRUE = b"True"
cdef bytes FALSE = b"False"
cdef tuple NO_ARGS = ()
_pack_length = struct.Struct(">H").pack


@cython.final
cdef class BoxFramer(StringFramer):
    """Split a stream of AMP boxes (BinaryBoxProtocol's framing)."""

    cdef object _box_type
    cdef bint _dict_type  # _box_type is dict or a subclass: made with its tp_new
    cdef object _box  # the box being received, with its complete pairs
    cdef Py_ssize_t _size  # and its size so far
    cdef Py_ssize_t _count  # and its pairs so far
    cdef list _keys  # the key last seen at each position of a box

    def __cinit__(self, box_type=dict):
        self._box_type = box_type
        self._dict_type = isinstance(box_type, type) and issubclass(box_type, dict)
        self._keys = [None] * KEY_CACHE

    cdef int _restart(self) except -1:
        self._box = None
        self._size = self._count = 0
        return 0

    cdef inline object _new_box(self):
        if self._dict_type:
            return (<PyTypeObject*>self._box_type).tp_new(self._box_type, <PyObject*>NO_ARGS, NULL)
        return self._box_type()

    cdef inline object _key(self, Py_ssize_t index, const char* data, Py_ssize_t n):
        """The key at *index* of a box: the object seen there last time if equal."""
        cdef object cached
        if index < KEY_CACHE:
            cached = self._keys[index]
            if (cached is not None and PyBytes_GET_SIZE(cached) == n
                    and memcmp(PyBytes_AS_STRING(cached), data, n) == 0):
                return cached
            cached = PyBytes_FromStringAndSize(data, n)
            self._keys[index] = cached
            return cached
        return PyBytes_FromStringAndSize(data, n)

    cdef int _deliver(self, sink) except -1:
        cdef Py_ssize_t max_key = longest(sink._MAX_KEY_LENGTH)
        cdef Py_ssize_t max_value = longest(sink._MAX_VALUE_LENGTH)
        cdef Py_ssize_t max_box = longest(sink.MAX_BOX_LENGTH)
        cdef const unsigned char* p
        cdef Py_ssize_t pos, end, key_start, key_length, value_start, value_length, size, count
        cdef object box
        while not self._paused and not self._broken:
            p = <const unsigned char*>self._data
            pos = self._start
            end = self._end
            box = self._box
            size = self._size
            count = self._count
            while True:  # the pairs of one box
                if end - pos < 2:
                    break
                key_length = p[pos] << 8 | p[pos + 1]
                if key_length == 0:  # the empty key: the box is complete
                    break
                if key_length > max_key:
                    return self._too_long(sink.lengthLimitExceeded, key_length)
                key_start = pos + 2
                if end - key_start - key_length < 2:
                    break
                value_length = p[key_start + key_length] << 8 | p[key_start + key_length + 1]
                if value_length > max_value:
                    return self._too_long(sink.lengthLimitExceeded, value_length)
                value_start = key_start + key_length + 2
                if end - value_start < value_length:
                    break
                size += 4 + key_length + value_length + PAIR_OVERHEAD
                if size > max_box:
                    return self._too_long(sink.boxLengthExceeded, size)
                if box is None:
                    box = self._new_box()
                key = self._key(count, <const char*>p + key_start, key_length)
                value = PyBytes_FromStringAndSize(<const char*>p + value_start, value_length)
                if self._dict_type:
                    PyDict_SetItem(box, key, value)
                else:
                    box[key] = value
                count += 1
                pos = value_start + value_length
            if end - pos < 2 or p[pos] or p[pos + 1]:  # wait for the rest of the box
                self._start = pos
                self._box = box
                self._size = size
                self._count = count
                return 0
            self._start = pos + 2
            self._box = None
            self._size = self._count = 0
            sink.boxReceiver.ampBoxReceived(self._new_box() if box is None else box)
        return 0

    cdef int _too_long(self, report, Py_ssize_t length) except -1:
        self.disregard()
        self._restart()
        report(length)
        return 0


class _Collector:
    """The sink ``decode_boxes`` feeds."""

    _MAX_KEY_LENGTH = MAX_KEY
    _MAX_VALUE_LENGTH = MAX_VALUE
    MAX_BOX_LENGTH = float("inf")

    def __init__(self, too_long):
        self.boxes = []
        self.boxReceiver = self
        self.too_long = too_long

    def ampBoxReceived(self, box):
        self.boxes.append(box)

    def lengthLimitExceeded(self, length):
        raise self.too_long(True, False, None, None)


def decode_boxes(data, box_type=dict, too_long=FieldTooLong):
    """The whole boxes in *data* (an incomplete last one is dropped, as Twisted's
    ``parseString`` drops it); a key over 255 bytes is ``too_long(True, False, None,
    None)``."""
    collector = _Collector(too_long)
    BoxFramer(box_type).feed(collector, data)
    return collector.boxes


# -- encoding ------------------------------------------------------------------------


cdef object as_field(object item, object key):
    """A key (*key* None) or value that is not ``bytes`` (or a subclass), as bytes:
    copied if bytes-like, else a TypeError (Twisted's message for ``str``)."""
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):
        if key is None:
            raise TypeError(f"Unicode key not allowed: {item!r}")
        raise TypeError(f"Unicode value for key {key!r} not allowed: {item!r}")
    what = "keys" if key is None else "values"
    raise TypeError(f"AMP box {what} must be bytes, not {type(item).__name__}")


cdef inline bint key_before(object a, object b) noexcept:
    """Whether the bytes *a* sort before the bytes *b*."""
    cdef Py_ssize_t na = PyBytes_GET_SIZE(a), nb = PyBytes_GET_SIZE(b)
    cdef int order = memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), na if na < nb else nb)
    return order < 0 or (order == 0 and na < nb)


cdef inline char* put(char* out, object field) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(field)
    out[0] = <char>(n >> 8)
    out[1] = <char>(n & 0xFF)
    memcpy(out + 2, PyBytes_AS_STRING(field), n)
    return out + 2 + n


cdef class _Pairs:
    """Keys and values to write, owned, with the order to write them in."""

    cdef PyObject** keys
    cdef PyObject** values
    cdef Py_ssize_t* order
    cdef Py_ssize_t count, capacity
    cdef PyObject* stack_keys[STACK_PAIRS]
    cdef PyObject* stack_values[STACK_PAIRS]
    cdef Py_ssize_t stack_order[STACK_PAIRS]

    def __cinit__(self, Py_ssize_t capacity):
        self.capacity = capacity
        if capacity <= STACK_PAIRS:
            self.keys = self.stack_keys
            self.values = self.stack_values
            self.order = self.stack_order
        else:
            self.keys = <PyObject**>PyMem_Malloc(capacity * sizeof(PyObject*))
            self.values = <PyObject**>PyMem_Malloc(capacity * sizeof(PyObject*))
            self.order = <Py_ssize_t*>PyMem_Malloc(capacity * sizeof(Py_ssize_t))
            if self.keys == NULL or self.values == NULL or self.order == NULL:
                raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.count):
            Py_DECREF(<object>self.keys[i])
            Py_DECREF(<object>self.values[i])
        if self.keys != self.stack_keys:
            PyMem_Free(self.keys)
            PyMem_Free(self.values)
            PyMem_Free(self.order)

    cdef inline void add(self, object key, object value) noexcept:
        Py_INCREF(key)
        Py_INCREF(value)
        self.keys[self.count] = <PyObject*>key
        self.values[self.count] = <PyObject*>value
        self.order[self.count] = self.count
        self.count += 1

    cdef void sort(self) noexcept:
        """Order by key (an insertion sort: boxes are small)."""
        cdef Py_ssize_t i, j, moving
        for i in range(1, self.count):
            moving = self.order[i]
            j = i
            while j > 0 and key_before(<object>self.keys[moving], <object>self.keys[self.order[j - 1]]):
                self.order[j] = self.order[j - 1]
                j -= 1
            self.order[j] = moving

    cdef bytes write(self, object too_long, bint check_keys):
        """The box, in order, after checking each pair as Twisted does: a ``str``
        value, then (if *check_keys*) the key's length, then the value's."""
        cdef Py_ssize_t i, k, total = 2, n
        cdef object key, value
        for i in range(self.count):
            k = self.order[i]
            key = <object>self.keys[k]
            value = <object>self.values[k]
            if check_keys:
                if isinstance(value, str):
                    as_field(value, key)
                n = PyBytes_GET_SIZE(key)
                if n == 0:
                    raise ValueError(EMPTY_KEY)
                if n > MAX_KEY:
                    raise too_long(True, True, key, None)
            if not PyBytes_Check(value):
                value = as_field(value, key)
                Py_DECREF(<object>self.values[k])
                Py_INCREF(value)
                self.values[k] = <PyObject*>value
            if PyBytes_GET_SIZE(value) > MAX_VALUE:
                raise too_long(False, True, value, key)
            total += 4 + PyBytes_GET_SIZE(key) + PyBytes_GET_SIZE(value)
        cdef bytes result = PyBytes_FromStringAndSize(NULL, total)
        cdef char* out = PyBytes_AS_STRING(result)
        for i in range(self.count):
            k = self.order[i]
            out = put(out, <object>self.keys[k])
            out = put(out, <object>self.values[k])
        out[0] = out[1] = 0
        return result


def encode_box(box, too_long=FieldTooLong):
    """The wire form of the mapping *box*: its items sorted by key, then the end.

    A key or value that is ``str`` is a TypeError (as in Twisted); an empty key is a
    ValueError; a key over 255 bytes or a value over 65,535 is
    ``too_long(isKey, True, value, keyName)``.
    """
    cdef Py_ssize_t position = 0
    cdef PyObject* key
    cdef PyObject* value
    cdef _Pairs pairs = _Pairs(len(box))
    cdef bint views = False
    items = box.items() if not isinstance(box, dict) else None
    try:
        if items is None:
            while PyDict_Next(box, &position, &key, &value):
                views |= isinstance(<object>key, memoryview)
                pairs.add(<object>key if PyBytes_Check(<object>key)
                          else as_field(<object>key, None), <object>value)
        else:
            for k, v in list(items):
                views |= isinstance(k, memoryview)
                pairs.add(k if PyBytes_Check(k) else as_field(k, None), v)
        if views and pairs.count > 1:  # sorting them fails in Twisted
            raise TypeError("memoryview keys cannot be sorted")
    except TypeError:
        # A key that is not bytes: which error, and its words, depend on sorting
        # (as in Twisted): the pure encoder says it as they do.
        return encode_box_checked(box, too_long)
    pairs.sort()
    return pairs.write(too_long, True)


# -- arguments -----------------------------------------------------------------------


cdef object integer_to_wire(object value):
    cdef int overflow = 0
    cdef long long n
    cdef char digits[24]
    cdef int length
    if PyLong_CheckExact(value):
        n = PyLong_AsLongLongAndOverflow(value, &overflow)
        if not overflow:
            length = snprintf(digits, sizeof(digits), "%lld", n)
            return PyBytes_FromStringAndSize(digits, length)
    return b"%d" % (value,)


cdef object integer_from_wire(object string):
    """``int(string)``, parsing plain short decimal strings here."""
    cdef const unsigned char* p
    cdef Py_ssize_t n, i = 0
    cdef long long value = 0
    cdef bint negative = False
    if PyBytes_CheckExact(string):
        n = PyBytes_GET_SIZE(string)
        p = <const unsigned char*>PyBytes_AS_STRING(string)
        if 0 < n <= 18:
            if p[0] == 0x2D:  # "-"
                negative = True
                i = 1
            if i < n:
                while i < n and 0x30 <= p[i] <= 0x39:
                    value = value * 10 + (p[i] - 0x30)
                    i += 1
                if i == n:
                    return -value if negative else value
    return int(string)


cdef object float_to_wire(object value):
    cdef char* text
    if not isinstance(value, float):
        raise ValueError(f"Bad float value {value!r}")
    if PyFloat_CheckExact(value):
        text = PyOS_double_to_string(PyFloat_AS_DOUBLE(value), 114, 0, Py_DTSF_ADD_DOT_0, NULL)
        try:
            return <bytes>text
        finally:
            PyMem_Free(text)
    return str(value).encode("ascii")


cdef object boolean_from_wire(object string):
    if string == TRUE:
        return True
    if string == FALSE:
        return False
    raise TypeError(f"Bad boolean value: {string!r}")


cdef object to_wire(int kind, object value, object detail, object proto, bint element=False):
    """*value* converted by a field (or a ListOf *element*) of *kind*."""
    if kind == STRING:
        return value
    if kind == INTEGER:
        return integer_to_wire(value)
    if kind == UNICODE:
        if PyUnicode_CheckExact(value):
            return PyUnicode_AsUTF8String(value)
        return value.encode("utf-8")
    if kind == BOOLEAN:
        return TRUE if value else FALSE
    if kind == FLOAT:
        return float_to_wire(value)
    if kind == METHOD:
        if element:
            return detail.toString(value)
        return detail.toStringProto(value, proto)
    if kind == LIST:
        return list_to_wire(detail, value)
    return (<Schema>detail).encode_many(value, proto)


cdef object from_wire(int kind, object string, object detail, object proto, bint element=False):
    if kind == STRING:
        return string
    if kind == INTEGER:
        return integer_from_wire(string)
    if kind == UNICODE:
        if PyBytes_CheckExact(string):
            return PyUnicode_DecodeUTF8(PyBytes_AS_STRING(string), PyBytes_GET_SIZE(string), NULL)
        return string.decode("utf-8")
    if kind == BOOLEAN:
        return boolean_from_wire(string)
    if kind == FLOAT:
        return float(string)
    if kind == METHOD:
        if element:
            return detail.fromString(string)
        return detail.fromStringProto(string, proto)
    if kind == LIST:
        item_kind, item_argument = detail
        return [from_wire(item_kind, item, item_argument, None, True)
                for item in _split_list(string)]
    return (<Schema>detail).decode_many(string, proto)


cdef bytes list_to_wire(tuple detail, object items):
    """ListOf's wire form: each element 2-byte-length-prefixed."""
    cdef int element_kind = detail[0]
    element = detail[1]
    parts = []
    for item in items:
        string = to_wire(element_kind, item, element, None, True)
        parts.append(_pack_length(len(string)))
        parts.append(string)
    return b"".join(parts)


cdef object _ABSENT = object()


@cython.final
cdef class Schema:
    """How a Command's arguments (or its response) go to and from the wire (see
    ``_boxes_py.Schema``)."""

    cdef readonly tuple fields
    cdef readonly tuple constants
    cdef readonly object tag_key
    cdef readonly object too_long
    cdef Py_ssize_t _count  # fields
    cdef tuple _wire, _names, _details
    cdef int* _kinds
    cdef bint* _optional
    cdef tuple _slot_keys  # every key to write, sorted,
    cdef tuple _slot_values  # and its field index (an int), constant value, or None (tag)

    def __cinit__(self, fields, constants=(), tag_key=None, too_long=FieldTooLong):
        self.fields = tuple(fields)
        self.constants = tuple(constants)
        self.tag_key = tag_key
        self.too_long = too_long
        self._count = len(self.fields)
        self._wire = tuple([f[0] for f in self.fields])
        self._names = tuple([f[1] for f in self.fields])
        self._details = tuple([f[4] for f in self.fields])
        self._kinds = <int*>PyMem_Malloc((self._count + 1) * sizeof(int))
        self._optional = <bint*>PyMem_Malloc((self._count + 1) * sizeof(bint))
        if self._kinds == NULL or self._optional == NULL:
            raise MemoryError()
        for i, field in enumerate(self.fields):
            self._kinds[i] = field[2]
            self._optional[i] = bool(field[3])
        slots = [(f[0], i) for i, f in enumerate(self.fields)]
        slots += [(key, value) for key, value in self.constants]
        if tag_key is not None:
            slots.append((tag_key, None))
        slots.sort(key=lambda slot: slot[0])
        self._slot_keys = tuple([key for key, _ in slots])
        self._slot_values = tuple([value for _, value in slots])

    def __dealloc__(self):
        PyMem_Free(self._kinds)
        PyMem_Free(self._optional)

    def fits(self, objects):
        """Whether the mapping *objects* has every required argument and no unknown
        one."""
        cdef Py_ssize_t i, found = 0
        for i in range(self._count):
            if self._names[i] in objects:
                found += 1
            elif not self._optional[i]:
                return False
        return found == len(objects)

    def encode(self, objects, proto, tag=None):
        """The box for *objects* (python name -> value), *tag* under the tag key (or
        no tag key, if None), as bytes."""
        return self.write(self.convert(objects, proto), tag)

    cpdef list convert(self, objects, proto):
        """The wire values for *objects*, converted in declared order (Twisted's
        ``makeArguments`` / ``makeResponse``): what ``write`` takes."""
        cdef Py_ssize_t i
        cdef PyObject* found
        cdef bint plain = PyDict_CheckExact(objects)
        values = [None] * self._count
        for i in range(self._count):
            name = self._names[i]
            if plain:
                found = PyDict_GetItemWithError(objects, name)
                if found == NULL:
                    if self._optional[i]:
                        values[i] = _ABSENT
                        continue
                    raise KeyError(name)
                value = <object>found
            elif self._optional[i]:
                value = objects.get(name)
            else:
                value = objects[name]
            if value is None and self._optional[i]:
                values[i] = _ABSENT
                continue
            values[i] = to_wire(self._kinds[i], value, self._details[i], proto)
        return values

    cpdef bytes write(self, list values, tag=None):
        """The box of converted *values* (``AmpBox.serialize``'s checks and order)."""
        cdef Py_ssize_t i
        cdef _Pairs pairs = _Pairs(len(self._slot_keys))
        for i in range(len(self._slot_keys)):
            slot = self._slot_values[i]
            if slot is None:
                if tag is None:
                    continue
                value = tag
            elif type(slot) is int:
                value = values[<Py_ssize_t>slot]
                if value is _ABSENT:
                    continue
            else:
                value = slot
            pairs.add(self._slot_keys[i], value)
        return pairs.write(self.too_long, False)

    def decode(self, box, proto):
        """The python objects for the box *box* (wire name -> bytes)."""
        cdef Py_ssize_t i
        cdef PyObject* found
        cdef bint plain = isinstance(box, dict)
        objects = PyDict_New()
        for i in range(self._count):
            wire = self._wire[i]
            if plain:
                found = PyDict_GetItemWithError(box, wire)
                string = None if found == NULL else <object>found
            else:
                string = box.get(wire)
            if string is None:
                if not self._optional[i]:
                    raise KeyError(wire)
                objects[self._names[i]] = None
                continue
            objects[self._names[i]] = from_wire(self._kinds[i], string, self._details[i], proto)
        return objects

    def encode_many(self, items, proto):
        """AmpList's wire form: one box per mapping."""
        return b"".join([self.encode(objects, proto) for objects in items])

    def decode_many(self, string, proto):
        return [self.decode(box, proto) for box in decode_boxes(string, dict, self.too_long)]
