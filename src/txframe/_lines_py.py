"""Line framing in pure Python: the reference implementation.

The compiled twin is ``_lines_c.pyx``; both have one API and are tested against each
other and against Twisted. Import ``LineFramer`` from :mod:`txframe.framing`, not from
here.

A framer turns a byte stream into calls on a *sink*, the object that owns it (a
``LineReceiver`` in practice, but anything with these names will do):

``delimiter``, ``MAX_LENGTH``
    read before each line, so a change made in a callback applies from the next line;
``lineReceived(line)``, ``rawDataReceived(data)``, ``lineLengthExceeded(data)``
    the callbacks;
``transport``
    ``None`` or an object whose ``disconnecting`` flag stops line delivery.

It imports nothing from Twisted.
"""

from __future__ import annotations

from typing import Any, Iterator

_EMPTY = b""


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

    The buffer is kept as an iterator over complete lines already split off (so each
    chunk is split once, at C speed) plus a tail holding the partial line and anything
    fed since; ``_scan`` remembers how far the tail was searched, so a long line
    arriving in small pieces is scanned once.
    """

    __slots__ = (
        "line_only",
        "_line_mode",
        "_paused",
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
        self._busy = False
        self._lines: Iterator[bytes] | None = None  # complete lines not yet delivered
        self._delim: bytes | None = None  # what _lines were split on / _scan is for
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

    @property
    def paused(self) -> bool:
        """While true, nothing is delivered; data received is buffered."""
        return self._paused

    @paused.setter
    def paused(self, value: Any) -> None:
        self._paused = bool(value)

    @property
    def idle(self) -> bool:
        """True when the framer holds no state worth keeping."""
        return (
            not self._busy
            and self._line_mode == 1
            and not self._paused
            and self._lines is None
            and not self._tail
        )

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
                assert delim is not None
                tail = delim.join(rest) + delim + tail
        self._tail = _EMPTY
        self._scan = 0
        return tail if type(tail) is bytes else bytes(tail)

    # -- the dispatch loop ------------------------------------------------------

    def feed(self, sink: Any, data: Any) -> Any:
        """Take *data* and deliver what it completes; return what dataReceived returns."""
        if type(data) is not bytes:
            data = as_bytes(data)
        if self._busy:  # re-entered from a callback: the running loop delivers it
            self._append(data)
            return None
        if self._line_mode:
            transport = sink.transport
            if transport is not None and transport.disconnecting:
                return None  # the connection is going away: disregard its lines
        self._append(data)
        self._busy = True
        try:
            return self._deliver(sink)
        finally:
            self._busy = False

    def _append(self, data: bytes) -> None:
        if not data:
            return
        tail = self._tail
        if not tail:
            self._tail = data
        elif type(tail) is bytearray:
            tail += data
        elif len(tail) <= 256 or len(tail) <= 2 * len(data):
            self._tail = tail + data  # a short copy beats growing a bytearray
        else:
            grown = bytearray(tail)
            grown += data
            self._tail = grown

    def _split_tail(self, sink: Any) -> Iterator[bytes] | None:
        """Split the tail into lines; None if it holds no complete line."""
        delim = sink.delimiter
        if delim is not self._delim:
            check_delimiter(delim)
            if delim != self._delim:
                self._scan = 0
            self._delim = delim
        tail = self._tail
        if tail.find(delim, self._scan) < 0:
            self._scan = max(len(tail) - len(delim) + 1, 0)
            return None
        if type(tail) is not bytes:
            tail = bytes(tail)
        lines = tail.split(delim)
        self._tail = lines.pop()
        self._scan = 0
        self._lines = iterator = iter(lines)
        return iterator

    def _deliver(self, sink: Any) -> Any:
        line_only = self.line_only
        result = None  # LineOnlyReceiver: what the last lineLengthExceeded returned
        why = None
        while not self._paused:
            if not self._line_mode:
                data = self.clear()
                if not data:
                    return None
                why = sink.rawDataReceived(data)
                if why:
                    return why
                continue
            lines = self._lines
            if lines is None:
                if not self._tail:
                    return result
                lines = self._split_tail(sink)
                if lines is None:
                    if len(self._tail) >= sink.MAX_LENGTH + len(self._delim):  # type: ignore[arg-type]
                        return sink.lineLengthExceeded(self.clear())
                    return result
            delim = self._delim
            for line in lines:
                if len(line) > sink.MAX_LENGTH:
                    if not line_only:
                        return sink.lineLengthExceeded(line + delim + self.clear())
                    result = sink.lineLengthExceeded(line)
                else:
                    why = sink.lineReceived(line)
                    if why and not line_only:
                        return why
                transport = sink.transport
                if transport is not None and transport.disconnecting:
                    return result if line_only else why
                if self._paused or not self._line_mode or sink.delimiter is not delim:
                    break
            else:
                self._lines = None
                continue
            delimiter = sink.delimiter
            if self._line_mode and delimiter is not delim:
                if delimiter == delim:
                    self._delim = delimiter
                else:  # re-split what is left on the new delimiter
                    self._tail = self.clear()
        return result
