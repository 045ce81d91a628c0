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
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.string cimport memchr, memcmp

from txframe._framer_c cimport (
    Framer,
    Py_TYPE,
    current, Py_TPFLAGS_VALID_VERSION_TAG, Setting, TypeObject, as_bytes, clamp, declared,
    longest,
)

import math

cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MAX

cdef extern from *:
    """
    #ifdef Py_GIL_DISABLED
    #define TXFRAME_TYPE_CACHE 0
    #else
    #define TXFRAME_TYPE_CACHE 1
    #endif
    """
    bint TXFRAME_TYPE_CACHE  # the cache below assumes the GIL


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


cdef tuple thresholds(object limit, Py_ssize_t dlen):
    """(longest line allowed, shortest unterminated buffer that is too long).

    Mirrors Twisted's ``len(line) > MAX_LENGTH`` and ``len(buffer) >= MAX_LENGTH +
    len(delimiter)`` for any real number, infinities and NaN included.
    """
    if isinstance(limit, float) and limit == -math.inf:
        return -1, 0
    cdef Py_ssize_t line_max = longest(limit)  # PY_SSIZE_T_MAX for +inf and NaN
    if line_max == PY_SSIZE_T_MAX:
        return line_max, line_max
    partial = limit + dlen if isinstance(limit, int) else math.ceil(limit + dlen)
    return line_max, max(clamp(partial), 0)


cdef bytes checked_delimiter(object delimiter):
    if not isinstance(delimiter, bytes):
        raise TypeError(f"delimiter must be bytes, not {type(delimiter).__name__}")
    if not delimiter:
        raise ValueError("delimiter must not be empty")
    return <bytes>delimiter


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
            or getattr(cls, "_initialLineMode", 1) != 1
            or getattr(cls, "_initialPaused", False)):
        return NULL
    delim = cls.delimiter
    if not isinstance(delim, bytes) or not delim:
        return NULL  # the framer reports it, once the chunk is buffered
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
cdef class LineFramer(Framer):
    """Split a byte stream into lines and hand them to a sink.

    ``line_only=True`` gives LineOnlyReceiver's rules (no raw mode, return values of
    ``lineReceived`` ignored, ``lineLengthExceeded`` given only the offending line and
    delivery going on after it); otherwise LineReceiver's.
    """

    cdef bytes _delim  # the sink's delimiter, as last read
    cdef Py_ssize_t _line_max  # from MAX_LENGTH: a longer line is too long
    cdef Py_ssize_t _partial_min  # an unterminated buffer this long is too long
    cdef readonly bint line_only
    cdef bint _line_mode

    def __cinit__(self, bint line_only=False):
        self.line_only = line_only
        self._line_mode = True
        self._stale = True

    @property
    def line_mode(self):
        """1 in line mode, 0 in raw mode."""
        return 1 if self._line_mode else 0

    @line_mode.setter
    def line_mode(self, value):
        self._line_mode = bool(value)

    @property
    def idle(self):
        """True when the framer holds no state worth keeping."""
        return self._idle()

    cdef inline bint _idle(self) noexcept:
        return (not self._busy and self._line_mode and not self._paused
                and not self._pinned and self._start == self._end)

    # -- settings ---------------------------------------------------------------

    cdef int _use_delimiter(self, bytes delim) except -1:
        if self._delim is None or (delim is not self._delim and delim != self._delim):
            self._scan = self._start  # what was searched was searched for another one
        self._delim = delim
        return 0

    cdef int _refresh(self, sink) except -1:
        """Make _delim and the thresholds current with the sink."""
        cdef TypeEntry* entry = NULL if self._pinned else type_entry(sink)
        if entry != NULL:
            self._use_delimiter(<bytes>entry.delimiter)
            self._line_max = entry.line_max
            self._partial_min = entry.partial_min
            self._mark_current(sink, True)
            return 0
        cdef bytes delim = checked_delimiter(sink.delimiter)
        self._use_delimiter(delim)
        self._line_max, self._partial_min = thresholds(sink.MAX_LENGTH, len(delim))
        cdef TypeObject* tp = Py_TYPE(sink)
        self._mark_current(sink, declared(tp, "delimiter") and declared(tp, "MAX_LENGTH"))
        return 0

    # -- the dispatch loop ------------------------------------------------------

    def feed(self, sink, data):
        """Take *data* and deliver what it completes; return what dataReceived returns."""
        return self._feed(sink, data)

    cdef object _feed(self, sink, data):
        if type(data) is not bytes:
            data = as_bytes(data)
        transport = sink.transport
        if self._line_mode and transport is not None and transport.disconnecting:
            return None  # the connection is going away: disregard its lines
        self._receive(<bytes>data)
        if self._busy:  # re-entered from a callback: the running loop delivers it
            return None
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
        while not self._paused:
            start = self._start
            if start == self._end:
                return result
            if not self._line_mode:
                why = sink.rawDataReceived(self._take_all())
                if why is not None and why:
                    return why
                continue
            if not current(self, sink):
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
