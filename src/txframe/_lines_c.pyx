# cython: language_level=3, embedsignature=True
"""Line framing, compiled: the twin of ``_lines_py.py`` (read its docstring).

One malloc'd buffer with a read offset; each line is built once, straight from it, and
handed to the sink by the loop below. The loop never keeps a pointer or offset across
a callback: callbacks may feed more data (the buffer may move), clear it, pause, or
switch modes.

``delimiter`` and ``MAX_LENGTH`` are read at the start of a ``feed`` (on 3.12+ only if
something may have changed them) and kept for its lines while they are
:class:`Setting`\ s (assigning one on the instance marks the framer stale: the next
line uses it); any other kind is read again before every line (see ``_framer_c``).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp

from txframe._framer_c cimport Framer, as_bytes, clamp, longest, setting

import math

cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MAX
    int PY_VERSION_HEX

# Whether a LineOnlyReceiver's lines go to a loop in Python (_lines_loop) when a call
# has several: from 3.12 on, a call from C costs far more than one from Python code
# (measured with callgrind; on 3.11 the loop only pays from ~25 lines per call).
cdef bint PYTHON_LOOP = PY_VERSION_HEX >= 0x030C0000


cdef inline Py_ssize_t find(const char* buf, Py_ssize_t start, Py_ssize_t end,
                            const char* delim, Py_ssize_t dlen) noexcept nogil:
    """Offset of the first *delim* in buf[start:end], or -1 (buf[start:end] not empty)."""
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


# The thresholds last computed, for the MAX_LENGTH object and delimiter length they
# came from: a connection's framer is made again after each idle spell, and would
# otherwise compute them again every time.
cdef object LAST_LIMIT = None
cdef Py_ssize_t LAST_DLEN = -1, LAST_LINE_MAX = 0, LAST_PARTIAL_MIN = 0


cdef bytes checked_delimiter(object delimiter):
    if not isinstance(delimiter, bytes):
        raise TypeError(f"delimiter must be bytes, not {type(delimiter).__name__}")
    if not delimiter:
        raise ValueError("delimiter must not be empty")
    return <bytes>delimiter


@cython.final
cdef class LineFramer(Framer):
    """Split a byte stream into lines and hand them to a sink.

    ``line_only=True`` gives LineOnlyReceiver's rules (no raw mode, return values of
    ``lineReceived`` ignored, ``lineLengthExceeded`` given only the offending line and
    delivery going on after it); otherwise LineReceiver's.
    """

    cdef bytes _delim  # the sink's delimiter, as last read
    cdef object _limit  # and its MAX_LENGTH, from which these two come:
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

    cdef int _use_limit(self, object limit, Py_ssize_t dlen) except -1:
        global LAST_LIMIT, LAST_DLEN, LAST_LINE_MAX, LAST_PARTIAL_MIN
        if limit is not LAST_LIMIT or dlen != LAST_DLEN or limit is None:
            LAST_LINE_MAX, LAST_PARTIAL_MIN = thresholds(limit, dlen)
            LAST_LIMIT, LAST_DLEN = limit, dlen
        self._line_max, self._partial_min = LAST_LINE_MAX, LAST_PARTIAL_MIN
        self._limit = limit
        return 0

    cdef int _refresh(self, sink) except -1:
        """Read delimiter and MAX_LENGTH; keep them while both are Settings."""
        cdef bint cacheable = True
        cdef object watched = None
        values = self._recall(sink)
        if values is None:
            watched = self._start_read(sink)
            delim = setting(self, sink, "delimiter", &cacheable)
            limit = setting(self, sink, "MAX_LENGTH", &cacheable)
        else:
            delim, limit = values
        if delim is not self._delim or delim is None:
            self._use_delimiter(checked_delimiter(delim))
            self._limit = None  # the thresholds depend on its length too
        if limit is not self._limit or limit is None:
            self._use_limit(limit, PyBytes_GET_SIZE(self._delim))
        self._stale = not cacheable
        if values is None:
            self._end_read(watched, cacheable,
                           (delim, limit) if watched is not None and cacheable else None)
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
        if not self._class_unchanged(sink):
            self._stale = True  # a class may have changed since the last call
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
            if self._stale:
                self._refresh(sink)
            delim = self._delim
            dlen = PyBytes_GET_SIZE(delim)
            pos = self._find(start, delim)
            if pos < 0:
                if self._end - start >= self._partial_min:
                    return sink.lineLengthExceeded(self._take_all())
                self._scan = max(self._end - dlen + 1, start)
                return result
            if pos - start > self._line_max:
                if not line_only:
                    return sink.lineLengthExceeded(self._take_all())
                result = sink.lineLengthExceeded(self._cut(start, pos, dlen))
            else:
                line = self._cut(start, pos, dlen)
                if (line_only and PYTHON_LOOP and self._end - self._start >= dlen
                        and self._find(self._start, delim) >= 0):
                    # More lines are here: a loop in Python delivers them while they
                    # need nothing of this loop's (see _Lines), for less than calls from C.
                    self._hand_over(sink, line, transport)
                else:
                    why = sink.lineReceived(line)
                    if why is not None and not line_only and why:
                        return why
            if transport is not None and transport.disconnecting:
                return result if line_only else why
        return result

    cdef int _hand_over(self, sink, line, transport) except -1:
        """Deliver *line* and the lines after it from Python (see _Lines)."""
        cdef _Lines lines = _Lines.__new__(_Lines)
        lines._framer = self
        lines._first = line
        deliver_lines(sink, lines, transport)
        return 0

    cdef object _whole_line(self):
        """The next line if it needs nothing of the loop above (no settings to read,
        not too long, not paused); else None, and nothing has changed."""
        cdef bytes delim
        cdef Py_ssize_t pos, start = self._start
        if self._paused or self._stale or not self._line_mode:
            return None
        delim = self._delim
        if self._end - start < PyBytes_GET_SIZE(delim):  # (_data is NULL when empty)
            return None
        pos = self._find(start, delim)
        if pos < 0 or pos - start > self._line_max:
            return None
        return self._cut(start, pos, PyBytes_GET_SIZE(delim))

    cdef inline Py_ssize_t _find(self, Py_ssize_t start, bytes delim) noexcept:
        """Where the first *delim* at or after *start* begins, or -1 (what an earlier
        search covered is not searched again)."""
        return find(self._data, max(self._scan, start), self._end,
                    PyBytes_AS_STRING(delim), PyBytes_GET_SIZE(delim))

    cdef inline bytes _cut(self, Py_ssize_t start, Py_ssize_t pos, Py_ssize_t dlen):
        """The line in [start, pos), consumed with the delimiter after it."""
        line = PyBytes_FromStringAndSize(self._data + start, pos - start)
        self._start = self._scan = pos + dlen
        return line


@cython.final
cdef class _Lines:
    """A LineOnlyReceiver's lines for ``_lines_loop.deliver_lines``: the one found,
    then the next while they need nothing of the framer's loop (which takes over
    again when they end: for settings to read, a line too long, the end of the data,
    a pause). Python code calls lineReceived for well under half of what a call
    from C costs; this is most of a LineOnlyReceiver's work per line."""

    cdef LineFramer _framer
    cdef object _first

    def __iter__(self):
        return self

    def __next__(self):
        line = self._first
        if line is not None:
            self._first = None
            return line
        line = self._framer._whole_line()
        if line is None:
            raise StopIteration
        return line


def data_received(self, data):
    """Split *data* into lines and deliver them (the line protocols' dataReceived).

    The framer is made on demand and dropped when it holds nothing, so an idle
    connection carries none.
    """
    framer = self._framer
    if framer is None:
        fast = self._lineFast  # the common case, made here with one read (basic.py)
        if fast is not None:
            framer = LineFramer.__new__(LineFramer, fast)
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


from txframe._lines_loop import deliver_lines  # noqa: E402 - plain Python on purpose
