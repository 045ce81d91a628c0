"""Drop-in replacements for :mod:`twisted.protocols.basic`.

The classes keep Twisted's names, attributes and callbacks; the bytes are split by a
txframe framer (compiled when available), so nothing here parses bytes itself. See the
README's "Differences from Twisted" for the defects fixed on the way.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol
from twisted.protocols.basic import FileSender

from . import framing
from .framing import LineFramer, Setting, data_received

__all__ = ["FileSender", "LineOnlyReceiver", "LineReceiver"]


class _Pausable:
    """pauseProducing / resumeProducing / stopProducing, with or without a transport."""

    transport: Any
    paused: bool
    dataReceived: Any

    def pauseProducing(self) -> None:
        self.paused = True
        if self.transport is not None:
            self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        if self.transport is not None:
            self.transport.resumeProducing()
        self.dataReceived(b"")

    def stopProducing(self) -> None:
        self.paused = True
        if self.transport is not None:
            self.transport.stopProducing()


class _LineProtocol(_Pausable, protocol.Protocol):
    """What LineReceiver and LineOnlyReceiver share: a framer, created on demand.

    A connection with nothing buffered holds no framer at all, so an idle connection
    costs no more than Twisted's.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _declare_settings(cls)

    delimiter = b"\r\n"
    MAX_LENGTH = 16384

    _lineFramer = LineFramer  # the framer type; the tests swap in each implementation
    _lineOnly = False
    _framer: Any = None
    _initialLineMode = 1  # a subclass's `line_mode = 0` lands here (see LineReceiver)

    def _getFramer(self) -> Any:
        framer = self._framer
        if framer is None:
            framer = self._framer = self._lineFramer(self._lineOnly)
            if not self._initialLineMode:
                framer.line_mode = 0
                self._initialLineMode = 1
        return framer

    dataReceived = data_received

    @property
    def paused(self) -> bool:  # type: ignore[override]
        """While true no line is delivered; received data waits in the buffer."""
        framer = self._framer
        return False if framer is None else framer.paused

    @paused.setter
    def paused(self, value: Any) -> None:
        if value or self._framer is not None:
            self._getFramer().paused = value

    def clearLineBuffer(self) -> bytes:
        """Clear buffered data and return it."""
        framer = self._framer
        return b"" if framer is None else framer.clear()

    def lineReceived(self, line: bytes) -> Any:
        """Override this to handle each line (given without its delimiter)."""
        raise NotImplementedError

    def lineLengthExceeded(self, line: bytes) -> Any:
        """Called when a line is longer than ``MAX_LENGTH``; drops the connection."""
        if self.transport is not None:
            return self.transport.loseConnection()
        return None


_SETTINGS = ("delimiter", "MAX_LENGTH")
_COMPILED_FRAMER = LineFramer if framing.implementation == "compiled" else None


def _declare_settings(cls: type) -> None:
    """Give *cls* the kind of ``delimiter`` / ``MAX_LENGTH`` its framer reads fastest.

    For the compiled framer, plain values become compiled Settings: ``cls.delimiter``
    and ``instance.delimiter`` read and assign as before, and the framer is told of
    changes instead of re-reading both after every line. For the pure framer they
    stay (or become again) plain attributes, which Python reads fastest. A name bound
    to a descriptor of the user's own (a property, say) is left alone; the framer then
    reads it after every line, as Twisted does.
    """
    if Setting is None:
        return
    compiled = getattr(cls, "_lineFramer", None) is _COMPILED_FRAMER
    for name in _SETTINGS:
        current = next(vars(klass)[name] for klass in cls.__mro__ if name in vars(klass))
        if type(current) is Setting:
            if not compiled:  # the pure framer reads a plain value fastest
                setattr(cls, name, getattr(cls, name))
        elif compiled and not hasattr(type(current), "__get__"):
            setattr(cls, "_txframe_" + name, current)
            setattr(cls, name, Setting(name))


_declare_settings(_LineProtocol)


class LineReceiver(_LineProtocol):
    """A protocol that receives lines and/or raw data, depending on mode.

    In line mode each line becomes a call to :meth:`lineReceived`; in raw mode each
    chunk becomes a call to :meth:`rawDataReceived`. :meth:`setLineMode` and
    :meth:`setRawMode` switch, also in the middle of a chunk.

    ``delimiter`` (default ``b"\\r\\n"``) and ``MAX_LENGTH`` (default 16384) may be set
    on the class or the instance; a change made in a callback applies from the next
    line. A truthy return value from ``lineReceived`` (deprecated) stops processing and
    is returned from ``dataReceived``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Twisted reads `line_mode` from the instance, so a subclass may start in raw
        # mode with `line_mode = 0`; keep that as the initial mode of each connection.
        initial = cls.__dict__.get("line_mode")
        if initial is not None and not hasattr(type(initial), "__get__"):
            cls._initialLineMode = 1 if initial else 0
            del cls.line_mode  # type: ignore[attr-defined]

    @property
    def line_mode(self) -> int:
        """1 in line mode, 0 in raw mode."""
        framer = self._framer
        return self._initialLineMode if framer is None else framer.line_mode

    @line_mode.setter
    def line_mode(self, value: Any) -> None:
        if not value or self._framer is not None:
            self._getFramer().line_mode = value

    def setLineMode(self, extra: bytes = b"") -> Any:
        """Switch to line mode; *extra* (from ``rawDataReceived``) is parsed for lines."""
        self.line_mode = 1
        if extra:
            return self.dataReceived(extra)
        return None

    def setRawMode(self) -> None:
        """Switch to raw mode: further data goes to :meth:`rawDataReceived`."""
        self.line_mode = 0

    def rawDataReceived(self, data: bytes) -> Any:
        """Override this to handle raw data."""
        raise NotImplementedError

    def sendLine(self, line: bytes) -> Any:
        """Send *line* followed by the delimiter."""
        return self.transport.write(line + self.delimiter)

    def lineLengthExceeded(self, line: bytes) -> Any:
        """Called when the maximum line length has been reached.

        *line* holds the rest of the buffer, starting with (at least part of) the line
        that is too long; the buffer is cleared. The default drops the connection.
        """
        return super().lineLengthExceeded(line)


class LineOnlyReceiver(_LineProtocol):
    """A protocol that receives only lines: LineReceiver without raw mode.

    Unlike Twisted's, it honours pauseProducing / resumeProducing, applies a change of
    ``delimiter`` from the next line, and keeps delivering the lines after one that was
    too long if ``lineLengthExceeded`` leaves the connection open.
    """

    _lineOnly = True

    def sendLine(self, line: bytes) -> Any:
        """Send *line* followed by the delimiter."""
        return self.transport.writeSequence((line, self.delimiter))
