# cython: language_level=3, embedsignature=True
"""What every compiled framer shares: one buffer with a read offset (or a chunk
scanned in place), and the settings it reads from the sink.

Reading a setting such as ``MAX_LENGTH`` through the attribute after every frame
would cost more than the rest of the loop. So a framer reads its sink's settings at
the start of every ``feed`` (as Python would find them: instance, class, bases) and
keeps them for the rest of that call when each one is a :class:`Setting` — a small
descriptor the protocol classes put in place of their plain values, which tells the
framer when an instance assigns its own value. Anything else (a property, a value
from a plain mixin, a class with its own ``__getattribute__``) is read again before
every frame, as Twisted reads it. A change made on a class, by whatever means, is
therefore seen from the next ``feed`` at the latest. A setting is read from the
class with ``getattr`` (whose Setting says it answered), or, under a metaclass,
found by walking the MRO.

From CPython 3.12 the next ``feed`` does not even read them unless something may
have changed: a framer watches its sink's class with the public type-watcher API
(``PyType_Watch``), which reports the changes to the class or a base (under the
conditions txf_watch checks; where they do not hold, the framer reads them at the
start of every ``feed``, as it always does before 3.12).

The module is not declared free-threading compatible: the framers and Settings
assume the GIL (a framer belongs to one connection, and Setting assignments and the
framer's loop must not run at the same time), so a free-threaded CPython re-enables
the GIL when it imports txframe's compiled modules.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyObject
from libc.string cimport memcpy, memmove

cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MAX

cdef extern from *:
    """
    /* What name is bound to in the first class of type t's MRO that binds it
       (borrowed, or NULL), as Python's attribute lookup finds it. A class's
       namespace is its tp_dict, except where that is NULL (static builtin types
       from 3.12 on): there PyType_GetDict, public from 3.12. */
    static PyObject* txf_resolve(PyObject* t, PyObject* name) {
        PyObject* mro = ((PyTypeObject*)t)->tp_mro;
        Py_ssize_t k, classes = mro == NULL ? 0 : PyTuple_GET_SIZE(mro);
        for (k = 0; k < classes; k++) {
            PyTypeObject* c = (PyTypeObject*)PyTuple_GET_ITEM(mro, k);
            PyObject* d = c->tp_dict;
    #if PY_VERSION_HEX >= 0x030C0000
            if (d == NULL) {
                d = PyType_GetDict(c);
                Py_XDECREF(d);  /* the type keeps it alive */
            }
    #endif
            if (d != NULL) {
                PyObject* v = PyDict_GetItemWithError(d, name);
                if (v != NULL || PyErr_Occurred()) return v;
            }
        }
        return NULL;
    }
    /* Whether attributes of t's instances are found by the generic rules: a heap
       type (a class statement or type()) without __getattribute__/__getattr__. */
    static int txf_generic_getattr(PyObject* t) {
        return PyType_HasFeature((PyTypeObject*)t, Py_TPFLAGS_HEAPTYPE)
            && ((PyTypeObject*)t)->tp_getattro == PyObject_GenericGetAttr;
    }
    """
    PyObject* txf_resolve(object t, object name) except? NULL
    bint txf_generic_getattr(object t)

cdef extern from *:
    """
    /* CPython 3.12+'s type watchers (public API): txf_changes counts the changes
       reported to a class a framer watches, or to any of its bases (a change to a
       base is reported to each subclass). txf_watch(t) watches t, and returns 1 if
       from now on every change to t or a base will be counted: CPython reports a
       change only to a class whose version tag is valid (consecutive changes with no
       lookup in between are reported once), so t must have one, which
       PyUnstable_Type_AssignVersionTag gives it, or fails to (3.13 gives a class at
       most about 1,000 in its life). And t's metaclass must be type: under one with
       its own mro(), a __bases__ assignment drops the tag and reports nothing (and
       a metaclass can gain an mro() at any time). Otherwise (or before 3.12, or when
       the interpreter has no watcher left to give) it returns 0, and the settings
       are read on every call. */
    static unsigned long long txf_changes = 0;
    #if PY_VERSION_HEX >= 0x030C0000
    static int txf_watcher = -1;  /* -1: not asked for yet; -2: none to be had */
    static int txf_on_change(PyObject* t) {
        (void)t;
        txf_changes++;
        return 0;
    }
    static int txf_watch(PyObject* t) {
        if (Py_TYPE(t) != &PyType_Type) return 0;
        if (txf_watcher == -1) {
            txf_watcher = PyType_AddWatcher(txf_on_change);
            if (txf_watcher < 0) {
                PyErr_Clear();
                txf_watcher = -2;
            }
        }
        if (txf_watcher < 0) return 0;
        if (PyType_Watch(txf_watcher, t) < 0) {
            PyErr_Clear();
            return 0;
        }
        return PyUnstable_Type_AssignVersionTag((PyTypeObject*)t);
    }
    static int txf_watching(void) { return txf_watcher >= 0; }
    #else
    static int txf_watch(PyObject* t) { (void)t; return 0; }
    static int txf_watching(void) { return 0; }
    #endif
    """
    unsigned long long txf_changes
    bint txf_watch(object t)
    bint txf_watching()

import math

cdef Py_ssize_t MIN_CAPACITY = 256
cdef Py_ssize_t KEEP_CAPACITY = 65536  # a bigger buffer is freed once empty
cdef Py_ssize_t READS = 0  # settings read by framers (tests check it does not grow per frame)


def reads():
    """How many times compiled framers have read a setting from their sinks (tests
    use it to check that settings are read per feed, not per frame)."""
    return READS


def watching():
    """Whether framers are told of changes to their sinks' classes (CPython 3.12+'s
    type watchers), and so read the settings again only after one; otherwise they
    read them at the start of every feed. (False until a framer first reads: the
    watcher is asked for then.)"""
    return txf_watching()


# The Setting whose __get__ last gave a class's value, and that class: after a
# getattr on a class, whether a Setting answered (a class's attributes are found as
# its instances' are, so long as its metaclass is type; the GIL makes this exact).
cdef PyObject* ANSWERED = NULL  # borrowed: only compared, right after the getattr
cdef PyObject* ANSWERED_FOR = NULL

# The settings last read and trusted (see Framer._recalled): for which class, by which
# kind of framer, at which count of class changes.
cdef object RECALL_CLASS = None
cdef object RECALL_KIND = None
cdef unsigned long long RECALL_CHANGES = 0
cdef tuple RECALL_VALUES = None


cdef object setting(Framer framer, object sink, str name, bint* cacheable):
    """The value of *sink*'s setting *name*, as ``getattr`` gives it. Clears
    *cacheable* unless the value may be kept until the framer is told otherwise:
    it comes from a Setting (whose instance assignments tell the framer)."""
    global READS, ANSWERED, ANSWERED_FOR
    cdef PyObject* found
    READS += 1
    tp = type(sink)
    if txf_generic_getattr(tp):
        if type(tp) is type:  # no metaclass: the class's attribute is the instances'
            ANSWERED = NULL
            value = getattr(tp, name, None)  # fast: CPython caches class lookups
            found = NULL
            if (ANSWERED != NULL and ANSWERED_FOR == <PyObject*>tp
                    and (<Setting>ANSWERED).value is value):
                found = ANSWERED
            ANSWERED = ANSWERED_FOR = NULL
        else:
            found = txf_resolve(tp, name)
        if found != NULL and type(<object>found) is Setting:
            if framer._mine is not None and name in framer._mine:
                return framer._mine[name]  # the instance's own (see Setting._notify)
            return (<Setting>found).value
    cacheable[0] = False
    return getattr(sink, name)


@cython.final
cdef class Setting:
    """A protocol setting (``delimiter``, ``MAX_LENGTH``, ...): a class attribute that
    holds the class's value and tells the connection's framer when an instance
    changes it.

    An instance's own value lives in its ``__dict__`` under the setting's name, as a
    plain attribute's would, so it is still found if the class attribute is later
    replaced. Assigning one pins the instance's framer, and only a pinned framer's
    instance is looked up, so reading does not make every instance grow a dict.
    """

    def __cinit__(self, str name, value):
        self.name = name
        self.value = value

    def __get__(self, obj, objtype):
        global ANSWERED, ANSWERED_FOR
        if obj is None:
            ANSWERED = <PyObject*>self
            ANSWERED_FOR = <PyObject*>objtype
            return self.value
        framer = getattr(obj, "_framer", None)
        if framer is not None and not (isinstance(framer, Framer)
                                       and not (<Framer>framer)._pinned):
            own = obj.__dict__.get(self.name, self)
            if own is not self:
                return own
        return self.value

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

    def __repr__(self):
        return f"<txframe Setting {self.name}={self.value!r}>"

    cdef _notify(self, obj):
        """Tell the instance's framer, made now if need be, and pin it: a framer made
        later would take the class's values."""
        framer = getattr(obj, "_framer", None)
        if framer is None and hasattr(obj, "_getFramer"):
            framer = obj._getFramer()
        if isinstance(framer, Framer):
            (<Framer>framer)._stale = True
            (<Framer>framer)._watched = None  # and every setting at the next feed
            (<Framer>framer)._pinned = True
            if (<Framer>framer)._mine is None:
                (<Framer>framer)._mine = {}
            own = obj.__dict__.get(self.name, self)
            if own is self:
                (<Framer>framer)._mine.pop(self.name, None)
            else:
                (<Framer>framer)._mine[self.name] = own


