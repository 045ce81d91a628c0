"""Drop-in replacement for :mod:`twisted.protocols.amp`.

Every public name of Twisted's module is here (those not replaced, through the
module's ``__getattr__``). Commands, Argument types, errors, interfaces and locators
are Twisted's own objects, so a Command defined against either module works with
both, and so does a peer running Twisted's AMP. ``AmpBox``, ``QuitBox``,
``BinaryBoxProtocol``, ``AMP``, ``parse`` and ``parseString`` are txframe's: boxes
are decoded and encoded by txframe's codec (compiled when available), and ``AMP``
converts the arguments of the built-in Argument types without building a box in
between. They subclass Twisted's classes, and behave as they do
(see the README's "Differences from Twisted" for the defects fixed on the way).

Beyond Twisted: :class:`LargeString` and :class:`LargeUnicode` carry values over
65,535 bytes, and ``BinaryBoxProtocol.MAX_BOX_LENGTH`` bounds the memory a peer that
never finishes a box can make us hold.
"""

from __future__ import annotations

from types import MethodType
from typing import Any, cast

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols import amp as _amp
from twisted.protocols.amp import (
    ANSWER,
    ASK,
    COMMAND,
    ERROR,
    ERROR_CODE,
    ERROR_DESCRIPTION,
    MAX_KEY_LENGTH,
    MAX_VALUE_LENGTH,
    PROTOCOL_ERRORS,
    PYTHON_KEYWORDS,
    UNHANDLED_ERROR_CODE,
    UNKNOWN_ERROR_CODE,
    AmpError,
    AmpList,
    Argument,
    BadLocalReturn,
    Boolean,
    BoxDispatcher,
    Command,
    CommandLocator,
    DateTime,
    Decimal,
    Descriptor,
    Float,
    IArgumentType,
    IBoxReceiver,
    IBoxSender,
    IncompatibleVersions,
    Integer,
    InvalidSignature,
    IResponderLocator,
    ListOf,
    MalformedAmpBox,
    NoEmptyBoxes,
    OnlyOneTLS,
    Path,
    ProtocolSwitchCommand,
    ProtocolSwitched,
    RemoteAmpError,
    SimpleStringLocator,
    StartTLS,
    String,
    TooLong,
    UnhandledCommand,
    Unicode,
    UnknownRemoteError,
    utc,
)
from twisted.python.failure import Failure

from . import _reexport
from .basic import _Framed, _Recvd
from .framing import (
    BOOLEAN,
    BOXES,
    FLOAT,
    INTEGER,
    LIST,
    METHOD,
    STRING,
    UNICODE,
    BoxFramer,
    Schema,
    decode_boxes,
    encode_box,
)

# DateTime is public in Twisted's module though missing from its __all__
__all__ = [*_amp.__all__, "DateTime", "LargeString", "LargeUnicode"]


def __getattr__(name: str) -> Any:
    """Every other public name of :mod:`twisted.protocols.amp` (``ConnectionClosed``,
    ``CONNECTION_LOST``, ...), as Twisted's object."""
    return _reexport.attribute(_amp, name, __name__)


_log = Logger()

_wireName = _amp._wireNameToPythonIdentifier  # Twisted's rule, used when planning

# Twisted's own classes, kept: txframe.install() puts ours under these names in
# Twisted's module.
_TwistedBinaryBoxProtocol = _amp.BinaryBoxProtocol
_TwistedAMP = _amp.AMP


# -- boxes -----------------------------------------------------------------------------


class AmpBox(_amp.AmpBox):
    """A packet of the AMP protocol: a ``bytes`` to ``bytes`` dict (Twisted's, with
    the compiled encoder). Twisted's code accepts it wherever it takes an AmpBox."""

    __slots__ = ()

    def serialize(self) -> bytes:
        """The wire form of the box.

        :raises TooLong: for a key over 255 bytes or a value over 65,535.
        :raises TypeError: for a ``str`` key or value.
        :raises ValueError: for an empty key (Twisted writes it, ending the box early).
        """
        return encode_box(self, TooLong)


Box = AmpBox


class QuitBox(AmpBox, _amp.QuitBox):
    """An AmpBox that drops the connection once sent (an instance of both modules'
    QuitBox and AmpBox)."""

    __slots__ = ()


