"""Line framing in pure Python: the reference implementation.

The compiled twin is ``_lines_c.pyx``; both have one API and are tested against each
other and against Twisted. Import from :mod:`txframe.framing`, not from here.

A framer turns a byte stream into calls on a *sink*, the object that owns it (a
``LineReceiver`` in practice, but anything with these names will do):

``delimiter``, ``MAX_LENGTH``
    read before each line, so a change made in a callback applies from the next line;
``lineReceived(line)``, ``rawDataReceived(data)``, ``lineLengthExceeded(data)``
    the callbacks;
``transport``
    ``None`` or an object whose ``disconnecting`` flag stops line delivery (read once
    per ``feed``).

It imports nothing from Twisted.
"""

from __future__ import annotations

from operator import length_hint
from typing import Any, Iterator

_EMPTY = b""
_UNSET: Any = object()  # no delimiter read yet (None is a value users can set)


class _NoTransport:
    disconnecting = False


_NO_TRANSPORT = _NoTransport()


def as_bytes(data: Any) -> bytes:
    """Return *data* as ``bytes``, or raise a clear ``TypeError``."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"data must be bytes, not {type(data).__name__}")


def check_delimiter(delimiter: Any) -> bytes:
    """Return *delimiter* if it is usable, else raise ``TypeError``/``ValueError``."""
    if not isinstance(delimiter, bytes):
        raise TypeError(f"delimiter must be bytes, not {type(delimiter).__name__}")
    if not delimiter:
        raise ValueError("delimiter must not be empty")
    return delimiter


class LineFramer:
    """Split a byte stream into lines and hand them to a sink.

    ``line_only=True`` gives LineOnlyReceiver's rules: no raw mode, return values of
    ``lineReceived`` ignored, ``lineLengthExceeded`` given only the offending line and
    delivery going on after it. Otherwise LineReceiver's rules apply.

    The buffer is an iterator over complete lines already split off (each chunk is
    split once, at C speed) plus a tail holding the partial line and anything fed
    since; ``_scan`` remembers how far the tail was searched, so a long line arriving
    in small pieces is scanned once.
    """

    __slots__ = (
        "line_only",
        "_line_mode",
        "_paused",
        "_go",
        "_busy",
        "_lines",
        "_delim",
        "_tail",
        "_scan",
    )

    def __init__(self, line_only: bool = False) -> None:
        self.line_only = bool(line_only)
        self._line_mode = 1
        self._paused = False
        self._go = True  # line mode and not paused: the one flag the line loop reads
        self._busy = False
        self._lines: Iterator[bytes] | None = None  # complete lines not yet delivered
        self._delim: bytes = _UNSET  # what _lines were split on / _scan is for
        self._tail: bytes | bytearray = _EMPTY  # bytes after the last split delimiter
        self._scan = 0  # no delimiter starts in _tail before this offset

    # -- state the protocol exposes ---------------------------------------------

    @property
    def line_mode(self) -> int:
        """1 in line mode, 0 in raw mode."""
        return self._line_mode

    @line_mode.setter
    def line_mode(self, value: Any) -> None:
        self._line_mode = 1 if value else 0
        self._go = bool(value) and not self._paused

    @property
    def paused(self) -> bool:
        """While true, nothing is delivered; data received is buffered."""
        return self._paused

    @paused.setter
    def paused(self, value: Any) -> None:
        self._paused = bool(value)
        self._go = self._line_mode == 1 and not value

    @property
    def idle(self) -> bool:
        """True when the framer holds no state worth keeping."""
        return not self._busy and self._go and self._lines is None and not self._tail

    def buffered(self) -> bytes:
        """Every byte received and not yet delivered."""
        data = self.clear()
        self._tail = data
        return data

    def clear(self) -> bytes:
        """Remove and return every byte received and not yet delivered."""
        tail = self._tail
        lines = self._lines
        if lines is not None:
            self._lines = None
            rest = list(lines)
            if rest:
                delim = self._delim
                tail = delim.join(rest) + delim + tail
        self._tail = _EMPTY
        self._scan = 0
        return tail if type(tail) is bytes else bytes(tail)

    # -- the dispatch loop ------------------------------------------------------

    def feed(self, sink: Any, data: Any) -> Any:
        """Take *data* and deliver what it completes; return what dataReceived returns."""
        return data_received(sink, data, self)


def data_received(sink: Any, data: Any, framer: Any = None) -> Any:
    """Split *data* into lines and deliver them: ``LineFramer.feed`` and, bound as a
    method, the line protocols' ``dataReceived``.

    Called as a method it uses (and makes on demand) the protocol's ``_framer``. The
    compiled twin drops an idle framer, to keep idle connections small; in pure
    Python making one costs more than it saves, so it stays. This is one function on
    purpose: in pure Python a call costs more than a line.
    """
    if framer is None:
        framer = sink._framer
        if framer is None:
            framer = sink._getFramer()
        if type(framer) is not LineFramer:  # another implementation's framer
            return framer.feed(sink, data)
    if type(data) is not bytes:
        data = as_bytes(data)
    transport = sink.transport
    if transport is None:
        transport = _NO_TRANSPORT
    elif transport.disconnecting and framer._line_mode:
        return None  # the connection is going away: disregard its lines
    if data:  # append to the tail
        tail = framer._tail
        if not tail:
            framer._tail = data
        elif type(tail) is bytearray:
            tail += data
        elif len(tail) <= 256 or len(tail) <= 2 * len(data):
            framer._tail = tail + data  # a short copy beats growing a bytearray
        else:
            grown = bytearray(tail)
            grown += data
            framer._tail = grown
    if framer._busy:  # re-entered from a callback: the running loop delivers it
        return None
    framer._busy = True
    try:
        return _deliver(framer, sink, transport)
    finally:
        framer._busy = False


def _deliver(framer: LineFramer, sink: Any, transport: Any) -> Any:
    line_only = framer.line_only
    result = None  # LineOnlyReceiver: what the last lineLengthExceeded returned
    why = None
    while not framer._paused:
        if not framer._line_mode:
            data = framer.clear()
            if not data:
                return None
            why = sink.rawDataReceived(data)
            if why:
                return why
            continue
        lines = framer._lines
        if lines is not None and not length_hint(lines):  # all delivered (exact for a
            framer._lines = lines = None  # list iterator): nothing left to check against
        if lines is not None:  # lines split earlier: still on the same delimiter?
            delimiter = sink.delimiter
            if delimiter is not framer._delim:
                if delimiter == framer._delim:  # (a bytearray is equal, and refused)
                    framer._delim = check_delimiter(delimiter)
                else:  # re-split what is left on the new one
                    framer._tail = framer.clear()
                    lines = None
        if lines is None:  # split the tail, if it holds a complete line
            tail = framer._tail
            if not tail:
                return result
            delim = sink.delimiter
            if delim is not framer._delim:
                check_delimiter(delim)
                if delim != framer._delim:
                    framer._scan = 0
                framer._delim = delim
            if tail.find(delim, framer._scan) < 0:
                if len(tail) >= sink.MAX_LENGTH + len(delim):
                    return sink.lineLengthExceeded(framer.clear())
                framer._scan = max(len(tail) - len(delim) + 1, 0)
                return result
            if type(tail) is not bytes:
                tail = bytes(tail)
            split = tail.split(delim)
            framer._tail = split.pop()
            framer._scan = 0
            framer._lines = lines = iter(split)
        delim = framer._delim
        if line_only:
            for line in lines:
                if len(line) > sink.MAX_LENGTH:
                    result = sink.lineLengthExceeded(line)
                else:
                    sink.lineReceived(line)
                if transport.disconnecting:
                    return result
                if not framer._go or sink.delimiter is not delim:
                    break
            else:
                framer._lines = None
        else:
            for line in lines:
                if len(line) > sink.MAX_LENGTH:
                    return sink.lineLengthExceeded(line + delim + framer.clear())
                why = sink.lineReceived(line)
                if why or transport.disconnecting:
                    return why
                if not framer._go or sink.delimiter is not delim:
                    break
            else:
                framer._lines = None
    return result
