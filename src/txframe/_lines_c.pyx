# cython: language_level=3, freethreading_compatible=True, embedsignature=True
"""Line framing, compiled: the twin of ``_lines_py.py`` (read its docstring).

One malloc'd buffer with a read offset; each line is built once, straight from it, and
handed to the sink by the loop below. The loop never keeps a pointer or offset across
a callback: callbacks may feed more data (the buffer may move), clear it, pause, or
switch modes.

Reading ``delimiter`` and ``MAX_LENGTH`` from the sink after every line would cost more
than the rest of the loop, so the sink's class may declare them with :class:`Setting`
descriptors: assigning one marks the framer stale, and a change of the class shows in
its type version tag. A sink without them (any other object) is simply re-read after
every line.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyObject, PyObject_GenericSetAttr
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.string cimport memchr, memcmp, memcpy, memmove

import math

cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MAX
    unsigned long Py_TPFLAGS_VALID_VERSION_TAG
    ctypedef struct TypeObject "PyTypeObject":
        unsigned long tp_flags
        unsigned int tp_version_tag
    TypeObject* Py_TYPE(object)
    PyObject* _PyType_Lookup(TypeObject*, object)

cdef extern from *:
    """
    #ifdef Py_GIL_DISABLED
    #define TXFRAME_TYPE_CACHE 0
    #else
    #define TXFRAME_TYPE_CACHE 1
    #endif
    """
    bint TXFRAME_TYPE_CACHE  # the cache below assumes the GIL

cdef Py_ssize_t MIN_CAPACITY = 256
cdef Py_ssize_t KEEP_CAPACITY = 65536  # a bigger buffer is freed once empty


cdef inline Py_ssize_t find(const char* buf, Py_ssize_t start, Py_ssize_t end,
                            const char* delim, Py_ssize_t dlen) noexcept nogil:
    """Offset of the first *delim* in buf[start:end], or -1."""
    cdef const char* p = buf + start
    cdef const char* last = buf + end - dlen  # the last place a match can begin
    cdef char first = delim[0]
    while p <= last:
        p = <const char*>memchr(p, first, last - p + 1)
        if p == NULL:
            return -1
        if dlen == 1 or memcmp(p + 1, delim + 1, dlen - 1) == 0:
            return p - buf
        p += 1
    return -1


cdef Py_ssize_t clamp(object n):
    if n >= PY_SSIZE_T_MAX:
        return PY_SSIZE_T_MAX
    if n < -1:
        return -1
    return n


cdef tuple thresholds(object limit, Py_ssize_t dlen):
    """(longest line allowed, shortest unterminated buffer that is too long).

    Mirrors Twisted's ``len(line) > MAX_LENGTH`` and ``len(buffer) >= MAX_LENGTH +
    len(delimiter)`` for any real number, infinities and NaN included.
    """
    if isinstance(limit, float):
        if limit != limit or limit == math.inf:  # NaN compares false: never too long
            return PY_SSIZE_T_MAX, PY_SSIZE_T_MAX
        if limit == -math.inf:
            return -1, 0
    if isinstance(limit, int):
        return clamp(limit), max(clamp(limit + dlen), 0)
    return clamp(math.floor(limit)), max(clamp(math.ceil(limit + dlen)), 0)


cdef bytes checked_delimiter(object delimiter):
    if not isinstance(delimiter, bytes):
        raise TypeError(f"delimiter must be bytes, not {type(delimiter).__name__}")
    if not delimiter:
        raise ValueError("delimiter must not be empty")
    return <bytes>delimiter


@cython.final
cdef class Setting:
    """A line protocol's ``delimiter`` or ``MAX_LENGTH``: a class attribute that tells
    the connection's framer when an instance changes it.

    The value lives in ``_txframe_<name>`` on the class or the instance.
    """

    cdef readonly str name
    cdef str _store

    def __cinit__(self, str name):
        self.name = name
        self._store = "_txframe_" + name

    def __get__(self, obj, objtype):
        if obj is None:
            return getattr(objtype, self._store)
        return getattr(obj, self._store)

    def __set__(self, obj, value):
        PyObject_GenericSetAttr(obj, self._store, value)
        self._notify(obj)

    def __delete__(self, obj):
        delattr(obj, self._store)
        self._notify(obj)

    cdef _notify(self, obj):
        """Tell the instance's framer, made now if need be, and keep it: a framer made
        later would take the class's values from the type cache."""
        framer = getattr(obj, "_framer", None)
        if framer is None and hasattr(obj, "_getFramer"):
            framer = obj._getFramer()
        if type(framer) is LineFramer:
            (<LineFramer>framer)._stale = True
            (<LineFramer>framer)._pinned = True


