"""Postfix's map protocols, sans I/O: parse a request, format a reply.

tcp_table(5) and socketmap_table(5) live here once; the Twisted protocols in
:mod:`txframe.postfix` and the asyncio servers of ``txframe serve-map`` both call
them, over txframe's line and netstring framers. Nothing here does I/O or imports
Twisted.

tcp_table: a request is a line ``get SPACE key`` (or ``put SPACE key SPACE value``),
the key %XX-encoded; a reply is one line ``200 SPACE value`` (found; the value
%XX-encoded), ``500 SPACE text`` (not found) or ``400 SPACE text`` (try again), at most
4,096 bytes with its newline.

socketmap: a request is a netstring ``name SPACE key``; a reply a netstring ``OK SPACE
data``, ``NOTFOUND SPACE``, ``TEMP SPACE reason``, ``TIMEOUT SPACE reason`` or ``PERM
SPACE reason``, at most 100,000 bytes.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

#: tcp_table's reply limit, newline included (tcp_table(5)).
TCP_REPLY_LIMIT = 4096
#: socketmap's limits, Postfix's defaults (socketmap_table(5)).
SOCKETMAP_REPLY_LIMIT = 100_000
SOCKETMAP_QUERY_LIMIT = 10_000

FOUND, NOT_FOUND, TRY_AGAIN = 200, 500, 400
# Reply text sent as it is: printable ASCII and space, no "%" (Postfix reads it back
# unchanged); the longest that fits, and the longest that fits however it is encoded.
_PLAIN_TEXT = re.compile(rb"[ !-$&-~]*")
_TEXT_LIMIT = TCP_REPLY_LIMIT - len(b"400 \n")
_REASON_LIMIT = _TEXT_LIMIT // 3

# What Postfix's hex_quote() leaves alone: printable ASCII but % and space.
_PLAIN = frozenset(range(0x21, 0x7F)) - {0x25}
_QUOTED = [bytes([n]) if n in _PLAIN else b"%%%02X" % n for n in range(256)]
_NEEDS_QUOTING = re.compile(rb"[^!-$&-~]")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})|%%")
# "%" as an int: ``37 in data`` is a plain byte search, where ``b"%" in data`` first
# tries the bytes as an int and raises inside (about 10x slower on CPython 3.11).
_PERCENT = 0x25


# What both servers answer (Twisted's words where Twisted has them).
UNKNOWN_COMMAND = b"unknown command"
PUT_ARITY = b"Command 'put' takes 2 parameters."
PUT_NOT_IMPLEMENTED = b"put is not implemented yet."  # a 500: tcp_table(5) rejects put
REQUEST_TOO_LONG = b"request line too long"


class MalformedRequest(ValueError):
    """A request that cannot be answered as asked (the reply says why)."""


def quote(data: str | bytes | bytearray | memoryview) -> bytes:
    """*data* (bytes, or text as UTF-8) %XX-encoded as Postfix encodes map keys and
    values: every byte but printable ASCII, and ``%`` and space, becomes ``%XX``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = bytes(data)
    if not _NEEDS_QUOTING.search(data):
        return data
    return b"".join([_QUOTED[n] for n in data])


def unquote(data: str | bytes | bytearray | memoryview) -> bytes:
    """Undo :func:`quote` (either hex case; ``%%`` is read as ``%``, leniently).

    :raises MalformedRequest: for a ``%`` not followed by two hex digits or ``%``.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = bytes(data)
    if _PERCENT not in data:
        return data
    out = []
    pos = 0
    for match in _ESCAPE.finditer(data):
        text = data[pos : match.start()]
        if _PERCENT in text:
            raise MalformedRequest("malformed hex escape")
        out.append(text)
        digits = match.group(1)
        out.append(b"%" if digits is None else bytes([int(digits, 16)]))
        pos = match.end()
    rest = data[pos:]
    if _PERCENT in rest:
        raise MalformedRequest("malformed hex escape")
    out.append(rest)
    return b"".join(out)


# -- tcp_table ---------------------------------------------------------------------------


class TcpRequest(NamedTuple):
    """A parsed tcp_table request: ``command`` (``b"get"``, ``b"put"``, ...) and the
    rest of the line split into (still %XX-encoded) parameters."""

    command: bytes
    params: tuple[bytes, ...]


def parse_tcp_request(line: bytes) -> TcpRequest:
    """Split a request line (without its newline; a trailing ``\\r`` is dropped).

    ``get SPACE`` with nothing after it is Postfix's request for the empty key: its one
    parameter is ``b""``.
    """
    line = line.rstrip(b"\r")
    words = line.split()
    if not words:
        return TcpRequest(b"", ())
    if len(words) == 1 and len(line) > len(words[0]) and line.startswith(words[0]):
        return TcpRequest(words[0], (b"",))
    return TcpRequest(words[0], tuple(words[1:]))


def tcp_key(request: TcpRequest) -> bytes:
    """The decoded key of a ``get``.

    :raises MalformedRequest: without exactly one key, or with a bad escape in it.
    """
    if len(request.params) != 1:
        raise MalformedRequest("Command 'get' takes 1 parameters.")
    return unquote(request.params[0])


def tcp_reply(code: int, text: Any = b"") -> bytes:
    """One reply line, newline included, for a status *code* and a human-readable
    *text* (bytes, or text as UTF-8): sent as it is when tcp_table allows that
    (printable ASCII and space, no ``%``), as Twisted sends its messages, else
    %XX-encoded; cut to fit Postfix's reply limit either way."""
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    if _PLAIN_TEXT.fullmatch(text):
        return b"%d %b\n" % (code, text[:_TEXT_LIMIT])
    return b"%d %b\n" % (code, quote(text[:_REASON_LIMIT]))