# Box types whose serialize() is the codec: sendBox encodes them directly.
_CODEC_SERIALIZE = {_amp.AmpBox.serialize, AmpBox.serialize}


def parse(fileObj: Any) -> list[AmpBox]:
    """The boxes in the file-like *fileObj*; an incomplete last box is dropped.

    :raises TooLong: for a key over 255 bytes (Twisted's raises AttributeError).
    """
    return decode_boxes(fileObj.read(), AmpBox, TooLong)


def parseString(data: bytes) -> list[AmpBox]:
    """The boxes in *data*; an incomplete last box is dropped.

    :raises TooLong: for a key over 255 bytes (Twisted's raises AttributeError).
    """
    return decode_boxes(data, AmpBox, TooLong)


# -- the box protocol ------------------------------------------------------------------


class BinaryBoxProtocol(_Recvd, _Framed, _TwistedBinaryBoxProtocol):
    """Twisted's BinaryBoxProtocol, with boxes decoded and encoded by txframe's codec.

    A key over 255 bytes is TooLong: the connection drops and the box receiver's
    ``stopReceivingBoxes`` gets ``TooLong(True, False, None, None)``, as in Twisted.
    A box bigger than ``MAX_BOX_LENGTH`` goes to :meth:`boxLengthExceeded`, which
    does the same with ``TooLong(False, False, None, None)``. Pausing holds boxes back
    between boxes; ``recvd`` is the data not yet parsed (the protocol switch hands it
    on).
    """

    #: The biggest box accepted: the bytes of its keys, values and their length
    #: prefixes, plus 64 for each pair (about what it takes in memory). Twisted has no
    #: limit.
    MAX_BOX_LENGTH = 16 * 1024 * 1024

    _boxFramer = BoxFramer  # the framer type; the tests swap in each implementation
    _encodeBox = staticmethod(encode_box)
    _boxLengthExceeded = False

    @classmethod
    def _framerType(cls) -> Any:
        return cls._boxFramer

    def _newFramer(self) -> Any:
        return self._boxFramer(AmpBox)

    def dataReceived(self, data: bytes) -> None:
        """Parse *data* into boxes, or hand it to the protocol switched to."""
        if self._justStartedTLS:
            self._justStartedTLS = False
        if self.innerProtocol is not None:
            self.innerProtocol.dataReceived(data)
            return
        framer = self._framer
        if framer is None:
            framer = self._getFramer()
        framer.feed(self, data)

    def sendBox(self, box: Any) -> None:
        """Send *box* to the peer (Twisted's rules; its ``serialize`` is ours).

        :raises ProtocolSwitched: if the protocol has been switched.
        :raises ConnectionLost: if the connection has been lost.
        """
        if self._locked:
            raise ProtocolSwitched("This connection has switched: no AMP traffic allowed.")
        if self.transport is None:
            raise ConnectionLost()
        if self._startingTLSBuffer is not None:
            self._startingTLSBuffer.append(box)
        elif getattr(type(box), "serialize", None) in _CODEC_SERIALIZE:
            self.transport.write(self._encodeBox(box, TooLong))
        else:
            self.transport.write(box.serialize())

    def boxLengthExceeded(self, length: int) -> None:
        """A box grew past ``MAX_BOX_LENGTH``: log a warning and drop the connection
        (the receiver is told ``TooLong(False, False, None, None)``). Nothing more is
        parsed."""
        _log.warn(
            "AMP peer {peer} sent a box over MAX_BOX_LENGTH ({limit} bytes): {length} "
            "bytes so far (keys, values, their length prefixes and 64 a pair); "
            "dropping the connection",
            peer=_peerName(self.transport), limit=self.MAX_BOX_LENGTH, length=length,
        )
        self._boxLengthExceeded = True
        if self.transport is not None:
            self.transport.loseConnection()

    def lengthLimitExceeded(self, length: int) -> None:
        """A key (or value) longer than AMP allows: log a warning, then Twisted's
        handling (drop the connection; the receiver is told
        ``TooLong(True, False, None, None)``). Nothing more is parsed."""
        _log.warn(
            "AMP peer {peer} sent a key of {length} bytes, over AMP's limit of "
            "{limit} bytes; dropping the connection",
            peer=_peerName(self.transport), length=length, limit=MAX_KEY_LENGTH,
        )
        super().lengthLimitExceeded(length)

    def _lostReason(self, reason: Failure) -> Failure:
        if self._boxLengthExceeded:
            return Failure(TooLong(False, False, None, None))
        return reason

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # Twisted's by name, not super(): Twisted's AMP.connectionLost calls its
        # module's BinaryBoxProtocol.connectionLost, which txframe.install() makes
        # this one, and super() would lead back to Twisted's AMP, endlessly.
        _TwistedBinaryBoxProtocol.connectionLost(self, self._lostReason(reason))