cdef inline bint declared(TypeObject* tp, str name):
    """Whether *name* on the type resolves to a Setting."""
    cdef PyObject* found = _PyType_Lookup(tp, name)
    return found != NULL and type(<object>found) is Setting


# What a line protocol class says, so that a connection can make its framer without
# reading a single attribute: a small direct-mapped cache, each entry valid while
# its type keeps the version tag it had (tags are never reused).
ctypedef struct TypeEntry:
    TypeObject* type
    unsigned int tag
    PyObject* delimiter  # a strong reference
    Py_ssize_t line_max
    Py_ssize_t partial_min
    bint line_only

cdef TypeEntry TYPE_CACHE[64]


cdef TypeEntry* type_entry(object sink):
    """The cache entry for the sink's class, or NULL if it cannot be cached: its
    framer is not the compiled one, its settings are not Settings, or it starts in
    raw mode. Only class-level values go in (instances override through Setting,
    which pins their framer, and pinned framers never use the cache)."""
    cdef TypeObject* tp = Py_TYPE(sink)
    cdef TypeEntry* entry = &TYPE_CACHE[(<size_t>tp >> 6) & 63]
    if not TXFRAME_TYPE_CACHE or not tp.tp_flags & Py_TPFLAGS_VALID_VERSION_TAG:
        return NULL
    if entry.type == tp and entry.tag == tp.tp_version_tag:
        return entry
    cls = type(sink)
    if (not declared(tp, "delimiter") or not declared(tp, "MAX_LENGTH")
            or getattr(cls, "_lineFramer", None) is not LineFramer
            or getattr(cls, "_initialLineMode", 1) != 1):
        return NULL
    delim = checked_delimiter(cls.delimiter)
    line_max, partial_min = thresholds(cls.MAX_LENGTH, len(delim))
    if not tp.tp_flags & Py_TPFLAGS_VALID_VERSION_TAG:  # the reads above changed it
        return NULL
    Py_XDECREF(entry.delimiter)
    Py_INCREF(delim)
    entry.delimiter = <PyObject*>delim
    entry.line_max = line_max
    entry.partial_min = partial_min
    entry.line_only = bool(getattr(cls, "_lineOnly", False))
    entry.type = tp
    entry.tag = tp.tp_version_tag
    return entry