def tcp_found(value: Any) -> bytes:
    """The reply for a value found: ``200 <value>``; ``500`` for an empty value (Postfix
    warns that an empty result "is not allowed"); a ``400`` if the encoded value would
    pass Postfix's 4,096-byte reply limit (Postfix would reject the reply)."""
    if not value:
        return tcp_reply(NOT_FOUND)
    line = b"200 %b\n" % quote(value)
    if len(line) > TCP_REPLY_LIMIT:
        return tcp_reply(TRY_AGAIN, b"value too long for a tcp_table reply")
    return line


def tcp_error(reason: Any) -> bytes:
    """A ``400`` reply for *reason* (an exception or text), cut to fit the limit."""
    text = reason if isinstance(reason, (bytes, str)) else str(reason) or type(reason).__name__
    return tcp_reply(TRY_AGAIN, text)


def as_value(value: Any) -> bytes | None:
    """A lookup result as bytes (text as UTF-8), None for not found.

    :raises TypeError: for anything else.
    """
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a map value must be bytes or str, not {type(value).__name__}")


# -- socketmap ---------------------------------------------------------------------------


def parse_socketmap_request(payload: bytes) -> tuple[bytes, bytes]:
    """The map name and the key of a socketmap request ``name SPACE key``.

    :raises MalformedRequest: without a space, or with an empty name.
    """
    name, space, key = payload.partition(b" ")
    if not space or not name:
        raise MalformedRequest("malformed request: expected 'name key'")
    return name, key


def socketmap_reply(status: bytes, data: Any = b"", limit: int = SOCKETMAP_REPLY_LIMIT) -> bytes:
    """A reply netstring ``status SPACE data``; an ``OK`` reply over *limit* becomes a
    ``PERM`` one (Postfix would reject it)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    payload = status + b" " + data
    if len(payload) > limit:
        if status == b"OK":
            payload = b"PERM value too long for a socketmap reply"
        else:
            payload = payload[:limit]
    return b"%d:%b," % (len(payload), payload)


def socketmap_found(value: bytes | None, limit: int = SOCKETMAP_REPLY_LIMIT) -> bytes:
    """``OK value``, or ``NOTFOUND `` for None or an empty value (which Postfix warns
    is not allowed)."""
    if not value:
        return socketmap_reply(b"NOTFOUND")
    return socketmap_reply(b"OK", value, limit)


def socketmap_error(reason: Any, status: bytes = b"TEMP") -> bytes:
    """A ``TEMP`` (or *status*) reply for *reason*, on one line."""
    text = reason if isinstance(reason, (bytes, str)) else str(reason)
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    return socketmap_reply(status, text.replace(b"\n", b" ").replace(b"\r", b" "))


# -- pipelining --------------------------------------------------------------------------


class InOrder:
    """Replies to pipelined requests, sent in request order however they complete.

    ``reserve()`` a place when a request arrives; ``fill(place, reply)`` when its
    reply is ready: it is sent (by *send*, with every reply it was holding up) once
    all earlier ones are. A reply ready at once, with nothing waiting, goes straight
    out: ``send_now(reply)`` does that, or reserves and fills.
    """

    __slots__ = ("_send", "_waiting", "_first")

    def __init__(self, send: Any) -> None:
        self._send = send
        self._waiting: dict[int, Any] = {}  # place -> reply (None until filled)
        self._first = 0  # the place of the oldest reply not sent
        # places are numbered; the next is _first + len(_waiting)

    def reserve(self) -> int:
        place = self._first + len(self._waiting)
        self._waiting[place] = None
        return place

    def fill(self, place: int, reply: bytes) -> None:
        if place not in self._waiting or self._waiting[place] is not None:
            raise ValueError(f"reply {place} was not reserved, or already filled")
        self._waiting[place] = reply
        ready = []
        while self._waiting.get(self._first) is not None:
            ready.append(self._waiting.pop(self._first))
            self._first += 1
        if ready:
            self._send(b"".join(ready))

    def send_now(self, reply: bytes) -> None:
        if self._waiting:
            self.fill(self.reserve(), reply)
        else:
            self._first += 1
            self._send(reply)

    def __len__(self) -> int:
        """Replies still waiting."""
        return len(self._waiting)