@cython.auto_pickle(False)  # a framer mid-stream is not a value to pickle
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

    cdef bint _no_change(self) noexcept:
        """Whether no change to a class has been counted since the settings were
        read (for _class_unchanged, in _framer_c.pxd)."""
        return self._changes == txf_changes

    cdef tuple _recalled(self, object sink):
        """The settings a framer of this kind last read for the sink's class, if no
        change can have been made to it since (and this framer has no values of its
        own): then trusted as if read. Else None. (A line framer is made again after
        each idle spell: for one line per call, reading would be most of the work.)"""
        if (RECALL_CLASS is type(sink) and RECALL_KIND is type(self)
                and RECALL_CHANGES == txf_changes and self._mine is None):
            self._watched = RECALL_CLASS
            self._changes = RECALL_CHANGES
            return RECALL_VALUES
        return None

    cdef object _watch(self, object sink):
        """Before reading the settings: count changes to the sink's class from now
        on, and return it (None if they cannot be counted)."""
        self._watched = None
        self._changes = txf_changes
        tp = type(sink)
        return tp if txf_watch(tp) else None

    cdef int _trust(self, object watched, bint cacheable, tuple values) except -1:
        """After reading the settings (*values*, for _recalled): trust them until a
        change is counted, if they can be kept (*cacheable*) and none was counted
        while they were read."""
        global RECALL_CLASS, RECALL_KIND, RECALL_CHANGES, RECALL_VALUES
        if cacheable and self._changes == txf_changes:
            self._watched = watched
            if values is not None and self._mine is None:
                RECALL_CLASS, RECALL_KIND = watched, type(self)
                RECALL_CHANGES, RECALL_VALUES = self._changes, values
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