def _peerName(transport: Any) -> str:
    """The peer of *transport*, for a log line: ``host:port`` where it has them."""
    try:
        peer = transport.getPeer()
    except Exception:  # no transport, or one without an address
        return "(unknown)"
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    return f"{host}:{port}" if host is not None and port is not None else str(peer)


# -- arguments -------------------------------------------------------------------------

_KINDS = {String: STRING, Integer: INTEGER, Unicode: UNICODE, Boolean: BOOLEAN, Float: FLOAT}
_PLAIN_BOX_TYPES = (_amp.AmpBox, AmpBox)


# What an Argument converts with; one set on an instance customises it.
_CONVERTERS = (
    "toString", "fromString", "toStringProto", "fromStringProto", "toBox", "fromBox", "retrieve",
)


def _plainArgument(arg: Any) -> bool:
    """Whether *arg* goes to and from the box through to/fromStringProto alone."""
    kind = type(arg)
    return (
        isinstance(arg, Argument)
        and not isinstance(arg, Descriptor)  # sends a descriptor as it converts
        and kind.toBox is Argument.toBox
        and kind.fromBox is Argument.fromBox
        and kind.retrieve is Argument.retrieve
        and vars(arg).keys().isdisjoint(_CONVERTERS)
    )


def _field(name: Any, arg: Any, schemaType: Any) -> Any:
    """A Schema field for the argument *arg*, or None if it must go Twisted's way."""
    if type(name) is not bytes or not 0 < len(name) <= MAX_KEY_LENGTH:
        return None
    if not _plainArgument(arg):
        return None
    kind = _KINDS.get(type(arg))
    detail = None
    if kind is None:
        if type(arg) is ListOf:
            element = arg.elementType
            if not vars(element).keys().isdisjoint(_CONVERTERS):
                return None
            kind = LIST
            detail = (_KINDS.get(type(element), METHOD), element)
        elif type(arg) is AmpList:
            kind = BOXES
            detail = _schema(arg.subargs, schemaType)
            if detail is None:
                return None
        else:
            kind = METHOD
            detail = arg
    return (name, _wireName(name), kind, bool(arg.optional), detail)


def _schema(arguments: Any, schemaType: Any, fixed: tuple[bytes, ...] = (), **kw: Any) -> Any:
    fields = [_field(name, arg, schemaType) for name, arg in arguments]
    if None in fields:
        return None
    wire = {field[0] for field in fields}
    python = {field[1] for field in fields}
    if len(wire) != len(fields) or len(python) != len(fields) or wire & set(fixed):
        return None  # names that collide: Twisted's path has its own rules for them
    return schemaType(fields, too_long=TooLong, **kw)


def _overrides(cls: type, name: str, base: type = Command) -> bool:
    """Whether *cls* has its own *name* (a method or classmethod) rather than *base*'s."""
    mine = getattr(cls, name)
    theirs = getattr(base, name)
    return getattr(mine, "__func__", mine) is not getattr(theirs, "__func__", theirs)


