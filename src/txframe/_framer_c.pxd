# What every compiled framer shares (see _framer_c.pyx).


cdef class Setting:
    cdef readonly str name
    cdef readonly object value  # the value of the class that holds this Setting
    cdef _notify(self, obj)


cdef object setting(Framer framer, object sink, str name, bint* cacheable)
cdef Py_ssize_t clamp(object n) except? -2
cdef Py_ssize_t longest(object limit) except? -2


cdef class Framer:
    cdef char* _buf  # our buffer
    cdef Py_ssize_t _cap
    cdef bytes _chunk  # or, while one chunk is scanned in place, that chunk,
    cdef const char* _data  # and where the bytes are: _buf or the chunk's
    cdef Py_ssize_t _start  # first byte not yet delivered
    cdef Py_ssize_t _end  # one past the last byte received
    cdef Py_ssize_t _scan  # (line framer) no delimiter starts in [_start, _scan)
    cdef bint _stale  # read the settings again before the next frame
    cdef bint _pinned  # the instance set its own settings: never drop this framer
    cdef dict _mine  # and these are they (a copy of what its Settings stored)
    cdef bint _paused
    cdef bint _busy

    cdef bytes _take_all(self)
    cdef int _own(self) except -1
    cdef int _append(self, const char* data, Py_ssize_t n) except -1
    cdef int _receive(self, bytes data) except -1
    cdef int _settle(self) except -1
    cdef int _replace(self, object data) except -1


cpdef bytes as_bytes(object data)
