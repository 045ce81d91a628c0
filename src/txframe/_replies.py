"""What txframe's request/reply servers over Twisted share (Postfix maps, ident).

A request is answered by a lookup that returns a value at once, raises, or returns a
Deferred (or a coroutine). Replies leave in request order however the lookups
complete; memory stays bounded however fast requests arrive and however slowly the
client reads its replies.
"""

from __future__ import annotations

from types import CoroutineType
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from . import mapproto

_log = Logger()

# Why reading is held back (bit flags): too many lookups outstanding, or the client is
# not reading its replies (the transport's write buffer is full).
_PENDING = 1
_OUTPUT = 2


def message(failure: Failure) -> str:
    """What a failed lookup reports: its message, or the exception's name."""
    return failure.getErrorMessage() or getattr(failure.type, "__name__", "error")


def as_deferred(result: Any) -> defer.Deferred[Any] | None:
    """*result* as a Deferred if it is one, a Failure or a coroutine, else None (a
    value, to answer at once)."""
    if isinstance(result, defer.Deferred):
        return result
    if isinstance(result, Failure):
        return defer.fail(result)
    if isinstance(result, CoroutineType):
        return defer.Deferred.fromCoroutine(result)
    return None


class _OutputValve:
    """Registered with the transport as a streaming producer: the transport pauses
    it when its write buffer is full (a client not reading its replies) and resumes
    it when the buffer has drained. The server stops reading requests meanwhile."""

    __slots__ = ("_server",)

    def __init__(self, server: Replies) -> None:
        self._server = server

    def pauseProducing(self) -> None:
        self._server._hold(_OUTPUT)

    def resumeProducing(self) -> None:
        server = self._server
        if getattr(server.transport, "disconnecting", False):
            # loseConnection() was called: a transport with a producer registered
            # would wait for it for ever.
            server._unregisterValve()
        server._release(_OUTPUT)

    def stopProducing(self) -> None:
        pass


