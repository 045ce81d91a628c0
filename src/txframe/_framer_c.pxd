# What every compiled framer shares (see _framer_c.pyx).


cdef class Setting:
    cdef readonly str name
    cdef readonly object value  # the value of the class that holds this Setting
    cdef _notify(self, obj)


cdef object setting(Framer framer, object sink, str name, bint* cacheable)
cdef Py_ssize_t clamp(object n) except? -2
cdef Py_ssize_t longest(object limit) except? -2


cdef extern from *:
    """
    /* Whether CPython reports changes to classes (type watchers, 3.12+): before, the
       framers skip the bookkeeping below at compile time (see _framer_c.pyx). */
    #define TXF_WATCHERS (PY_VERSION_HEX >= 0x030C0000)
    """
    const bint TXF_WATCHERS


cdef class Framer:
    cdef char* _buf  # our buffer
    cdef Py_ssize_t _cap
    cdef bytes _chunk  # or, while one chunk is scanned in place, that chunk,
    cdef const char* _data  # and where the bytes are: _buf or the chunk's
    cdef Py_ssize_t _start  # first byte not yet delivered
    cdef Py_ssize_t _end  # one past the last byte received
    cdef Py_ssize_t _scan  # (line framer) no delimiter starts in [_start, _scan)
    cdef bint _stale  # read the settings again before the next frame
    cdef object _watched  # the sink's class, while the settings read are known current
    cdef unsigned long long _changes  # (class changes counted when they were read)
    cdef bint _unkept  # the settings last read could not be kept: read, do not watch
    cdef bint _pinned  # the instance set its own settings: never drop this framer
    cdef dict _mine  # and these are they (a copy of what its Settings stored)
    cdef bint _paused
    cdef bint _busy

    # Reading the settings (3.12+: only when something may have changed them):
    #     if not self._class_unchanged(sink): mark the settings stale;
    #     to read them: values = self._recall(sink), or if None:
    #         watched = self._start_read(sink); read them;
    #         self._end_read(watched, cacheable, values if watched is not None else None)
    # (Settings that cannot be kept are read before every frame: those reads skip
    # the watching, which could not help.)
    cdef inline bint _class_unchanged(self, object sink) noexcept:
        return TXF_WATCHERS and self._watched is type(sink) and self._no_change()

    cdef inline tuple _recall(self, object sink):
        return self._recalled(sink) if TXF_WATCHERS and not self._unkept else None

    cdef inline object _start_read(self, object sink):
        return self._watch(sink) if TXF_WATCHERS and not self._unkept else None

    cdef inline int _end_read(self, object watched, bint cacheable, tuple values) except -1:
        self._unkept = not cacheable
        return self._trust(watched, cacheable, values) if watched is not None else 0

    cdef bint _no_change(self) noexcept
    cdef tuple _recalled(self, object sink)
    cdef object _watch(self, object sink)
    cdef int _trust(self, object watched, bint cacheable, tuple values) except -1
    cdef bytes _take_all(self)
    cdef int _own(self) except -1
    cdef int _append(self, const char* data, Py_ssize_t n) except -1
    cdef int _receive(self, bytes data) except -1
    cdef int _settle(self) except -1
    cdef int _replace(self, object data) except -1


cpdef bytes as_bytes(object data)
