"""Drop-in replacements for :mod:`twisted.protocols.basic`.

The classes keep Twisted's names, attributes and callbacks; the bytes are split by a
txframe framer (compiled when available), so nothing here parses bytes itself. See the
README's "Differences from Twisted" for the defects fixed on the way.
``FileSender``, ``StatefulStringProtocol`` and the exceptions are Twisted's own
objects, so code that catches or subclasses them works with either module.
"""

from __future__ import annotations

from struct import calcsize, pack
from typing import Any, cast

from twisted.internet import protocol
from twisted.internet.interfaces import IPushProducer
from twisted.protocols import basic as _basic
from twisted.protocols.basic import (
    FileSender,
    IncompleteNetstring,
    NetstringParseError,
    StatefulStringProtocol,
    StringTooLongError,
)

from . import _reexport
from .framing import (
    CompiledFramer,
    CompiledLineFramer,
    LineFramer,
    NetstringFramer,
    PrefixFramer,
    Setting,
    data_received,
    string_data_received,
)

# txframe's names, then every other public name of Twisted's module (``DEBUG``, ...):
# a star import binds what Twisted's does
__all__ = _reexport.exported(_basic, [
    "FileSender",
    "IncompleteNetstring",
    "Int16StringReceiver",
    "Int32StringReceiver",
    "Int8StringReceiver",
    "IntNStringReceiver",
    "LineOnlyReceiver",
    "LineReceiver",
    "NetstringParseError",
    "NetstringReceiver",
    "StatefulStringProtocol",
    "StringTooLongError",
])


def __getattr__(name: str) -> Any:
    """Every other public name of :mod:`twisted.protocols.basic`, as Twisted's object."""
    return _reexport.attribute(_basic, name, __name__)


class _Framed(protocol.Protocol):
    """A protocol whose bytes a framer turns into calls: the framer is made on demand
    (``_framerType()``), and pausing is the framer's.

    ``_settings`` names the attributes the framer reads (``MAX_LENGTH``, ...); in a
    compiled build they become Settings (see ``_declare_settings``).
    """

    _settings: tuple[str, ...] = ()
    _framer: Any = None
    _initialPaused = False  # a subclass's `paused = ...` lands here

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _declare_settings(cls)
        _adopt_initial(cls, "paused", "_initialPaused", bool, _Framed)

    @classmethod
    def _framerType(cls) -> Any:
        raise NotImplementedError

    def _newFramer(self) -> Any:
        return self._framerType()()

    def _getFramer(self) -> Any:
        framer = self._framer
        if framer is None:
            framer = self._framer = self._newFramer()
            if self._initialPaused:
                framer.paused = True
                self._initialPaused = False
        return framer

    @property
    def paused(self) -> bool:
        """While true nothing is delivered; received data waits in the buffer."""
        framer = self._framer
        return self._initialPaused if framer is None else framer.paused

    @paused.setter
    def paused(self, value: Any) -> None:
        if value or self._framer is not None or self._initialPaused:
            self._getFramer().paused = value

    def pauseProducing(self) -> None:
        """Stop delivering (and ask the transport to stop reading)."""
        self.paused = True
        if self.transport is not None:
            cast(IPushProducer, self.transport).pauseProducing()  # a connection's transport is one

    def resumeProducing(self) -> None:
        """Deliver what was held back, and ask the transport to read again."""
        self.paused = False
        if self.transport is not None:
            cast(IPushProducer, self.transport).resumeProducing()  # a connection's transport is one
        self.dataReceived(b"")

    def stopProducing(self) -> None:
        """Stop delivering (and tell the transport to stop producing)."""
        self.paused = True
        if self.transport is not None:
            cast(IPushProducer, self.transport).stopProducing()  # a connection's transport is one


_ABSENT = object()


def _resolve(cls: type, name: str) -> Any:
    """What *name* is bound to where Python would find it on *cls* (or _ABSENT)."""
    return next((vars(k)[name] for k in cls.__mro__ if name in vars(k)), _ABSENT)


def _adopt_initial(cls: type, name: str, initial: str, convert: Any, owner: type) -> None:
    """Twisted's `paused` and `line_mode` are plain attributes, so a subclass or a mixin
    may set them (`paused = False` copied from its mixin, `line_mode = 0` to start in
    raw mode). Keep such a value as each connection's starting state in *initial*,
    and the property (found on *owner*) in charge."""
    for klass in cls.__mro__:
        value = vars(klass).get(name, _ABSENT)
        if value is _ABSENT:
            continue
        if issubclass(klass, owner) and klass is not cls:
            return  # already handled where it was defined
        if hasattr(type(value), "__get__"):
            return  # the property itself, or a descriptor of the user's
        setattr(cls, initial, convert(value))
        if name in vars(cls):
            delattr(cls, name)
        if _resolve(cls, name) is not vars(owner)[name]:
            setattr(cls, name, vars(owner)[name])
        return