class Replies:
    """Mixed into a txframe line or netstring receiver (with Twisted's TimeoutMixin)
    that answers requests: replies in request order, however their lookups complete;
    closing once the replies before a fatal error are out; not reading more while
    ``MAX_PENDING`` replies are held up (behind lookups that returned Deferreds) or
    while the client does not read its replies; an idle timeout that never fires while
    a reply is outstanding; aborting a closing connection whose client does not read.

    Replies go straight to the transport while nothing is waiting (the common case:
    a lookup answered at once); an :class:`~txframe.mapproto.InOrder` is made when a
    lookup returns a Deferred. Subclasses format replies in ``_found``, ``_failed``
    and ``_errorReply``.
    """

    #: Seconds without a request before the connection is closed; None: never.
    timeout: float | None = None
    #: Stop reading while this many replies are held up (by lookups that returned
    #: Deferreds, and the replies after them); read again when half of them are sent.
    MAX_PENDING = 1000

    transport: Any
    #: Seconds a half-closed connection is read for, and a closing connection's
    #: replies may take to leave (a client not reading them) before it is aborted.
    _CLOSE_GRACE = 10
    _abortCall: Any = None
    _order: mapproto.InOrder | None = None
    _valve: _OutputValve | None = None
    _lost = False
    _closing = False
    _holds = 0  # _PENDING | _OUTPUT: why reading is held back

    # TimeoutMixin's (in the classes that mix this in)
    timeOut: Any
    setTimeout: Any
    resetTimeout: Any

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[misc]
        self.setTimeout(self.timeout)
        register = getattr(self.transport, "registerProducer", None)
        if register is not None and getattr(self.transport, "producer", None) is None:
            self._valve = _OutputValve(self)
            register(self._valve, True)

    def connectionLost(self, reason: Any = None) -> None:
        self._lost = True
        self.setTimeout(None)  # Twisted's leaves its timer running
        if self._abortCall is not None and self._abortCall.active():
            self._abortCall.cancel()
        super().connectionLost(reason)  # type: ignore[misc]

    def timeoutConnection(self) -> None:
        """The connection was idle for ``timeOut`` seconds: close it, unless a reply is
        still outstanding (then wait another period)."""
        if self._order:
            self.setTimeout(self.timeOut)
            return
        self._loseConnection()

    def _loseConnection(self) -> None:
        """Close once the replies written are sent -- or abort, if the client has not
        read them ``_CLOSE_GRACE`` seconds later."""
        self._unregisterValve()
        transport = self.transport
        transport.loseConnection()
        # Replies still in a TCP transport's write buffer: the client may never read
        # them, and the connection would never close.
        unsent = getattr(transport, "dataBuffer", b"") or getattr(transport, "_tempDataLen", 0)
        if unsent and self._abortCall is None and not self._lost:
            self._abortCall = self.callLater(self._CLOSE_GRACE, self._abort)  # type: ignore[attr-defined]

    def _abort(self) -> None:
        if not self._lost:
            _log.info("aborting a connection whose client does not read its replies")
            self.transport.abortConnection()

    # -- answering -------------------------------------------------------------------

    def _answer(self, lookup: Callable[..., Any], lookupArgs: tuple[Any, ...], *args: Any) -> None:
        """Answer the latest request with ``lookup(*lookupArgs)``: its value (formatted
        by ``_found(value, *args)``) or failure (``_failed(failure, *args)``), now or
        when the Deferred it returns fires."""
        try:
            value = lookup(*lookupArgs)
        except Exception:
            self._send(self._failed(Failure(), *args))
            return
        waiting = as_deferred(value)
        if waiting is None:
            self._send(self._found(value, *args))
        else:
            self._wait(waiting, *args)

    # -- sending ---------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self._lost:
            self.transport.write(data)

    def _send(self, reply: bytes) -> None:
        """Send the reply to the latest request: now, or after the earlier replies."""
        order = self._order
        if order:
            order.send_now(reply)
            if len(order) >= self.MAX_PENDING:  # held up behind a slow lookup
                self._hold(_PENDING)
        elif not self._lost:
            self.transport.write(reply)

    def _wait(self, result: defer.Deferred[Any], *args: Any) -> None:
        """Reserve the latest request's place in the replies and answer when *result*
        fires."""
        order = self._order
        if order is None:
            order = self._order = mapproto.InOrder(self._write)
        place = order.reserve()
        result.addCallbacks(self._found, self._failed, callbackArgs=args, errbackArgs=args)
        result.addErrback(self._internalError, *args)
        result.addCallback(self._fill, place)
        result.addErrback(self._unsent)
        if len(order) >= self.MAX_PENDING:
            self._hold(_PENDING)

    def _fill(self, reply: bytes, place: int) -> None:
        order = self._order
        assert order is not None
        order.fill(place, reply)
        if self._closing and not order:
            self._close()
        elif len(order) <= self.MAX_PENDING // 2:
            self._release(_PENDING)
        if self.timeOut is not None:
            self.resetTimeout()

    def _internalError(self, failure: Failure, *args: Any) -> bytes:
        _log.failure("formatting a reply failed", failure, LogLevel.error)
        return self._errorReply("internal error", *args)

    def _unsent(self, failure: Failure) -> None:
        _log.failure("sending a reply failed", failure, LogLevel.error)

    # -- holding back ----------------------------------------------------------------

    def _hold(self, reason: int) -> None:
        if not self._holds and not self._lost:
            self.pauseProducing()  # type: ignore[attr-defined]
        self._holds |= reason

    def _release(self, reason: int) -> None:
        if self._holds & reason:
            self._holds &= ~reason
            if self._holds or self._lost or self._closing:
                return
            if not getattr(self.transport, "disconnecting", False):
                self.resumeProducing()  # type: ignore[attr-defined]

    # -- closing ---------------------------------------------------------------------

    def _closeWhenDone(self) -> None:
        """Close once every reply up to now is sent; read nothing more meanwhile."""
        self._closing = True
        if not self._order:
            self._close()

    def _unregisterValve(self) -> None:
        # A transport with a producer registered does not close until it is gone.
        if self._valve is not None:
            self._valve = None
            self.transport.unregisterProducer()

    def _close(self) -> None:
        transport = self.transport
        if transport is None or self._lost:
            return
        self._unregisterValve()
        # Close our side only where we can, and keep reading (and disregarding) until
        # the client closes: closing with its data unread would reset the connection,
        # and a client still writing a long request might never read our reply.
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is not None:
            if self._holds:
                self._holds = 0
                self.resumeProducing()  # type: ignore[attr-defined]
            half_close()
            # ... for a while: then the idle timeout closes the connection.
            self.setTimeout(min(self.timeOut or self._CLOSE_GRACE, self._CLOSE_GRACE))
        else:
            self._loseConnection()

    # -- per protocol ----------------------------------------------------------------

    def _found(self, value: Any, *args: Any) -> bytes:
        raise NotImplementedError

    def _failed(self, failure: Failure, *args: Any) -> bytes:
        raise NotImplementedError

    def _errorReply(self, reason: Any, *args: Any) -> bytes:
        raise NotImplementedError
