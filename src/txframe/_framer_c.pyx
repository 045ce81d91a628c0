# cython: language_level=3, freethreading_compatible=True, embedsignature=True
"""What every compiled framer shares: one buffer with a read offset (or a chunk
scanned in place), and settings read from the sink that stay valid until the sink
says otherwise.

Reading a setting such as ``MAX_LENGTH`` from the sink after every frame would cost
more than the rest of the loop, so the protocol classes may declare their settings
with :class:`Setting` descriptors: assigning one on an instance marks the framer
stale (and pins it), and a change of the class shows in its type version tag. A
sink without them is read again before every frame, as Twisted reads it.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyObject, PyObject_GenericSetAttr
from libc.string cimport memcpy, memmove

cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MAX
    PyObject* _PyType_Lookup(TypeObject*, object)

import math

cdef Py_ssize_t MIN_CAPACITY = 256
cdef Py_ssize_t KEEP_CAPACITY = 65536  # a bigger buffer is freed once empty


@cython.final
cdef class Setting:
    """A protocol setting (``delimiter``, ``MAX_LENGTH``, ...): a class attribute that
    tells the connection's framer when an instance changes it.

    The class's value lives in ``_txframe_<name>``; an instance's own value lives in
    its ``__dict__`` under the setting's name, as a plain attribute's would, so it is
    still found if the class attribute is later replaced. Assigning one pins the
    instance's framer, and only a pinned framer's instance is looked up, so reading
    does not make every instance grow a dict.
    """

    def __cinit__(self, str name):
        self.name = name
        self._store = "_txframe_" + name

    def __get__(self, obj, objtype):
        if obj is None:
            return getattr(objtype, self._store)
        framer = getattr(obj, "_framer", None)
        if framer is not None and not (isinstance(framer, Framer)
                                       and not (<Framer>framer)._pinned):
            own = obj.__dict__.get(self.name, self)
            if own is not self:
                return own
        return getattr(obj, self._store)

    def __set__(self, obj, value):
        obj.__dict__[self.name] = value
        self._notify(obj)

    def __delete__(self, obj):
        try:
            del obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(  # Python's words for a plain attribute
                f"'{type(obj).__name__}' object has no attribute '{self.name}'") from None
        self._notify(obj)

    cdef _notify(self, obj):
        """Tell the instance's framer, made now if need be, and pin it: a framer made
        later would take the class's values."""
        framer = getattr(obj, "_framer", None)
        if framer is None and hasattr(obj, "_getFramer"):
            framer = obj._getFramer()
        if isinstance(framer, Framer):
            (<Framer>framer)._stale = True
            (<Framer>framer)._pinned = True


cdef bint declared(TypeObject* tp, str name):
    """Whether *name* on the type resolves to a Setting."""
    cdef PyObject* found = _PyType_Lookup(tp, name)
    return found != NULL and type(<object>found) is Setting


cdef class Framer:
    """Base of the compiled framers: the buffer and the settings bookkeeping."""

    def __dealloc__(self):
        PyMem_Free(self._buf)

    @property
    def paused(self):
        """While true, nothing is delivered; data received is buffered."""
        return self._paused

    @paused.setter
    def paused(self, value):
        self._paused = bool(value)

    def buffered(self):
        """Every byte received and not yet delivered."""
        return PyBytes_FromStringAndSize(self._data + self._start, self._end - self._start)

    def clear(self):
        """Remove and return every byte received and not yet delivered."""
        return self._take_all()

    def replace(self, data):
        """Make *data* the bytes received and not yet delivered."""
        self._replace(data)

    # -- settings ---------------------------------------------------------------

    cdef int _mark_current(self, object sink, bint cacheable) except -1:
        """After reading the settings: keep them while the sink's type is unchanged,
        if they are Settings (*cacheable*) and the type has a version tag."""
        cdef TypeObject* tp = Py_TYPE(sink)
        self._type = tp
        self._tag = tp.tp_version_tag
        self._stale = not (cacheable and tp.tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)
        return 0

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
                    raise MemoryError("framer buffer too large")
                capacity = max(live + n, self._cap + (self._cap >> 1), MIN_CAPACITY)
                grown = <char*>PyMem_Realloc(self._buf, capacity)
                if grown == NULL:
                    raise MemoryError("framer buffer too large")
                self._buf = self._data = grown
                self._cap = capacity
        memcpy(self._buf + self._end, data, n)
        self._end += n
        return 0

    cdef int _receive(self, bytes data) except -1:
        """Take a chunk for the running loop: in place if nothing is buffered."""
        if self._start == self._end and not self._busy:
            self._chunk = data
            self._data = PyBytes_AS_STRING(data)
            self._start = self._scan = 0
            self._end = PyBytes_GET_SIZE(data)
        else:
            self._append(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
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

    cdef int _replace(self, object data) except -1:
        if not data:  # Twisted's AMP assigns "" here
            self._take_all()
            return 0
        data = as_bytes(data)
        self._take_all()
        self._append(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        return 0


cdef Py_ssize_t clamp(object n) except? -2:
    """*n* (an int) clamped to [-1, PY_SSIZE_T_MAX]."""
    if n >= PY_SSIZE_T_MAX:
        return PY_SSIZE_T_MAX
    if n < -1:
        return -1
    return n


cdef Py_ssize_t longest(object limit) except? -2:
    """The longest length allowed by ``length > limit`` (Twisted's test), for any
    real *limit*: -1 if none is, PY_SSIZE_T_MAX if all are."""
    if isinstance(limit, float):
        if limit != limit or limit == math.inf:  # NaN compares false: all allowed
            return PY_SSIZE_T_MAX
        if limit == -math.inf:
            return -1
    if isinstance(limit, int):
        return clamp(limit)
    return clamp(math.floor(limit))


cpdef bytes as_bytes(object data):
    """*data* as ``bytes``, or a clear ``TypeError``."""
    if type(data) is bytes:
        return <bytes>data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"data must be bytes, not {type(data).__name__}")
