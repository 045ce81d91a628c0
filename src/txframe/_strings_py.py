"""Length-prefixed and netstring framing in pure Python: the reference
implementation. The compiled twin is ``_strings_c.pyx``; import from
:mod:`txframe.framing`. Nothing here imports Twisted.

``PrefixFramer`` serves a sink with ``structFormat``, ``prefixLength`` and
``MAX_LENGTH`` (Twisted's IntNStringReceiver attributes), ``stringReceived(string)``,
``lengthLimitExceeded(length)`` and ``transport``:

- a declared length over ``MAX_LENGTH`` (or negative) is reported before anything is
  buffered for it; during the call the buffer (``recvd``) still starts with its
  prefix. If the callback raised ``MAX_LENGTH`` enough, the string is then parsed;
  otherwise its bytes are dropped as they arrive and the strings after it are
  delivered, unless the transport is disconnecting;
- ``replace()`` (``recvd = ...``) makes new bytes the unprocessed data at once;
- nothing is delivered while ``paused``; a ``feed`` from inside a callback is queued.

``NetstringFramer`` serves a sink with ``MAX_LENGTH``, ``stringReceived(string)`` and
``_netstringParseError(message)``: the length is ``0`` or digits without a leading
zero, then ``:``, the payload and ``,``. The first malformed byte is reported once;
everything after it is disregarded.
"""

from __future__ import annotations

import struct
import sys
from typing import Any, Callable

from ._lines_py import as_bytes

_EMPTY = b""

TOO_LONG = "The received netstring is longer than the maximum %s specified by self.MAX_LENGTH"
MISSING_LENGTH = "The received netstring does not start with a length specification."
MISSING_COMMA = "The received netstring is not terminated by a comma."


class _Buffer:
    """Bytes received and not yet delivered: ``_data[_pos:]``.

    ``_data`` is the chunk itself when nothing was left over, else a concatenation,
    or a bytearray once the leftover is long (so a long string arriving in small
    chunks is copied once).
    """

    __slots__ = ("_data", "_pos", "_paused", "_busy", "_broken")

    def __init__(self) -> None:
        self._data: bytes | bytearray = _EMPTY
        self._pos = 0
        self._paused = False
        self._busy = False
        self._broken = False  # the peer is broken: what arrives now is disregarded

    def feed(self, sink: Any, data: Any) -> None:
        """Take *data* and deliver the strings it completes."""
        if type(data) is not bytes:
            data = as_bytes(data)
        if self._broken:
            return
        self._append(data)
        if self._busy:  # re-entered from a callback: the running loop delivers it
            return
        self._busy = True
        try:
            self._deliver(sink)
        finally:
            self._busy = False

    def _deliver(self, sink: Any) -> None:
        raise NotImplementedError

    def disregard(self) -> None:
        """Drop what is buffered and everything received from now on."""
        self._broken = True
        self.clear()

    def reset(self) -> None:
        """Start again, as for a new connection."""
        self._broken = False
        self.clear()
        self._restart()

    def _restart(self) -> None:
        pass

    @property
    def paused(self) -> bool:
        """While true, nothing is delivered; data received is buffered."""
        return self._paused

    @paused.setter
    def paused(self, value: Any) -> None:
        self._paused = bool(value)

    def buffered(self) -> bytes:
        """Every byte received and not yet delivered."""
        return bytes(self._data[self._pos :])

    def clear(self) -> bytes:
        """Remove and return every byte received and not yet delivered."""
        rest = self.buffered()
        self._data = _EMPTY
        self._pos = 0
        return rest

    def replace(self, data: Any) -> None:
        """Make *data* the bytes received and not yet delivered."""
        self._data = as_bytes(data) if data else _EMPTY  # Twisted's AMP assigns ""
        self._pos = 0

    def _append(self, data: bytes) -> None:
        held = self._data
        pos = self._pos
        if pos == len(held):
            self._data = data
        elif type(held) is bytearray:
            if pos:
                del held[:pos]
            held += data
        elif len(held) - pos <= 2 * len(data) + 256:
            self._data = held[pos:] + data
        else:
            grown = bytearray(held[pos:])
            grown += data
            self._data = grown
        self._pos = 0