class _Plan:
    """How one Command goes over the wire without boxes: its two schemas (None where
    its Arguments customise conversion), and which ends may use them (not where the
    Command customises what Twisted does)."""

    __slots__ = ("command", "name", "arguments", "responses", "request", "response", "calls",
                 "answers")

    def __init__(self, command: Any, schemaType: Any) -> None:
        self.command = command
        # copies, so that a schema changed in place is noticed (see current())
        self.name = command.commandName
        self.arguments = list(command.arguments)
        self.responses = list(command.response)
        self.request = _schema(
            self.arguments,
            schemaType,
            (COMMAND, ASK),
            constants=[(COMMAND, self.name)],
            tag_key=ASK,
        )
        self.response = _schema(self.responses, schemaType, (ANSWER,), tag_key=ANSWER)
        plain = self.request is not None and self.response is not None
        #: callRemote may encode the request and decode the answer
        self.calls = plain and not (
            any(
                _overrides(command, name)
                for name in ("__init__", "_doCommand", "makeArguments", "parseResponse")
            )
            or command.commandType not in _PLAIN_BOX_TYPES
        )
        #: a responder's arguments may be decoded and its answer encoded
        self.answers = plain and not (
            _overrides(command, "parseArguments")
            or _overrides(command, "makeResponse")
            or command.responseType not in _PLAIN_BOX_TYPES
        )

    def current(self) -> bool:
        """Whether the Command still has the name and schemas planned for."""
        command = self.command
        return (
            command.commandName is self.name
            and command.arguments == self.arguments
            and command.response == self.responses
        )


# -- AMP -------------------------------------------------------------------------------

# Methods whose overriding turns the fast paths off for a class: the fast way would
# skip them (or they would not expect what it does).
_SENDING = (
    "_sendBoxCommand", "sendBox", "_nextTag", "_answerReceived", "_errorReceived", "failAllOutgoing",
)
_DISPATCHING = (
    "locateResponder", "lookupFunction", "dispatchCommand", "_wrapWithSerialization", "_safeEmit",
    "sendBox",
)


