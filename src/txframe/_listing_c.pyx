# cython: language_level=3, freethreading_compatible=True, embedsignature=True
"""FTP LIST lines, compiled: the twin of ``_listing_py.py`` (read its docstring).

Lines are written straight into one growing buffer, in C, for the values a shell gives
(bytes or text names, ``int`` sizes and link counts, ``float`` or ``int`` times,
``str`` owner and group within Latin-1, ``bool`` flags, permissions of the registered
classes). Anything else -- and every value that would raise -- goes through the pure
twin's code from the first value C did not take, so the result and the exceptions are
Twisted's. Dates are computed from the timestamp (the proleptic Gregorian calendar, as
``time.gmtime``), not by the C library: no locale, no static buffers, any platform.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_AsEncodedString, PyUnicode_DecodeLatin1
from libc.string cimport memcpy, memset

from txframe._listing_py import encode_name, entry_line, format_line, format_rest

cdef extern from "Python.h":
    bint PyLong_CheckExact(object)
    bint PyFloat_CheckExact(object)
    bint PyUnicode_CheckExact(object)
    bint PyBytes_CheckExact(object)
    bint PyTuple_CheckExact(object)
    bint PyList_CheckExact(object)
    long long PyLong_AsLongLongAndOverflow(object, int*) except? -1
    double PyFloat_AS_DOUBLE(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    void* PyUnicode_DATA(object)
    int PyUnicode_KIND(object)
    bint PyUnicode_IS_ASCII(object)
    int PyUnicode_1BYTE_KIND
    Py_ssize_t PySequence_Fast_GET_SIZE(object)
    PyObject* PySequence_Fast_GET_ITEM(object, Py_ssize_t)

cdef extern from *:
    """
    #include <math.h>
    #include <stdio.h>
    #include <time.h>

    /* The times C dates itself: those time.gmtime accepts on this platform (others
       go to the pure code, so that they raise as Twisted's do). On Windows its
       gmtime takes 0 to the end of year 3000; elsewhere, up to +-2**55 s (years up
       to ~1.1e9, well inside what it accepts). */
    #ifdef _WIN32
    #define TXF_TIME_MIN -1.0
    #define TXF_TIME_MAX 32535215999.0
    #else
    #define TXF_TIME_MIN -36028797018963968.0
    #define TXF_TIME_MAX 36028797018963968.0
    #endif

    static const char txf_months[13][4] = {"", "Jan", "Feb", "Mar", "Apr", "May",
        "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

    /* Days since 1970-01-01 -> year, month, day (H. Hinnant's civil_from_days). */
    static void txf_civil(long long z, long long *y, int *m, int *d) {
        long long era, yoe, doe, doy, mp;
        z += 719468;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = z - era * 146097;
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp = (5 * doy + 2) / 153;
        *d = (int)(doy - (153 * mp + 2) / 5 + 1);
        *m = (int)(mp < 10 ? mp + 3 : mp - 9);
        *y = yoe + era * 400 + (*m <= 2);
    }

    /* The 12-character (or wider, for years of 6+ digits) date column. */
    static int txf_date(char *out, long long t, long long now_year) {
        long long days = t / 86400, secs = t % 86400, year;
        int month, day;
        if (secs < 0) { secs += 86400; days -= 1; }
        txf_civil(days, &year, &month, &day);
        if (year != now_year)
            return sprintf(out, "%s %02d %5lld", txf_months[month], day, year);
        return sprintf(out, "%s %02d %02d:%02d", txf_months[month], day,
                       (int)(secs / 3600), (int)(secs % 3600 / 60));
    }

    static long long txf_current_year(void) {
        long long year;
        int month, day;
        long long t = (long long)time(NULL), days = t / 86400;
        if (t % 86400 < 0) days -= 1;
        txf_civil(days, &year, &month, &day);
        return year;
    }
    """
    double TXF_TIME_MIN
    double TXF_TIME_MAX
    double floor(double) nogil
    int txf_date(char* out, long long t, long long now_year) nogil
    long long txf_current_year() nogil
    int sprintf(char*, const char*, ...) nogil


cdef struct Out:
    char* data
    Py_ssize_t length
    Py_ssize_t capacity


cdef int reserve(Out* out, Py_ssize_t extra) except -1:
    """Make room for *extra* more bytes."""
    cdef Py_ssize_t want = out.length + extra
    cdef Py_ssize_t capacity = out.capacity or 256
    cdef char* data
    if want <= out.capacity:
        return 0
    while capacity < want:
        capacity *= 2
    data = <char*>PyMem_Realloc(out.data, capacity)
    if data == NULL:
        raise MemoryError()
    out.data = data
    out.capacity = capacity
    return 0


cdef int append(Out* out, const char* data, Py_ssize_t length) except -1:
    reserve(out, length)
    memcpy(out.data + out.length, data, length)
    out.length += length
    return 0


cdef int append_bytes(Out* out, object data) except -1:
    if not PyBytes_CheckExact(data):
        raise TypeError(f"a LIST line must be bytes, not {type(data).__name__}")
    return append(out, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef inline bint latin1(object text):
    """*text* is an exact str whose characters are one Latin-1 byte each."""
    return PyUnicode_CheckExact(text) and PyUnicode_KIND(text) == PyUnicode_1BYTE_KIND


cdef inline bint small_int(object value, long long* result):
    """*value* is an exact int that fits a long long (stored in *result*)."""
    cdef int overflow = 0
    if not PyLong_CheckExact(value):
        return False
    result[0] = PyLong_AsLongLongAndOverflow(value, &overflow)
    return overflow == 0


cdef bint timestamp(object value, long long* result):
    """*value* is a float or int time that C dates (floored as time.gmtime does)."""
    cdef double seconds
    if PyFloat_CheckExact(value):
        seconds = floor(PyFloat_AS_DOUBLE(value))
        if not (TXF_TIME_MIN < seconds < TXF_TIME_MAX):  # also NaN
            return False
        result[0] = <long long>seconds
        return True
    if small_int(value, result):
        return TXF_TIME_MIN < <double>result[0] < TXF_TIME_MAX
    return False


@cython.final
@cython.auto_pickle(False)
cdef class ListFormatter:
    """Formats LIST lines as Twisted's ``DTP._formatOneListResponse`` does.

    Permission objects of exactly *permissions_type* whose ``user``, ``group`` and
    ``other`` are exactly *rwx_type* with boolean ``read``, ``write`` and ``execute``
    (Twisted's ``filepath.Permissions`` and ``RWX``) are read instead of calling their
    ``shorthand()``; any other object's ``shorthand()`` is called.
    """

    cdef readonly object permissions_type
    cdef readonly object rwx_type

    def __init__(self, permissions_type=None, rwx_type=None):
        self.permissions_type = permissions_type
        self.rwx_type = rwx_type

    def format_entry(self, name, size, directory, permissions, hardlinks, modified,
                     owner, group):
        """One LIST line, without its CRLF: Twisted's ``_formatOneListResponse``, with
        the same exceptions for values it cannot format (raised in its order)."""
        cdef Out out
        out.data = NULL
        out.length = out.capacity = 0
        try:
            self.line(&out, name, size, directory, permissions, hardlinks, modified,
                      owner, group, txf_current_year())
            return PyBytes_FromStringAndSize(out.data, out.length)
        finally:
            PyMem_Free(out.data)

    def format_lines(self, entries, Py_ssize_t start, Py_ssize_t limit):
        """LIST lines, each ending in CRLF, for ``entries[start:]``, ``(name, attrs)``
        pairs as an ``IFTPShell.list`` gives them (*attrs*: size, directory, permissions,
        hard links, modified, owner, group), names encoded by ``encode_name``.

        Stops after the line that reaches *limit* bytes. Returns the lines and the index
        of the next entry. An entry that cannot be formatted raises its exception, but
        only once the lines before it are returned: the call that starts at it raises.
        """
        cdef Out out
        cdef Py_ssize_t index = start
        cdef Py_ssize_t end = len(entries)
        cdef long long now_year = txf_current_year()
        out.data = NULL
        out.length = out.capacity = 0
        try:
            while index < end and out.length < limit:
                try:
                    self.entry(&out, entries[index], now_year)
                except Exception:
                    if out.length:
                        break
                    raise
                append(&out, b"\r\n", 2)
                index += 1
            return PyBytes_FromStringAndSize(out.data, out.length), index
        finally:
            PyMem_Free(out.data)

    cdef int entry(self, Out* out, object entry, long long now_year) except -1:
        """Append the line of one ``(name, attrs)`` pair (no CRLF); on error, nothing."""
        cdef object name, attrs, encoded
        if PyTuple_CheckExact(entry) and PyTuple_GET_SIZE(entry) == 2:
            name = <object>PyTuple_GET_ITEM(entry, 0)
            attrs = <object>PyTuple_GET_ITEM(entry, 1)
            if (PyTuple_CheckExact(attrs) or PyList_CheckExact(attrs)) and (
                PySequence_Fast_GET_SIZE(attrs) == 7
            ):
                encoded = name
                if PyUnicode_CheckExact(name):
                    if PyUnicode_IS_ASCII(name):  # its bytes are its UTF-8
                        encoded = PyBytes_FromStringAndSize(
                            <const char*>PyUnicode_DATA(name), PyUnicode_GET_LENGTH(name)
                        )
                    else:
                        encoded = PyUnicode_AsEncodedString(name, "utf-8", "surrogateescape")
                return self.line(
                    out, encoded,
                    <object>PySequence_Fast_GET_ITEM(attrs, 0),
                    <object>PySequence_Fast_GET_ITEM(attrs, 1),
                    <object>PySequence_Fast_GET_ITEM(attrs, 2),
                    <object>PySequence_Fast_GET_ITEM(attrs, 3),
                    <object>PySequence_Fast_GET_ITEM(attrs, 4),
                    <object>PySequence_Fast_GET_ITEM(attrs, 5),
                    <object>PySequence_Fast_GET_ITEM(attrs, 6),
                    now_year,
                )
        return append_bytes(out, entry_line(entry, now_year))

    cdef int line(self, Out* out, object name, object size, object directory,
                  object permissions, object hardlinks, object modified, object owner,
                  object group, long long now_year) except -1:
        """Append one line (no CRLF): in C when every value is of a common type, else
        through the pure twin from the first value C did not take. All or nothing."""
        cdef char kind
        cdef object kind_text
        cdef char modes[9]
        cdef const char* shorthand_data = modes
        cdef Py_ssize_t shorthand_length = 9
        cdef object shorthand = None
        cdef long long links = 0, length = 0, when = 0
        cdef Py_ssize_t owner_length, group_length, name_length
        cdef char* p

        if directory is True:
            kind = b'd'
        elif directory is False or directory is None:
            kind = b'-'
        elif PyLong_CheckExact(directory):
            kind = b'd' if directory else b'-'
        else:
            return append_bytes(out, format_line(
                name, size, directory, permissions, hardlinks, modified, owner, group,
                now_year=now_year,
            ))

        kind_text = "d" if kind == b'd' else "-"
        if not self.read_modes(permissions, modes):
            shorthand = permissions.shorthand()
            if not latin1(shorthand):
                return append_bytes(out, format_rest(
                    name, size, kind_text, shorthand, hardlinks, modified, owner, group,
                    now_year,
                ))
            shorthand_data = <const char*>PyUnicode_DATA(shorthand)
            shorthand_length = PyUnicode_GET_LENGTH(shorthand)

        if not (
            PyBytes_CheckExact(name)
            and small_int(hardlinks, &links)
            and latin1(owner)
            and latin1(group)
            and small_int(size, &length)
            and timestamp(modified, &when)
        ):
            if shorthand is None:
                shorthand = PyUnicode_DecodeLatin1(modes, 9, NULL)
            return append_bytes(out, format_rest(
                name, size, kind_text, shorthand, hardlinks, modified, owner, group, now_year,
            ))

        owner_length = min(PyUnicode_GET_LENGTH(owner), 8)
        group_length = min(PyUnicode_GET_LENGTH(group), 8)
        name_length = PyBytes_GET_SIZE(name)
        # kind, modes, 3 numbers of at most 20 characters, owner, group, date, spaces
        reserve(out, 1 + shorthand_length + 128 + name_length)
        p = out.data + out.length
        p[0] = kind
        memcpy(p + 1, shorthand_data, shorthand_length)
        p += 1 + shorthand_length
        p += sprintf(p, "%4lld ", links)
        memset(p, b' ', 20)
        memcpy(p, PyUnicode_DATA(owner), owner_length)
        memcpy(p + 10, PyUnicode_DATA(group), group_length)
        p += 20
        p += sprintf(p, "%15lld ", length)
        p += txf_date(p, when, now_year)
        p[0] = b' '
        memcpy(p + 1, PyBytes_AS_STRING(name), name_length)
        out.length = p + 1 + name_length - out.data
        return 0

    cdef bint read_modes(self, object permissions, char* modes) except -1:
        """Fill *modes* from a registered permissions object; False for any other."""
        if self.permissions_type is None or type(permissions) is not self.permissions_type:
            return False
        return (
            self.read_rwx(getattr(permissions, "user", None), modes)
            and self.read_rwx(getattr(permissions, "group", None), modes + 3)
            and self.read_rwx(getattr(permissions, "other", None), modes + 6)
        )

    cdef inline bint read_rwx(self, object rwx, char* modes) except -1:
        if type(rwx) is not self.rwx_type:
            return False
        return (
            flag(getattr(rwx, "read", None), b'r', modes)
            and flag(getattr(rwx, "write", None), b'w', modes + 1)
            and flag(getattr(rwx, "execute", None), b'x', modes + 2)
        )


cdef inline bint flag(object value, char letter, char* mode) noexcept:
    if value is True:
        mode[0] = letter
        return True
    if value is False:
        mode[0] = b'-'
        return True
    return False


def current_year():
    """The year now, in UTC."""
    return txf_current_year()