class PrefixFramer(_Buffer):
    """Split a stream of length-prefixed strings (IntNStringReceiver's framing)."""

    __slots__ = ("_skip", "_replaced")

    def __init__(self) -> None:
        super().__init__()
        self._skip = 0  # bytes of a too-long string still to drop
        self._replaced = False  # a callback replaced or emptied the buffer

    def replace(self, data: Any) -> None:
        super().replace(data)
        self._replaced = True

    def clear(self) -> bytes:
        # reset() and disregard() too: the prefix _too_long would step over is gone.
        self._replaced = True
        return super().clear()

    def _restart(self) -> None:
        self._skip = 0

    def _deliver(self, sink: Any) -> None:
        prefix = sink.prefixLength
        layout = struct.Struct(sink.structFormat)
        unpack: Callable[[bytes | bytearray, int], tuple[Any, ...]]
        if layout.size == prefix:
            unpack = layout.unpack_from
        else:  # as Twisted: unpack exactly prefixLength bytes (struct.error if wrong)
            def unpack_exactly(data: bytes | bytearray, pos: int) -> tuple[Any, ...]:
                return layout.unpack(data[pos : pos + prefix])

            unpack = unpack_exactly
        while not self._paused:
            data = self._data
            pos = self._pos
            available = len(data) - pos
            if self._skip:  # what is left of a string that was too long
                dropped = min(self._skip, available)
                self._pos = pos + dropped
                self._skip -= dropped
                if self._skip:
                    return
                continue
            if available < prefix:
                return
            (length,) = unpack(data, pos)
            if length > sink.MAX_LENGTH or length < 0:
                if self._too_long(sink, length, prefix):
                    continue
                return
            end = pos + prefix + length
            if end > len(data):
                return
            self._pos = end
            if type(data) is bytes:
                sink.stringReceived(data[pos + prefix : end])
            else:
                sink.stringReceived(bytes(data[pos + prefix : end]))

    def _too_long(self, sink: Any, length: int, prefix: int) -> bool:
        self._replaced = False
        sink.lengthLimitExceeded(length)
        if self._replaced:
            return True
        if 0 <= length and not length > sink.MAX_LENGTH:
            return True
        transport = sink.transport
        if transport is not None and transport.disconnecting:
            self._broken = True  # as Twisted: stop, with the prefix still in recvd;
            return False  # and, unlike it, disregard anything that still arrives
        self._pos += prefix
        self._skip = max(length, 0)
        return True


class NetstringFramer(_Buffer):
    """Split a stream of netstrings (``<digits>:<payload>,``)."""

    __slots__ = ("_expected",)

    def __init__(self) -> None:
        super().__init__()
        self._expected = -1  # payload length once the length is parsed

    def _restart(self) -> None:
        self._expected = -1

    def _deliver(self, sink: Any) -> None:
        while not self._paused and not self._broken:
            data = self._data
            pos = self._pos
            if self._expected < 0:
                if pos == len(data):
                    return
                limit = sink.MAX_LENGTH
                colon = data.find(b":", pos + 1, pos + 21)
                digits = data[pos:colon]
                if (
                    colon > 0
                    and digits.isdigit()
                    and (colon - pos == 1 or data[pos] != 0x30)
                    and colon - pos <= 18  # longer ones may overflow: see _scan_length
                    and not int(digits) > limit
                ):  # the common case: a valid length
                    self._expected = int(digits)
                else:
                    found = _scan_length(data, pos, limit)
                    if found is None:
                        return  # the length so far is valid: wait for the rest
                    if type(found) is str:
                        return self._error(sink, found)
                    self._expected, colon = found
                self._pos = pos = colon + 1
            end = pos + self._expected
            if len(data) <= end:
                return
            if data[end] != 0x2C:  # ","
                return self._error(sink, MISSING_COMMA)
            self._pos = end + 1
            self._expected = -1
            string = data[pos:end]
            sink.stringReceived(string if type(string) is bytes else bytes(string))

    def _error(self, sink: Any, message: str) -> None:
        self._broken = True
        self.clear()
        sink._netstringParseError(message)


_GUARD = (sys.maxsize - 9) // 10  # a length this long cannot be real


def _scan_length(data: bytes | bytearray, pos: int, limit: Any) -> Any:
    """Read a netstring length as the compiled framer does: first its form (digits
    to the end of the data, or digits and ':'), then its size, as Twisted does.

    Returns ``(length, index of the colon)``, ``None`` if the bytes so far are a valid
    start, or the parse error's message.
    """
    end = pos
    while end < len(data) and 0x30 <= data[end] <= 0x39:
        end += 1
    digits = data[pos:end]
    if not digits or (len(digits) > 1 and digits[0] == 0x30):
        return MISSING_LENGTH
    if end < len(data) and data[end] != 0x3A:
        return MISSING_LENGTH
    value = int(digits) if len(digits) <= 19 else _GUARD * 10 + 10  # overflow
    if value > _GUARD * 10 + 9 or value > limit:
        return TOO_LONG % (limit,)
    if end == len(data):
        return None
    return value, end


def string_data_received(self: Any, data: Any) -> None:
    """Deliver the strings *data* completes (the string protocols' dataReceived).

    An exception from a callback propagates unless the protocol's ``_callbackFailed``
    takes it (NetstringReceiver takes its parse errors, as Twisted's does).
    """
    framer = self._framer
    if framer is None:
        framer = self._getFramer()
    try:
        framer.feed(self, data)
    except Exception as error:
        if not self._callbackFailed(error):
            raise
