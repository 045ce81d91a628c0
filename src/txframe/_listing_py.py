"""FTP LIST lines in pure Python: the reference implementation.

The compiled twin is ``_listing_c.pyx``; both have one API and are tested against each
other and against Twisted. Import from :mod:`txframe.framing`, not from here.

A LIST line is what Twisted's ``DTP._formatOneListResponse`` makes of a directory
entry, byte for byte::

    -rw-r--r--   1 alice    staff              1234 Mar 05 14:07 notes.txt
    drwxr-xr-x   2 alice    staff              4096 Jan 01  1970 old

kind and permissions, hard links (``%4d``), owner and group (8 characters at most,
padded to 9), size (``%15d``), the modification time in UTC (hour and minute in the
current year, else the year) and the name, as bytes. The text before the name is
Latin-1. It imports nothing from Twisted: permissions are any object with a
``shorthand()`` method (``twisted.python.filepath.Permissions`` in practice).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun",
          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip


def current_year() -> int:
    """The year now, in UTC."""
    return time.gmtime().tm_year


def encode_name(name: Any) -> Any:
    """A name as sent: text as UTF-8, with the bytes of an undecodable file name
    (``os.listdir`` gives them as lone surrogates) restored; anything else as it is."""
    if isinstance(name, str):
        return name.encode("utf-8", "surrogateescape")
    return name


def format_rest(
    name: Any, size: Any, kind: str, shorthand: Any, hardlinks: Any, modified: Any,
    owner: Any, group: Any, now_year: int,
) -> bytes:
    """The line once the kind (``"d"`` or ``"-"``) and the permissions' shorthand are
    known (the compiled formatter's way back here after calling ``shorthand()``)."""
    owner = owner[:8]
    group = group[:8]
    mtime = time.gmtime(modified)
    if mtime.tm_year != now_year:
        date = "%s %02d %5d" % (MONTHS[mtime.tm_mon], mtime.tm_mday, mtime.tm_year)
    else:
        date = "%s %02d %02d:%02d" % (
            MONTHS[mtime.tm_mon], mtime.tm_mday, mtime.tm_hour, mtime.tm_min
        )
    text = "%s%s%4d %-9s %-9s %15d %12s " % (
        kind, shorthand, hardlinks, owner, group, size, date
    )
    line: bytes = text.encode("latin-1") + name
    return line


def format_line(
    name: Any, size: Any, directory: Any, permissions: Any, hardlinks: Any,
    modified: Any, owner: Any, group: Any, *, now_year: int,
) -> bytes:
    """One LIST line, without its CRLF, dated against *now_year*."""
    kind = directory and "d" or "-"
    shorthand = permissions.shorthand()
    return format_rest(name, size, kind, shorthand, hardlinks, modified, owner, group, now_year)


def entry_line(entry: Any, now_year: int) -> bytes:
    """The LIST line (no CRLF) of a ``(name, attrs)`` pair from ``IFTPShell.list``,
    unpacked and encoded in the order of Twisted's ``FTP.ftp_LIST``."""
    name, attrs = entry
    return format_line(encode_name(name), *attrs, now_year=now_year)


#: The shorthand of each (read, write, execute) triple.
_MODES = {
    (r, w, x): ("r" if r else "-") + ("w" if w else "-") + ("x" if x else "-")
    for r in (False, True)
    for w in (False, True)
    for x in (False, True)
}


class ListFormatter:
    """Formats LIST lines as Twisted's ``DTP._formatOneListResponse`` does.

    Permission objects of exactly *permissions_type* whose ``user``, ``group`` and
    ``other`` are exactly *rwx_type* with boolean ``read``, ``write`` and ``execute``
    (Twisted's ``filepath.Permissions`` and ``RWX``) are read instead of calling their
    ``shorthand()`` (which says the same, more slowly); any other object's
    ``shorthand()`` is called.
    """

    def __init__(self, permissions_type: Any = None, rwx_type: Any = None) -> None:
        self.permissions_type = permissions_type
        self.rwx_type = rwx_type

    def format_entry(
        self, name: Any, size: Any, directory: Any, permissions: Any, hardlinks: Any,
        modified: Any, owner: Any, group: Any,
    ) -> bytes:
        """One LIST line, without its CRLF: Twisted's ``_formatOneListResponse``, with
        the same exceptions for values it cannot format (raised in its order)."""
        kind = directory and "d" or "-"
        return format_rest(
            name, size, kind, self._shorthand(permissions), hardlinks, modified, owner,
            group, current_year(),
        )

    def format_lines(
        self, entries: Sequence[Any], start: int, limit: int
    ) -> tuple[bytes, int]:
        """LIST lines, each ending in CRLF, for ``entries[start:]``, ``(name, attrs)``
        pairs as an ``IFTPShell.list`` gives them (*attrs*: size, directory, permissions,
        hard links, modified, owner, group), names encoded by :func:`encode_name`.

        Stops after the line that reaches *limit* bytes. Returns the lines and the index
        of the next entry. An entry that cannot be formatted raises its exception, but
        only once the lines before it are returned: the call that starts at it raises.
        """
        now_year = current_year()
        shorthand_of = self._shorthand
        lines: list[bytes] = []
        size = 0
        index = start
        end = len(entries)
        while index < end and size < limit:
            try:
                name, attrs = entries[index]  # in the order of Twisted's ftp_LIST
                name = encode_name(name)
                if type(attrs) in (list, tuple) and len(attrs) == 7:
                    length, directory, permissions, links, modified, owner, group = attrs
                    kind = directory and "d" or "-"
                    line = format_rest(
                        name, length, kind, shorthand_of(permissions), links, modified,
                        owner, group, now_year,
                    )
                else:  # the call raises what Twisted's would
                    line = format_line(name, *attrs, now_year=now_year)
            except Exception:
                if lines:
                    break
                raise
            lines.append(line)
            lines.append(b"\r\n")
            size += len(line) + 2
            index += 1
        return b"".join(lines), index

    def _shorthand(self, permissions: Any) -> Any:
        """``permissions.shorthand()``, read from the object when its class is known."""
        if type(permissions) is self.permissions_type is not None:
            rwx = self.rwx_type
            user: Any = getattr(permissions, "user", None)
            group: Any = getattr(permissions, "group", None)
            other: Any = getattr(permissions, "other", None)
            if type(user) is rwx and type(group) is rwx and type(other) is rwx:
                try:
                    return (
                        _MODES[user.read, user.write, user.execute]
                        + _MODES[group.read, group.write, group.execute]
                        + _MODES[other.read, other.write, other.execute]
                    )
                except Exception:  # not booleans: as shorthand() says
                    pass
        return permissions.shorthand()