@cython.final
@cython.freelist(32)
cdef class LineFramer:
    """Split a byte stream into lines and hand them to a sink.

    ``line_only=True`` gives LineOnlyReceiver's rules (no raw mode, return values of
    ``lineReceived`` ignored, ``lineLengthExceeded`` given only the offending line and
    delivery going on after it); otherwise LineReceiver's.
    """

    cdef char* _buf  # our buffer
    cdef Py_ssize_t _cap
    cdef bytes _chunk  # or, while one chunk is scanned in place, that chunk,
    cdef const char* _data  # and where the bytes are: _buf or the chunk's
    cdef Py_ssize_t _start  # first byte not yet delivered
    cdef Py_ssize_t _end  # one past the last byte received
    cdef Py_ssize_t _scan  # no delimiter starts in [_start, _scan)
    cdef bytes _delim  # the sink's delimiter, as last read
    cdef Py_ssize_t _line_max  # from MAX_LENGTH: a longer line is too long
    cdef Py_ssize_t _partial_min  # an unterminated buffer this long is too long
    cdef TypeObject* _type  # settings are current while the sink's type and
    cdef unsigned int _tag  # its version tag are these, and not _stale
    cdef bint _stale
    cdef bint _pinned  # the instance set its own delimiter / MAX_LENGTH: keep me
    cdef readonly bint line_only
    cdef bint _line_mode
    cdef bint _paused
    cdef bint _busy

    def __cinit__(self, bint line_only=False):
        self.line_only = line_only
        self._line_mode = True
        self._stale = True

    def __dealloc__(self):
        PyMem_Free(self._buf)

    # -- state the protocol exposes ---------------------------------------------

    @property
    def line_mode(self):
        """1 in line mode, 0 in raw mode."""
        return 1 if self._line_mode else 0

    @line_mode.setter
    def line_mode(self, value):
        self._line_mode = bool(value)

    @property
    def paused(self):
        """While true, nothing is delivered; data received is buffered."""
        return self._paused

    @paused.setter
    def paused(self, value):
        self._paused = bool(value)

    @property
    def idle(self):
        """True when the framer holds no state worth keeping."""
        return self._idle()

    cdef inline bint _idle(self) noexcept:
        return (not self._busy and self._line_mode and not self._paused
                and not self._pinned and self._start == self._end)

    def buffered(self):
        """Every byte received and not yet delivered."""
        return PyBytes_FromStringAndSize(self._data + self._start, self._end - self._start)

    def clear(self):
        """Remove and return every byte received and not yet delivered."""
        return self._take_all()

    # -- buffer -----------------------------------------------------------------

    cdef bytes _take_all(self):
        cdef bytes data = PyBytes_FromStringAndSize(self._data + self._start,
                                                    self._end - self._start)
        self._start = self._end = self._scan = 0
        self._chunk = None
        self._data = self._buf
        return data

    cdef int _own(self) except -1:
        """Copy what is left of a chunk scanned in place into our buffer."""
        cdef bytes chunk = self._chunk
        cdef Py_ssize_t start = self._start
        self._chunk = None
        self._data = self._buf
        self._end = self._start = 0
        self._scan -= start
        self._append(PyBytes_AS_STRING(chunk) + start, PyBytes_GET_SIZE(chunk) - start)
        return 0

    cdef int _append(self, const char* data, Py_ssize_t n) except -1:
        cdef Py_ssize_t live, capacity
        cdef char* grown
        if self._chunk is not None:
            self._own()
        if n == 0:
            return 0
        if n > self._cap - self._end:
            live = self._end - self._start
            if self._start:  # move the undelivered bytes to the front first
                memmove(self._buf, self._buf + self._start, live)
                self._scan -= self._start
                self._start = 0
                self._end = live
            if n > self._cap - live:
                if n > PY_SSIZE_T_MAX // 2 - live:
                    raise MemoryError("line buffer too large")
                capacity = max(live + n, self._cap + (self._cap >> 1), MIN_CAPACITY)
                grown = <char*>PyMem_Realloc(self._buf, capacity)
                if grown == NULL:
                    raise MemoryError("line buffer too large")
                self._buf = self._data = grown
                self._cap = capacity
        memcpy(self._buf + self._end, data, n)
        self._end += n
        return 0

    cdef int _settle(self) except -1:
        """Between calls: keep what is left, restart an empty buffer at 0, and give a
        big one back."""
        if self._start == self._end:
            self._chunk = None
            self._data = self._buf
            self._start = self._end = self._scan = 0
            if self._cap > KEEP_CAPACITY:
                PyMem_Free(self._buf)
                self._buf = self._data = NULL
                self._cap = 0
        elif self._chunk is not None:
            self._own()
        return 0

    # -- settings -----------------------------------------------------------------

    cdef int _use_delimiter(self, bytes delim) except -1:
        if self._delim is None or (delim is not self._delim and delim != self._delim):
            self._scan = self._start  # what was searched was searched for another one
        self._delim = delim
        return 0

    cdef int _refresh(self, sink) except -1:
        """Make _delim and the thresholds current with the sink."""
        cdef TypeObject* tp = Py_TYPE(sink)
        cdef TypeEntry* entry = NULL if self._pinned else type_entry(sink)
        if entry != NULL:
            self._use_delimiter(<bytes>entry.delimiter)
            self._line_max = entry.line_max
            self._partial_min = entry.partial_min
            self._type = tp
            self._tag = entry.tag
            self._stale = False
            return 0
        cdef bytes delim = checked_delimiter(sink.delimiter)
        self._use_delimiter(delim)
        self._line_max, self._partial_min = thresholds(sink.MAX_LENGTH, len(delim))
        # Cache only when both names are Settings and the type has a valid tag
        # (the lookups above gave it one if it can have one).
        self._type = tp
        self._tag = tp.tp_version_tag
        self._stale = not (tp.tp_flags & Py_TPFLAGS_VALID_VERSION_TAG
                           and declared(tp, "delimiter") and declared(tp, "MAX_LENGTH"))
        return 0

    # -- the dispatch loop ------------------------------------------------------

    def feed(self, sink, data):
        """Take *data* and deliver what it completes; return what dataReceived returns."""
        return self._feed(sink, data)

    cdef object _feed(self, sink, data):
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data must be bytes, not {type(data).__name__}")
            data = bytes(data)
        transport = sink.transport
        if self._line_mode and transport is not None and transport.disconnecting:
            return None  # the connection is going away: disregard its lines
        if self._busy:  # re-entered from a callback: the running loop delivers it
            self._append(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            return None
        if self._start == self._end:  # nothing buffered: scan the chunk in place
            self._chunk = data
            self._data = PyBytes_AS_STRING(data)
            self._start = self._scan = 0
            self._end = PyBytes_GET_SIZE(data)
        else:
            self._append(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        self._busy = True
        try:
            return self._deliver(sink, transport)
        finally:
            self._busy = False
            self._settle()

    cdef object _deliver(self, sink, transport):
        cdef bint line_only = self.line_only
        cdef object result = None  # LineOnlyReceiver: the last lineLengthExceeded's
        cdef object why = None
        cdef object line
        cdef bytes delim
        cdef Py_ssize_t dlen, pos, start
        cdef TypeObject* tp
        while not self._paused:
            start = self._start
            if start == self._end:
                return result
            if not self._line_mode:
                why = sink.rawDataReceived(self._take_all())
                if why is not None and why:
                    return why
                continue
            tp = Py_TYPE(sink)
            if (self._stale or tp != self._type or tp.tp_version_tag != self._tag
                    or not tp.tp_flags & Py_TPFLAGS_VALID_VERSION_TAG):
                self._refresh(sink)
            delim = self._delim
            dlen = PyBytes_GET_SIZE(delim)
            pos = find(self._data, max(self._scan, start), self._end,
                       PyBytes_AS_STRING(delim), dlen)
            if pos < 0:
                if self._end - start >= self._partial_min:
                    return sink.lineLengthExceeded(self._take_all())
                self._scan = max(self._end - dlen + 1, start)
                return result
            if pos - start > self._line_max:
                if not line_only:
                    return sink.lineLengthExceeded(self._take_all())
                line = PyBytes_FromStringAndSize(self._data + start, pos - start)
                self._start = self._scan = pos + dlen
                result = sink.lineLengthExceeded(line)
            else:
                line = PyBytes_FromStringAndSize(self._data + start, pos - start)
                self._start = self._scan = pos + dlen
                why = sink.lineReceived(line)
                if why is not None and not line_only and why:
                    return why
            if transport is not None and transport.disconnecting:
                return result if line_only else why
        return result


def data_received(self, data):
    """Split *data* into lines and deliver them (the line protocols' dataReceived).

    The framer is made on demand and dropped when it holds nothing, so an idle
    connection carries none.
    """
    cdef TypeEntry* entry
    framer = self._framer
    if framer is None:
        entry = type_entry(self)
        if entry != NULL:  # the common case: made without reading an attribute
            framer = LineFramer.__new__(LineFramer, entry.line_only)
            self._framer = framer
        else:
            framer = self._getFramer()
    if type(framer) is LineFramer:
        why = (<LineFramer>framer)._feed(self, data)
        if (<LineFramer>framer)._idle():
            self._framer = None
        return why
    why = framer.feed(self, data)
    if framer.idle:
        self._framer = None
    return why
