# cython: language_level=3, embedsignature=True
"""Length-prefixed and netstring framing, compiled: the twin of ``_strings_py.py``
(read its docstring for the sink each framer serves and the rules it follows)."""

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize

from txframe._framer_c cimport Framer, as_bytes, longest, setting

import struct

cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MAX

# structFormat values read with a fixed-width big-endian unsigned fast path.
cdef dict FAST_FORMATS = {
    "!I": 4, ">I": 4, "!H": 2, ">H": 2,
    "!B": 1, ">B": 1, "<B": 1, "=B": 1, "@B": 1, "B": 1,
}

TOO_LONG = "The received netstring is longer than the maximum %s specified by self.MAX_LENGTH"
MISSING_LENGTH = "The received netstring does not start with a length specification."
MISSING_COMMA = "The received netstring is not terminated by a comma."


@cython.auto_pickle(False)  # a framer mid-stream is not a value to pickle
cdef class StringFramer(Framer):
    """What the string (and box) framers share: the feed, around each one's _deliver."""

    def feed(self, sink, data):
        """Take *data* and deliver the strings it completes."""
        if type(data) is not bytes:
            data = as_bytes(data)
        if self._broken:
            return None
        self._receive(<bytes>data)
        if self._busy:  # re-entered from a callback: the running loop delivers it
            return None
        self._busy = True
        if not self._class_unchanged(sink):
            self._stale = True  # a class may have changed since the last call
        try:
            self._deliver(sink)
        finally:
            self._busy = False
            self._settle()
        return None

    cdef int _deliver(self, sink) except -1:
        raise NotImplementedError

    def disregard(self):
        """Drop what is buffered and everything received from now on."""
        self._broken = True
        self._take_all()

    def reset(self):
        """Start again, as for a new connection (settings are kept)."""
        self._broken = False
        self._take_all()
        self._restart()

    cdef int _restart(self) except -1:
        return 0


cdef class LimitedFramer(StringFramer):
    """A string framer with a MAX_LENGTH: what the prefix and netstring framers share."""

    cdef object _limit  # MAX_LENGTH, as last read
    cdef Py_ssize_t _longest  # the longest string allowed, from it

    def __cinit__(self):
        self._stale = True

    cdef int _refresh(self, sink) except -1:
        """Read every setting."""
        watched = self._start_read(sink)
        self._end_read(watched, self._read_limit(sink), None)
        return 0

    cdef bint _read_limit(self, sink) except -1:
        """Read MAX_LENGTH; read it again before every string unless it is a Setting
        (say whether it is)."""
        cdef bint cacheable = True
        limit = setting(self, sink, "MAX_LENGTH", &cacheable)
        if limit is not self._limit or limit is None:
            self._longest = longest(limit)
            self._limit = limit
        self._stale = not cacheable
        return cacheable


