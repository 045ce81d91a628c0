# What every compiled framer shares (see _framer_c.pyx).

cdef extern from "Python.h":
    ctypedef struct TypeObject "PyTypeObject":
        unsigned long tp_flags
        unsigned int tp_version_tag
    unsigned long Py_TPFLAGS_VALID_VERSION_TAG
    TypeObject* Py_TYPE(object)


cdef class Setting:
    cdef readonly str name
    cdef str _store
    cdef _notify(self, obj)


cdef bint declared(TypeObject* tp, str name)
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
    cdef TypeObject* _type  # settings read from the sink are current while its
    cdef unsigned int _tag  # type and that type's version tag are these,
    cdef bint _stale  # and this is false
    cdef bint _pinned  # the instance set its own settings: never drop this framer
    cdef bint _paused
    cdef bint _busy

    cdef int _mark_current(self, object sink, bint cacheable) except -1
    cdef bytes _take_all(self)
    cdef int _own(self) except -1
    cdef int _append(self, const char* data, Py_ssize_t n) except -1
    cdef int _receive(self, bytes data) except -1
    cdef int _settle(self) except -1
    cdef int _replace(self, object data) except -1


cpdef bytes as_bytes(object data)


cdef inline bint current(Framer framer, object sink) noexcept:
    """Whether the settings *framer* read from *sink* are still valid."""
    cdef TypeObject* tp = Py_TYPE(sink)
    return (not framer._stale and tp == framer._type and tp.tp_version_tag == framer._tag
            and tp.tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)
