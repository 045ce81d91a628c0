# The feed shared by the compiled string and box framers (see _strings_c.pyx).

from txframe._framer_c cimport Framer


cdef class StringFramer(Framer):
    cdef bint _broken  # the peer is broken: what arrives from now on is disregarded

    cdef int _deliver(self, sink) except -1
    cdef int _restart(self) except -1