def _declare_settings(cls: type) -> None:
    """Give *cls* the kind of settings its framer reads fastest.

    For a compiled framer, plain values become compiled Settings: reading and
    assigning them on the class or an instance works as before, and the framer is told
    of changes instead of reading them again for every frame. For a pure framer they
    stay (or become again) plain attributes, which Python reads fastest. A name bound
    to a descriptor of the user's own (a property, say) is left alone; the framer then
    reads it for every frame, as Twisted does.
    """
    if Setting is None:
        return
    framer = cls._framerType()  # type: ignore[attr-defined]
    compiled = isinstance(framer, type) and issubclass(framer, CompiledFramer)
    for name in cls._settings:  # type: ignore[attr-defined]
        current = _resolve(cls, name)
        if type(current) is Setting:
            if not compiled:
                setattr(cls, name, getattr(cls, name))
        elif compiled and name in vars(cls) and not hasattr(type(current), "__get__"):
            # Only the class's own value: one inherited from a plain mixin stays there
            # (and is read for every frame), so changing it on the mixin still works.
            setattr(cls, name, Setting(name, current))


# -- lines ---------------------------------------------------------------------------


class _LineProtocol(_Framed):
    """What LineReceiver and LineOnlyReceiver share.

    A connection with nothing buffered holds no compiled framer at all, so an idle
    connection costs no more than Twisted's.
    """

    delimiter = b"\r\n"
    MAX_LENGTH = 16384
    _settings = ("delimiter", "MAX_LENGTH")

    _lineFramer = LineFramer  # the framer type; the tests swap in each implementation
    _lineOnly = False
    _initialLineMode = 1  # a subclass's `line_mode = 0` lands here (see LineReceiver)
    _lineFast: Any = None  # see _fast_framer

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _fast_framer(cls)

    @classmethod
    def _framerType(cls) -> Any:
        return cls._lineFramer

    def _newFramer(self) -> Any:
        framer = self._lineFramer(self._lineOnly)
        if not self._initialLineMode:
            framer.line_mode = 0
            self._initialLineMode = 1
        return framer

    dataReceived = data_received

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


def _fast_framer(cls: Any) -> None:
    """Record in ``_lineFast`` whether a connection of *cls* starts with a plain
    compiled framer (line mode, not paused): then ``dataReceived`` makes it with
    this one read, after each idle spell (``_lineOnly``), instead of four."""
    plain = cls._lineFramer is CompiledLineFramer and cls._initialLineMode and not cls._initialPaused
    cls._lineFast = bool(cls._lineOnly) if plain else None


class LineReceiver(_LineProtocol):
    """A protocol that receives lines and/or raw data, depending on mode.

    In line mode each line becomes a call to :meth:`lineReceived`; in raw mode each
    chunk becomes a call to :meth:`rawDataReceived`. :meth:`setLineMode` and
    :meth:`setRawMode` switch, also in the middle of a chunk.

    ``delimiter`` (default ``b"\\r\\n"``) and ``MAX_LENGTH`` (default 16384) may be set
    on the class or the instance; a change made on the instance in a callback applies
    from the next line, one made on a class at the latest from the next
    ``dataReceived`` call (README, "Differences from Twisted"). A truthy return value
    from ``lineReceived`` (deprecated) stops processing and
    is returned from ``dataReceived``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _adopt_initial(cls, "line_mode", "_initialLineMode", lambda v: 1 if v else 0, LineReceiver)
        _fast_framer(cls)

    @property
    def line_mode(self) -> int:
        """1 in line mode, 0 in raw mode."""
        framer = self._framer
        return self._initialLineMode if framer is None else framer.line_mode

    @line_mode.setter
    def line_mode(self, value: Any) -> None:
        if not value or self._framer is not None:
            self._getFramer().line_mode = value
        elif not self._initialLineMode:  # back to line mode before any data came
            self._initialLineMode = 1

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
        return self.transport.write(line + self.delimiter)  # type: ignore[union-attr]

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
        return self.transport.writeSequence((line, self.delimiter))  # type: ignore[union-attr]


# -- length-prefixed strings ---------------------------------------------------------


class _StringProtocol(_Framed):
    _stringFramer: Any = None  # the framer type; the tests swap in each implementation

    @classmethod
    def _framerType(cls) -> Any:
        return cls._stringFramer

    dataReceived = string_data_received

    def _callbackFailed(self, error: Exception) -> bool:
        """Whether *error*, raised by a callback, was handled (else it propagates)."""
        return False

    def stringReceived(self, string: bytes) -> None:
        """Override this to handle each string (given without its framing)."""
        raise NotImplementedError


class _Recvd:
    """Twisted's ``recvd``, for a _Framed protocol whose framer can replace its data."""

    _framer: Any
    _getFramer: Any

    @property
    def recvd(self) -> bytes:
        """The bytes received and not yet processed; assign to replace them."""
        framer = self._framer
        return b"" if framer is None else framer.buffered()

    @recvd.setter
    def recvd(self, value: Any) -> None:
        self._getFramer().replace(value)