class AMP(BinaryBoxProtocol, _TwistedAMP):
    """An AMP connection: Twisted's AMP, with boxes decoded and encoded by txframe and
    the built-in Argument types converted without building boxes.

    Subclasses, responders, Commands and locators work as with Twisted's; a Command or
    Argument type that customises conversion (or a subclass overriding a method of the
    dispatch chain) simply takes Twisted's path.
    """

    _schemaType = Schema  # the tests swap in each implementation
    _calls: Any = None  # tag -> _Plan, for answers to calls sent the fast way
    _fastCalls = True  # whether this class sends calls the fast way
    _fastResponders = True  # and answers them so

    _plans: dict[Any, _Plan] = {}  # Command -> _Plan, per class (for its _schemaType)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plans = {}
        cls._fastCalls = not any(_overrides(cls, name, AMP) for name in _SENDING)
        cls._fastResponders = not any(_overrides(cls, name, AMP) for name in _DISPATCHING)

    def _plan(self, command: Any) -> _Plan:
        plan = self._plans.get(command)
        if plan is None or not plan.current():
            plan = self._plans[command] = _Plan(command, self._schemaType)
        return plan

    def _emitting(self) -> bool:
        """Whether a box may go straight to the transport (sendBox would write it)."""
        return (
            self.boxSender is self
            and not self._locked
            and self.transport is not None
            and self._startingTLSBuffer is None
        )

    def _own(self, names: tuple[str, ...]) -> bool:
        """Whether none of *names* was replaced on this instance."""
        return self.__dict__.keys().isdisjoint(names)

    # -- calling --------------------------------------------------------------------

    def callRemote(self, commandType: Any, *a: Any, **kw: Any) -> Any:
        """Call *commandType* on the peer with the arguments *kw* (Twisted's API)."""
        if (
            a
            or not self._fastCalls
            or self._failAllReason is not None
            or not self._emitting()
            or not self._own(_SENDING)
        ):
            return super().callRemote(commandType, *a, **kw)
        try:
            plan = self._plan(commandType)
        except Exception:  # not a Command: Twisted's path fails the call
            return super().callRemote(commandType, *a, **kw)
        if not plan.calls or not plan.request.fits(kw):
            # Twisted's path, which also fails a call that misses arguments and raises
            # for unknown ones
            return super().callRemote(commandType, *a, **kw)
        request = plan.request
        values = request.convert(kw, self)  # raises as Twisted's makeArguments does
        self._counter = number = self._counter + 1
        tag = b"%x" % (number,)
        answered = commandType.requiresAnswer
        # raises as Twisted's sendBox does, the tag used up
        self.transport.write(  # type: ignore[union-attr]
            request.write(values, tag if answered else None)
        )
        if not answered:
            return None
        calls = self._calls
        if calls is None:
            calls = self._calls = {}
        calls[tag] = plan
        result = self._outstandingRequests[tag] = Deferred()
        return result

    def _answerReceived(self, box: Any) -> None:
        calls = self._calls
        plan = calls.pop(box[ANSWER], None) if calls else None
        if plan is None:
            super()._answerReceived(box)
            return None
        question = self._outstandingRequests.pop(box[ANSWER])
        question.addErrback(self.unhandledError)
        try:
            result = plan.response.decode(box, self)
        except Exception:
            question.errback(Failure())
        else:
            question.callback(result)
        return None

    def _errorReceived(self, box: Any) -> None:
        calls = self._calls
        plan = calls.pop(box[ERROR], None) if calls else None
        if plan is None:
            super()._errorReceived(box)
            return None
        question = self._outstandingRequests.pop(box[ERROR])
        question.addErrback(self.unhandledError)
        code = box[ERROR_CODE]
        description = box[ERROR_DESCRIPTION]
        if isinstance(description, bytes):
            description = description.decode("utf-8", "replace")
        # Twisted makes the error, then the Command maps a RemoteAmpError's code to
        # its own exception (or UnknownRemoteError)
        made = PROTOCOL_ERRORS.get(code, RemoteAmpError)
        try:
            error = made(code, description)
            if isinstance(error, RemoteAmpError):
                mapped = plan.command.reverseErrors.get(error.errorCode, UnknownRemoteError)
                error = mapped(error.description)
            failure = Failure(error)
        except Exception:
            failure = Failure()
        question.errback(failure)
        return None

    def failAllOutgoing(self, reason: Any) -> None:
        self._calls = None
        super().failAllOutgoing(reason)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # Twisted's AMP logs, then calls BinaryBoxProtocol.connectionLost by name:
        # Twisted's, or (installed) ours, which calls Twisted's.
        _TwistedAMP.connectionLost(self, self._lostReason(reason))

    # -- answering ------------------------------------------------------------------

    def _commandReceived(self, box: Any) -> None:
        found = None
        if self._fastResponders and self.locator is self and self._own(_DISPATCHING):
            found = self._commandDispatch.get(box[COMMAND])
        if found is None:
            super()._commandReceived(box)
            return None
        command, responder = found
        plan = self._plan(command)
        if not plan.answers:
            super()._commandReceived(box)
            return None
        ask = box.get(ASK)
        try:
            kw = plan.request.decode(box, self)
        except BaseException:  # as in Twisted, before the response rules apply
            return self._answer(fail(), ask)
        try:
            result = responder(self, **kw)
        except BaseException:
            return self._respond(fail(), command, responder, ask)
        if type(result) is not dict or ask is None or not self._emitting():
            return self._respond(maybeDeferred(_given, result), command, responder, ask)
        try:
            values = plan.response.convert(result, self)
        except BaseException:
            failure = Failure(_badLocalReturn(MethodType(responder, self), result, command))
            return self._answer(fail(failure).addErrback(_knownError, command), ask)
        try:
            data = plan.response.write(values, ask)
        except BaseException:  # as from sendBox in Twisted's answer
            self.unhandledError(Failure())
            return None
        self.transport.write(data)  # type: ignore[union-attr]
        return None

    def _respond(self, result: Deferred[Any], command: Any, responder: Any, ask: Any) -> None:
        """Answer a call whose responder has run, with Twisted's rules: serialize what it
        returned, map its known errors, then answer."""
        method = MethodType(responder, self)

        def serialize(objects: Any) -> Any:
            try:
                return command.makeResponse(objects, self)
            except BaseException:
                raise _badLocalReturn(method, objects, command)

        result.addCallback(serialize).addErrback(_knownError, command)
        self._answer(result, ask)

    def _answer(self, result: Deferred[Any], ask: Any) -> None:
        """Send the answer (or error) box *result* fires with, if the call asked for
        one; report a failure left over."""
        if ask is not None:
            result.addCallbacks(_answerBox, _errorBox, callbackArgs=(ask,), errbackArgs=(ask,))
            result.addCallback(self._safeEmit)
        result.addErrback(self.unhandledError)


