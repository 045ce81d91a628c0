# cython: language_level=3, freethreading_compatible=True, embedsignature=True
"""Line framing, compiled: the twin of ``_lines_py.py`` (read its docstring).

One malloc'd buffer with a read offset; lines are built once, straight from it, and
handed to the sink by the loop below, which re-reads the sink's ``delimiter``,
``MAX_LENGTH`` and ``transport`` after every callback exactly as the pure version does.
The loop never keeps a pointer or offset across a callback: callbacks may feed more
data (the buffer may move), clear it, pause, or switch modes.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.string cimport memchr, memcmp, memcpy, memmove

cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MAX

cdef Py_ssize_t MIN_CAPACITY = 256
cdef Py_ssize_t KEEP_CAPACITY = 65536  # an idle buffer bigger than this is given back


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


cdef inline bint longer_than(Py_ssize_t n, object limit) except -1:
    """``n > limit`` with Python's semantics (MAX_LENGTH may be any number)."""
    cdef Py_ssize_t c_limit
    if type(limit) is int:
        try:
            c_limit = limit
        except OverflowError:
            return limit < 0
        return n > c_limit
    return n > limit


cdef inline bint at_least(Py_ssize_t n, object limit, Py_ssize_t extra) except -1:
    """``n >= limit + extra`` with Python's semantics."""
    cdef Py_ssize_t c_limit
    if type(limit) is int:
        try:
            c_limit = limit
        except OverflowError:
            return limit < 0
        if c_limit > PY_SSIZE_T_MAX - extra:
            return False
        return n >= c_limit + extra
    return n >= limit + extra


cdef bytes checked_delimiter(object delimiter):
    if not isinstance(delimiter, bytes):
        raise TypeError(f"delimiter must be bytes, not {type(delimiter).__name__}")
    if not delimiter:
        raise ValueError("delimiter must not be empty")
    return <bytes>delimiter


@cython.final
cdef class LineFramer:
    """Split a byte stream into lines and hand them to a sink.

    ``line_only=True`` gives LineOnlyReceiver's rules (no raw mode, return values of
    ``lineReceived`` ignored, ``lineLengthExceeded`` given only the offending line and
    delivery going on after it); otherwise LineReceiver's.
    """

    cdef char* _buf
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _start  # first byte not yet delivered
    cdef Py_ssize_t _end  # one past the last byte received
    cdef Py_ssize_t _scan  # no delimiter starts in [_start, _scan)
    cdef bytes _delim  # the delimiter _scan is valid for
    cdef readonly bint line_only
    cdef bint _line_mode
    cdef bint _paused
    cdef bint _busy

    def __cinit__(self, bint line_only=False):
        self.line_only = line_only
        self._line_mode = True

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
        return (not self._busy and self._line_mode and not self._paused
                and self._start == self._end)

    def buffered(self):
        """Every byte received and not yet delivered."""
        return PyBytes_FromStringAndSize(self._buf + self._start, self._end - self._start)

    def clear(self):
        """Remove and return every byte received and not yet delivered."""
        return self._take_all()

    # -- buffer -----------------------------------------------------------------

    cdef bytes _take_all(self):
        cdef bytes data = PyBytes_FromStringAndSize(self._buf + self._start,
                                                    self._end - self._start)
        self._start = self._end = self._scan = 0
        return data

    cdef int _append(self, const char* data, Py_ssize_t n) except -1:
        cdef Py_ssize_t live, capacity
        cdef char* grown
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
                if n > PY_SSIZE_T_MAX - live:
                    raise MemoryError("line buffer too large")
                capacity = max(live + n, self._cap + (self._cap >> 1), MIN_CAPACITY)
                grown = <char*>PyMem_Realloc(self._buf, capacity)
                if grown == NULL:
                    raise MemoryError("line buffer too large")
                self._buf = grown
                self._cap = capacity
        memcpy(self._buf + self._end, data, n)
        self._end += n
        return 0

    cdef void _settle(self) noexcept:
        """Between calls: keep the buffer small and its contents at the front."""
        if self._start == self._end:
            self._start = self._end = self._scan = 0
            if self._cap > KEEP_CAPACITY:
                PyMem_Free(self._buf)
                self._buf = NULL
                self._cap = 0

    # -- the dispatch loop ------------------------------------------------------

    def feed(self, sink, data):
        """Take *data* and deliver what it completes; return what dataReceived returns."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data must be bytes, not {type(data).__name__}")
            data = bytes(data)
        if self._busy:  # re-entered from a callback: the running loop delivers it
            self._append(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            return None
        if self._line_mode:
            transport = sink.transport
            if transport is not None and transport.disconnecting:
                return None  # the connection is going away: disregard its lines
        self._append(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        self._busy = True
        try:
            return self._deliver(sink)
        finally:
            self._busy = False
            self._settle()

    cdef object _deliver(self, sink):
        cdef bint line_only = self.line_only
        cdef object result = None  # LineOnlyReceiver: the last lineLengthExceeded's
        cdef object why = None
        cdef object delimiter, transport, line, data
        cdef bytes delim
        cdef Py_ssize_t dlen, pos, start
        while not self._paused:
            if self._start == self._end:
                return result
            if not self._line_mode:
                data = self._take_all()
                why = sink.rawDataReceived(data)
                if why:
                    return why
                continue
            delimiter = sink.delimiter
            if delimiter is not self._delim:
                delim = checked_delimiter(delimiter)
                if self._delim is None or delim != self._delim:
                    self._scan = self._start
                self._delim = delim
            delim = self._delim
            dlen = PyBytes_GET_SIZE(delim)
            start = self._start
            pos = find(self._buf, max(self._scan, start), self._end,
                       PyBytes_AS_STRING(delim), dlen)
            if pos < 0:
                if at_least(self._end - start, sink.MAX_LENGTH, dlen):
                    return sink.lineLengthExceeded(self._take_all())
                self._scan = max(self._end - dlen + 1, start)
                return result
            if longer_than(pos - start, sink.MAX_LENGTH):
                if not line_only:
                    return sink.lineLengthExceeded(self._take_all())
                line = PyBytes_FromStringAndSize(self._buf + start, pos - start)
                self._start = self._scan = pos + dlen
                result = sink.lineLengthExceeded(line)
            else:
                line = PyBytes_FromStringAndSize(self._buf + start, pos - start)
                self._start = self._scan = pos + dlen
                why = sink.lineReceived(line)
                if why and not line_only:
                    return why
            transport = sink.transport
            if transport is not None and transport.disconnecting:
                return result if line_only else why
        return result