@cython.final
cdef class PrefixFramer(LimitedFramer):
    """Split a stream of length-prefixed strings (IntNStringReceiver's framing)."""

    cdef Py_ssize_t _prefix  # bytes in a length prefix
    cdef int _width  # 1, 2 or 4 for the big-endian unsigned fast paths; 0: struct
    cdef object _unpack  # struct's unpack, for other formats
    cdef unsigned long long _skip  # bytes of a too-long string still to drop
    cdef bint _replaced  # a callback replaced or emptied the buffer (recvd, clear...)

    cdef int _refresh(self, sink) except -1:
        """Read every setting (at the start of a feed: like Twisted, the prefix format
        is read once per dataReceived call, unless nothing can have changed it)."""
        cdef bint cacheable = True
        watched = self._start_read(sink)
        fmt = setting(self, sink, "structFormat", &cacheable)
        prefix = setting(self, sink, "prefixLength", &cacheable)
        self._width = FAST_FORMATS.get(fmt, 0) if type(fmt) is str else 0
        if self._width != prefix:
            self._width = 0
        self._unpack = None if self._width else struct.Struct(fmt).unpack
        self._prefix = prefix
        cacheable = self._read_limit(sink) and cacheable
        self._end_read(watched, cacheable, None)  # (format and prefix: for this feed)
        return 0

    cdef int _replace(self, object data) except -1:
        Framer._replace(self, data)
        self._replaced = True
        return 0

    cdef bytes _take_all(self):
        # clear(), reset() and disregard() too: the prefix _too_long would step over
        # is gone (and with it the offset it would step from).
        self._replaced = True
        return Framer._take_all(self)

    cdef int _restart(self) except -1:
        self._skip = 0
        return 0

    cdef inline unsigned long long _fast_length(self, Py_ssize_t start) noexcept:
        """The length in a 1, 2 or 4-byte big-endian prefix at *start*."""
        cdef const unsigned char* p = <const unsigned char*>self._data + start
        if self._width == 4:
            return (<unsigned long long>p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]
        if self._width == 2:
            return (p[0] << 8) | p[1]
        return p[0]

    cdef int _deliver(self, sink) except -1:
        cdef Py_ssize_t start, available, n
        cdef unsigned long long length
        cdef object declared_length
        if self._stale:
            self._refresh(sink)
        while not self._paused:
            if self._stale:
                self._read_limit(sink)
            start = self._start
            available = self._end - start
            if self._skip:  # what is left of a string that was too long
                n = <Py_ssize_t>min(self._skip, <unsigned long long>available)
                self._start = start + n
                self._skip -= n
                if self._skip:
                    return 0
                continue
            if available < self._prefix:
                return 0
            if self._width:
                length = self._fast_length(start)
                if self._longest < 0 or length > <unsigned long long>self._longest:
                    if self._too_long(sink, length):
                        continue
                    return 0
            else:
                (declared_length,) = self._unpack(  # as Twisted: exactly one value
                    PyBytes_FromStringAndSize(self._data + start, self._prefix))
                if declared_length < 0 or declared_length > self._limit:
                    if self._too_long(sink, declared_length):
                        continue
                    return 0
                length = declared_length
            if <unsigned long long>(available - self._prefix) < length:
                return 0
            string = PyBytes_FromStringAndSize(self._data + start + self._prefix, length)
            self._start = start + self._prefix + length
            sink.stringReceived(string)
        return 0

    cdef bint _too_long(self, sink, object length) except -1:
        """Report a declared length over MAX_LENGTH (or negative); say whether to go
        on. The prefix is still buffered during the call, as in Twisted, so ``recvd``
        starts with it; afterwards the string is parsed if MAX_LENGTH now allows it,
        and otherwise skipped as it arrives, never buffered."""
        self._replaced = False
        sink.lengthLimitExceeded(length)
        if self._replaced:
            return True
        self._read_limit(sink)
        if 0 <= length and not length > self._limit:
            return True
        transport = sink.transport
        if transport is not None and transport.disconnecting:
            self._broken = True  # as Twisted: stop, with the prefix still in recvd;
            return False  # and, unlike it, disregard anything that still arrives
        self._start += self._prefix
        self._skip = max(length, 0)
        return True


@cython.final
cdef class NetstringFramer(LimitedFramer):
    """Split a stream of netstrings (``<digits>:<payload>,``)."""

    cdef Py_ssize_t _expected  # payload length once the length is parsed, else -1

    def __cinit__(self):
        self._expected = -1

    cdef int _restart(self) except -1:
        self._expected = -1
        return 0

    cdef int _deliver(self, sink) except -1:
        cdef Py_ssize_t start, i, end, value
        cdef bint overflow
        while not self._paused and not self._broken:
            if self._stale:
                self._refresh(sink)
            start = self._start
            end = self._end
            if self._expected < 0:  # the length: 0 or digits without a leading 0, then ':'
                if start == end:
                    return 0
                # As Twisted: first the form (digits to the end of what we have, or
                # digits and ':'), then the size.
                i = start
                value = 0
                overflow = False
                while i < end and 0x30 <= <unsigned char>self._data[i] <= 0x39:
                    if i > start and self._data[start] == 0x30:
                        return self._error(sink, MISSING_LENGTH)
                    if value > (PY_SSIZE_T_MAX - 9) // 10:
                        overflow = True  # cannot be a real length
                    else:
                        value = value * 10 + (<unsigned char>self._data[i] - 0x30)
                    i += 1
                if i == start or (i < end and self._data[i] != 0x3A):
                    return self._error(sink, MISSING_LENGTH)
                if overflow or value > self._longest:
                    return self._error(sink, TOO_LONG % (sink.MAX_LENGTH,))
                if i == end:
                    return 0  # the length so far is valid: wait for the rest
                self._expected = value
                self._start = start = i + 1
            if end - start <= self._expected:
                return 0
            if self._data[start + self._expected] != 0x2C:
                return self._error(sink, MISSING_COMMA)
            string = PyBytes_FromStringAndSize(self._data + start, self._expected)
            self._start = start + self._expected + 1
            self._expected = -1
            sink.stringReceived(string)
        return 0

    cdef int _error(self, sink, str message) except -1:
        self._broken = True
        self._take_all()
        sink._netstringParseError(message)
        return 0


def string_data_received(self, data):
    """Deliver the strings *data* completes (the string protocols' dataReceived).

    An exception from a callback propagates unless the protocol's ``_callbackFailed``
    takes it (NetstringReceiver takes its parse errors, as Twisted's does).
    """
    framer = self._framer
    if framer is None:
        framer = self._getFramer()
    try:
        return framer.feed(self, data)
    except Exception as error:
        if not self._callbackFailed(error):
            raise