def _badLocalReturn(method: Any, objects: Any, command: Any) -> BadLocalReturn:
    """Twisted's error for a response that does not serialize (call it where the
    serializer's exception is being handled)."""
    return BadLocalReturn(
        f"{method!r} returned {objects!r} and {command!r} could not serialize it", Failure()
    )


def _knownError(failure: Failure, command: Any) -> Failure:
    """A failure of one of the Command's errors, as the RemoteAmpError that answers it
    (others pass on)."""
    key = failure.trap(*command.allErrors)
    return Failure(
        RemoteAmpError(
            command.allErrors[key], str(failure.value), key in command.fatalErrors, local=failure
        )
    )


def _given(result: Any) -> Any:
    return result


def _answerBox(box: Any, ask: bytes) -> Any:
    box[ANSWER] = ask
    return box


def _errorBox(failure: Failure, ask: bytes) -> Any:
    """The box answering a call that failed: its code and description if it is a
    RemoteAmpError (closing the connection if fatal), else UNKNOWN (logged, closing)."""
    if failure.check(RemoteAmpError):
        error = cast(RemoteAmpError, failure.value)
        code = error.errorCode
        description = error.description
        if isinstance(description, str):
            description = description.encode("utf-8", "replace")
        box = QuitBox() if error.fatal else AmpBox()
    else:
        box = QuitBox()
        _log.failure("while receiving response to command", failure)
        code = UNKNOWN_ERROR_CODE
        description = b"Unknown Error"
    box[ERROR] = ask
    box[ERROR_DESCRIPTION] = description
    box[ERROR_CODE] = code
    return box


# -- values over 65,535 bytes ----------------------------------------------------------


class LargeString(Argument):
    """Bytes of any length (Twisted's String stops at 65,535).

    The first 65,535 bytes go under the argument's own name, so a short value is on
    the wire exactly as a String; the rest go in 65,535-byte pieces under
    ``<name>.2``, ``<name>.3``, ... of the same box. It is an ordinary Argument: a
    peer running Twisted's AMP that imports the same Command decodes it too. A
    txframe receiver accepts boxes up to ``MAX_BOX_LENGTH`` (16 MiB by default):
    raise it on the receiving side for bigger values.
    """

    def toBox(self, name: bytes, strings: Any, objects: Any, proto: Any) -> None:
        value = self.retrieve(objects, _wireName(name), proto)
        if self.optional and value is None:
            return
        data = self.toStringProto(value, proto)
        strings[name] = data[:MAX_VALUE_LENGTH]
        for number, start in enumerate(range(MAX_VALUE_LENGTH, len(data), MAX_VALUE_LENGTH), 2):
            strings[b"%s.%d" % (name, number)] = data[start : start + MAX_VALUE_LENGTH]

    def fromBox(self, name: bytes, strings: Any, objects: Any, proto: Any) -> None:
        first = self.retrieve(strings, name, proto)
        if self.optional and first is None:
            objects[_wireName(name)] = None
            return
        pieces = [first]
        number = 2
        while True:
            piece = strings.pop(b"%s.%d" % (name, number), None)
            if piece is None:
                break
            pieces.append(piece)
            number += 1
        objects[_wireName(name)] = self.fromStringProto(b"".join(pieces), proto)

    def toString(self, inObject: Any) -> bytes:
        return cast(bytes, inObject)

    def fromString(self, inString: bytes) -> Any:
        return inString


class LargeUnicode(LargeString):
    """Text of any length, as UTF-8, carried as :class:`LargeString` carries bytes."""

    def toString(self, inObject: str) -> bytes:
        return inObject.encode("utf-8")

    def fromString(self, inString: bytes) -> Any:
        return inString.decode("utf-8")


_ = (  # the rest of Twisted's names, re-exported as they are
    AmpError, BoxDispatcher, CommandLocator, DateTime, Decimal, IArgumentType, IBoxReceiver,
    IBoxSender, IResponderLocator, IncompatibleVersions, MAX_KEY_LENGTH, MalformedAmpBox,
    NoEmptyBoxes, OnlyOneTLS, PROTOCOL_ERRORS, PYTHON_KEYWORDS, Path,
    ProtocolSwitchCommand, SimpleStringLocator, StartTLS, UNHANDLED_ERROR_CODE,
    UnhandledCommand, utc,
)