class IntNStringReceiver(_Recvd, _StringProtocol):
    """Generic class for length-prefixed protocols: set ``structFormat`` and
    ``prefixLength`` (``struct.calcsize(structFormat)``) in a subclass.

    Strings declaring a length over ``MAX_LENGTH`` go to :meth:`lengthLimitExceeded`
    before anything is buffered for them. ``recvd`` is the data received and not yet
    processed (read it, or assign to replace it, e.g. when switching protocols).
    """

    MAX_LENGTH = 99999
    structFormat: str
    prefixLength: int
    _settings = ("MAX_LENGTH", "structFormat", "prefixLength")
    _stringFramer = PrefixFramer

    def lengthLimitExceeded(self, length: int) -> None:
        """Called with a declared length over ``MAX_LENGTH``; drops the connection.

        Unless the connection is dropped (or ``MAX_LENGTH`` raised to allow it), the
        string's bytes are then skipped as they arrive and the strings after it are
        delivered.
        """
        if self.transport is not None:
            self.transport.loseConnection()

    def sendString(self, string: bytes) -> None:
        """Send *string* with its length prefix.

        :raises StringTooLongError: if its length does not fit in the prefix.
        """
        limit = 2 ** (8 * self.prefixLength)
        if len(string) >= limit:
            raise StringTooLongError(
                "Try to send %s bytes whereas maximum is %s" % (len(string), limit)
            )
        self.transport.write(  # type: ignore[union-attr]
            pack(self.structFormat, len(string)) + string
        )


class Int32StringReceiver(IntNStringReceiver):
    """Strings prefixed by their length as a 4-byte big-endian unsigned integer."""

    structFormat = "!I"
    prefixLength = calcsize(structFormat)


class Int16StringReceiver(IntNStringReceiver):
    """Strings prefixed by their length as a 2-byte big-endian unsigned integer."""

    structFormat = "!H"
    prefixLength = calcsize(structFormat)


class Int8StringReceiver(IntNStringReceiver):
    """Strings prefixed by their length as one unsigned byte."""

    structFormat = "!B"
    prefixLength = calcsize(structFormat)


class NetstringReceiver(_StringProtocol):
    """A protocol that sends and receives netstrings (``<length>:<data>,``).

    Netstrings longer than ``MAX_LENGTH`` and malformed ones are parse errors: they go
    to :meth:`netstringParseError`, which by default drops the connection and sets
    ``brokenPeer``, as Twisted does.
    """

    MAX_LENGTH = 99999
    brokenPeer = 0
    _settings = ("MAX_LENGTH",)
    _stringFramer = NetstringFramer

    def makeConnection(self, transport: Any) -> None:
        """Start a connection with a fresh parser, as Twisted's does."""
        if self._framer is not None:
            self._framer.reset()
        self.brokenPeer = 0
        super().makeConnection(transport)

    def sendString(self, string: bytes) -> None:
        """Send *string* as a netstring."""
        self.transport.write(b"%d:%b," % (len(string), string))  # type: ignore[union-attr]

    def _netstringParseError(self, message: str) -> None:
        self.netstringParseError(NetstringParseError(message))

    def _callbackFailed(self, error: Exception) -> bool:
        # Twisted's dataReceived catches these from its own parser, and so also from
        # stringReceived: a parse error breaks the peer; an incomplete netstring
        # leaves the rest for the next call.
        if isinstance(error, NetstringParseError):
            self._getFramer().disregard()
            self.netstringParseError(error)
            return True
        return isinstance(error, IncompleteNetstring)

    def netstringParseError(self, reason: NetstringParseError) -> None:
        """Called once, with the error, when the peer sends a malformed netstring.

        Override to log or answer before the connection goes; everything received
        after the error is disregarded. The default calls ``_handleParseError``, which
        drops the connection and sets ``brokenPeer``, as Twisted does.
        """
        self._handleParseError()

    def _handleParseError(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()
        self.brokenPeer = 1
