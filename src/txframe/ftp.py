"""Drop-in replacement for :mod:`twisted.protocols.ftp`, with txframe's data channel.

``DTP`` and ``DTPFactory`` have the API of Twisted's (and subclass them); ``FTP`` and
``FTPFactory`` are Twisted's FTP server with them as its data channel. Every other name
of Twisted's module is available here too, as Twisted's own object, so this serves
Twisted's FTP server on txframe's DTP::

    from twisted.protocols import ftp   # before
    from txframe import ftp             # after

    factory = ftp.FTPFactory(portal)    # a Twisted FTPFactory whose DTP is txframe's

What differs from Twisted (see the README's "Differences from Twisted"): data that
arrives before a consumer is registered is held up to ``DTP.bufferLimit`` bytes, then
the transport is paused until ``registerConsumer``, and none of it is lost;
``write()`` without a connection raises :class:`DTPNotConnectedError`; LIST lines are
made by txframe's formatter (compiled when available) and a listing is streamed with
flow control; a failed or aborted transfer is reported as such.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer, interfaces
from twisted.internet import error
from twisted.protocols import ftp as _ftp
from twisted.python import filepath
from twisted.python.failure import Failure
from zope.interface import implementer

from . import _reexport
from .framing import ListFormatter

# txframe's names, then every other public name of Twisted's module (a star import
# binds what Twisted's does)
__all__ = _reexport.exported(_ftp, [
    "DTP",
    "DTPBufferOverflowError",
    "DTPFactory",
    "DTPNotConnectedError",
    "FTP",
    "FTPFactory",
])


def __getattr__(name: str) -> Any:
    """Every other public name of :mod:`twisted.protocols.ftp`, as Twisted's object."""
    return _reexport.attribute(_ftp, name, __name__)


class DTPNotConnectedError(_ftp.FTPError):
    """``DTP.write()`` was called while the data connection is not open (not yet
    made, or already lost). Twisted's DTP raises a bare ``Exception`` there."""


class DTPBufferOverflowError(_ftp.FTPError):
    """The transport went on delivering data after the DTP paused it, past
    ``16 * DTP.bufferLimit`` bytes held: the data connection was aborted and the
    transfer fails with this error."""


#: The keys ``FTP.ftp_LIST`` asks the shell for, in the order LIST lines use them.
_LIST_KEYS = ("size", "directory", "permissions", "hardlinks", "modified", "owner", "group")

#: How much a transport may deliver after being paused before the DTP gives up on it,
#: as a multiple of ``bufferLimit``.
_OVERRUN_FACTOR = 16


def _cleanClose(reason: Any) -> bool:
    """Whether a connectionLost *reason* is an orderly close (stream mode's end of
    file), not a reset or an abort. Anything but a Failure counts as orderly."""
    return not isinstance(reason, Failure) or reason.check(error.ConnectionDone) is not None


@implementer(interfaces.IConsumer, interfaces.IPushProducer)
class DTP(_ftp.DTP):
    """The data transfer process: one FTP data connection, with the API of Twisted's.

    As an ``IConsumer`` (RETR, LIST, NLST) it passes ``write``, ``registerProducer``
    and ``unregisterProducer`` to its transport, and ``unregisterProducer`` closes the
    connection. As a push producer (STOR) it hands what it receives to the consumer
    given to :meth:`registerConsumer`, which may pause it.

    Data received before a consumer is registered is held, at most ``bufferLimit``
    bytes plus what the transport delivers in the same read (64 KiB for Twisted's
    TCP): then the transport is paused until :meth:`registerConsumer` hands it all, in
    order, to the consumer.
    """

    #: Bytes held for a consumer not yet registered (or paused) before the transport is
    #: paused.
    bufferLimit = 65536
    #: Bytes of LIST lines formatted per step of :meth:`sendListResponses`.
    listChunkSize = 65536
    #: Bytes a pull producer (RETR's file sender: 16 KiB a call) is asked for each time
    #: the transport has sent everything (Twisted's DTP asks for one call's worth).
    producerBatch = 262144
    #: The transport's read size while a consumer takes the data (STOR), when the
    #: transport has one (Twisted's TCP: ``bufferSize``, 64 KiB).
    consumerReadSize = 262144

    #: Makes LIST lines (compiled when available); Twisted's Permissions and RWX are
    #: read without calling ``shorthand()``.
    _formatter: Any = ListFormatter(filepath.Permissions, filepath.RWX)
    #: Whether LIST lines may go straight from the formatter (no override of the
    #: methods Twisted's LIST calls).
    _plainListing = True

    isConnected = False
    #: A TCP transport in practice (``None`` in some of Twisted's own tests): its
    #: producer methods and ``bufferSize`` are used, beyond ``ITransport``.
    transport: Any = None
    factory: Any
    pi: Any
    _cons: Any = None
    _onConnLost: defer.Deferred[Any] | None = None
    _reason: Any = None  # connectionLost's
    _failure: Failure | None = None  # a failure before a consumer was registered
    _discarding = False  # after stopProducing or a failure: drop what arrives
    _consumerPaused = False
    _transportPaused = False
    _draining = False
    _pull: Any = None  # the _PullBatcher of a registered pull producer
    _written = 0  # bytes written, for _PullBatcher
    _held: deque[bytes] | None = None  # received, not yet given to the consumer
    _heldBytes = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plainListing = (
            cls.sendLine is DTP.sendLine
            and cls._formatOneListResponse is DTP._formatOneListResponse
            and cls.sendListResponse is DTP.sendListResponse
        )

    # -- connection ------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.isConnected = True
        self.factory.deferred.callback(None)

    def connectionLost(self, reason: Any = None) -> None:
        self.isConnected = False
        self._reason = reason
        self._maybeFinish()

    # -- IConsumer: what goes out ----------------------------------------------------

    def sendLine(self, line: bytes) -> None:
        """Write *line* and CRLF to the transport."""
        self.transport.write(line + b"\r\n")

    def _formatOneListResponse(
        self, name: Any, size: Any, directory: Any, permissions: Any, hardlinks: Any,
        modified: Any, owner: Any, group: Any,
    ) -> bytes:
        """One LIST line without its CRLF, byte for byte Twisted's (see
        ``twisted.protocols.ftp.DTP._formatOneListResponse``)."""
        formatter = self._formatter.format_entry
        if self._encoding != "latin-1":  # Twisted's encodes owner and group with it
            formatter = super()._formatOneListResponse
        line: bytes = formatter(
            name, size, directory, permissions, hardlinks, modified, owner, group
        )
        return line

    def sendListResponse(self, name: Any, response: Sequence[Any]) -> None:
        """Send the LIST line of *name* (bytes) and *response* (size, directory,
        permissions, hard links, modified, owner, group)."""
        self.sendLine(self._formatOneListResponse(name, *response))

    def sendListResponses(self, entries: Sequence[Any]) -> defer.Deferred[None]:
        """Send the LIST lines of *entries*, ``(name, attrs)`` pairs as
        ``IFTPShell.list`` returns them (names as ``str``, sent as UTF-8 with the
        bytes of undecodable file names restored, or ``bytes``), a chunk at a time as
        the transport asks for more.

        Returns a Deferred that fires once every line is written to the transport, or
        fails with ``twisted.internet.error.ConnectionLost`` if the connection goes first, or with the
        exception of an entry that cannot be formatted (the lines before it are
        sent). The connection is left open either way.
        """
        return _ListSender(self, entries).start()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register *producer* with the transport; a pull producer is asked for up to
        ``producerBatch`` bytes each time the transport wants more."""
        if streaming or self.producerBatch <= 0:
            self.transport.registerProducer(producer, streaming)
            return
        self._pull = _PullBatcher(self, producer)
        self.transport.registerProducer(self._pull, False)

    def unregisterProducer(self) -> None:
        """Unregister the producer and close the connection (the transfer is over)."""
        self._pull = None
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def write(self, data: bytes) -> None:
        """Write *data* to the connection.

        :raises DTPNotConnectedError: if the connection is not open.
        """
        if not self.isConnected:
            raise DTPNotConnectedError(
                "the FTP data connection is not open (not yet connected, or closed)"
            )
        self._written += len(data)
        self.transport.write(data)

    # -- push producer: what comes in ------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._discarding:
            return
        if self._cons is not None and not self._held and not self._consumerPaused:
            self._deliver(data)
            return
        if self._held is None:
            self._held = deque()
        self._held.append(data)
        self._heldBytes += len(data)
        if self._heldBytes > _OVERRUN_FACTOR * self.bufferLimit:
            self._fail(
                Failure(
                    DTPBufferOverflowError(
                        f"{self._heldBytes} bytes received while the transport was "
                        "paused; data connection aborted"
                    )
                )
            )
            return
        self._flowControl()

    def registerConsumer(self, cons: Any) -> defer.Deferred[None]:
        """Hand everything received, held data first, to *cons* (an ``IConsumer``;
        this DTP registers as its streaming producer).

        Returns a Deferred that fires, after ``cons.unregisterProducer()``, once the
        connection is closed and everything was written: with ``None`` for an orderly
        close (the end of a stream-mode transfer), or with the failure of a reset
        connection, of ``cons.write`` (the connection is then aborted) or a
        :class:`DTPBufferOverflowError`.
        """
        if self._cons is not None:
            raise RuntimeError("this DTP already has a consumer")
        self._cons = cons
        d: defer.Deferred[None] = defer.Deferred()
        d.addBoth(self._unregisterConsumer)
        self._onConnLost = d
        cons.registerProducer(self, True)
        if self._failure is not None:
            failure, self._failure = self._failure, None
            self._finish(failure)
        else:
            self._setReadSize(self.consumerReadSize)
            self._drain()
            self._flowControl()
            self._maybeFinish()
        return d

    def pauseProducing(self) -> None:
        self._consumerPaused = True
        self._flowControl()

    def resumeProducing(self) -> None:
        self._consumerPaused = False
        self._drain()
        self._flowControl()
        self._maybeFinish()

    def stopProducing(self) -> None:
        """The consumer wants no more: drop what is held and close the connection."""
        self._discard()
        if self.transport is not None:
            self.transport.stopProducing()

    # -- internals -------------------------------------------------------------------

    def _deliver(self, data: bytes) -> None:
        try:
            self._cons.write(data)
        except Exception:
            self._fail(Failure())

    def _drain(self) -> None:
        """Write held data to the consumer until it pauses (re-entrant calls, from the
        consumer's write, leave it to the outer one)."""
        if self._draining:
            return
        self._draining = True
        try:
            held = self._held
            while held and self._cons is not None and not self._consumerPaused:
                data = held.popleft()
                self._heldBytes -= len(data)
                self._deliver(data)
        finally:
            self._draining = False

    def _flowControl(self) -> None:
        """Pause the transport while the consumer is paused or too much is held."""
        pause = self._consumerPaused or self._heldBytes >= self.bufferLimit
        if pause == self._transportPaused or not self.isConnected or self.transport is None:
            return
        self._transportPaused = pause
        if pause:
            self.transport.pauseProducing()
        else:
            self.transport.resumeProducing()

    def _setReadSize(self, size: int) -> None:
        if self.isConnected and isinstance(getattr(self.transport, "bufferSize", None), int):
            self.transport.bufferSize = max(size, self.transport.bufferSize)

    def _maybeFinish(self) -> None:
        """Fire the consumer's Deferred once the connection is closed and drained."""
        if self._onConnLost is not None and not self.isConnected and not self._held:
            reason = self._reason
            self._finish(None if _cleanClose(reason) else reason)

    def _finish(self, result: Failure | None) -> None:
        d, self._onConnLost = self._onConnLost, None
        if d is None:
            return
        if result is None:
            d.callback(None)
        else:
            d.errback(result)

    def _unregisterConsumer(self, result: Any) -> Any:
        cons, self._cons = self._cons, None
        if cons is not None:
            cons.unregisterProducer()
        return result

    def _discard(self) -> None:
        self._discarding = True
        self._held = None
        self._heldBytes = 0

    def _fail(self, failure: Failure) -> None:
        """The transfer cannot go on: drop everything, abort the connection, and fail
        the consumer's Deferred (or the next registerConsumer's)."""
        self._discard()
        if self._onConnLost is not None:
            self._finish(failure)
        else:
            self._failure = failure
        if self.isConnected and self.transport is not None:
            abort = getattr(self.transport, "abortConnection", None)
            (abort or self.transport.loseConnection)()


@implementer(interfaces.IPullProducer)
class _PullBatcher:
    """Stands for a pull producer registered with a DTP: asks it for up to
    ``producerBatch`` bytes each time the transport wants more, so that a file sender
    writing 16 KiB a call costs one reactor turn per batch, not per call."""

    def __init__(self, dtp: DTP, producer: Any) -> None:
        self._dtp = dtp
        self._producer = producer

    def resumeProducing(self) -> None:
        dtp, producer = self._dtp, self._producer
        stop = dtp._written + dtp.producerBatch
        while dtp._pull is self and dtp._written < stop:
            before = dtp._written
            producer.resumeProducing()
            if dtp._written == before:  # nothing now (it may write later)
                break

    def stopProducing(self) -> None:
        self._producer.stopProducing()

    def pauseProducing(self) -> None:  # only streaming producers are paused
        pass


@implementer(interfaces.IPullProducer)
class _ListSender:
    """Streams a listing to a DTP's transport, a chunk per ``resumeProducing``."""

    def __init__(self, dtp: DTP, entries: Sequence[Any]) -> None:
        self._dtp = dtp
        self._entries: Sequence[Any] | None = entries
        self._next = 0
        self._deferred: defer.Deferred[None] = defer.Deferred()

    def start(self) -> defer.Deferred[None]:
        self._dtp.transport.registerProducer(self, False)
        return self._deferred

    def resumeProducing(self) -> None:
        entries = self._entries
        if entries is None:
            return
        dtp = self._dtp
        try:
            if dtp._plainListing and dtp._encoding == "latin-1":
                chunk, self._next = dtp._formatter.format_lines(
                    entries, self._next, dtp.listChunkSize
                )
                dtp.transport.write(chunk)
            else:  # a subclass formats or sends lines its own way
                stop = min(self._next + 256, len(entries))
                for name, attrs in entries[self._next:stop]:
                    dtp.sendListResponse(_encodeName(name), attrs)
                    self._next += 1
        except Exception:
            self._finish(Failure())
            return
        if self._next >= len(entries):
            self._finish(None)

    def stopProducing(self) -> None:
        """The transport is gone (it drops its producer itself)."""
        self._finish(
            Failure(error.ConnectionLost("the data connection closed during a listing")),
            unregister=False,
        )

    def pauseProducing(self) -> None:  # only streaming producers are paused
        pass

    def _finish(self, result: Failure | None, unregister: bool = True) -> None:
        if self._entries is None:
            return
        self._entries = None
        if unregister:
            self._dtp.transport.unregisterProducer()
        if result is None:
            self._deferred.callback(None)
        else:
            self._deferred.errback(result)


def _encodeName(name: Any) -> Any:
    """A name as LIST and NLST send it: ``str`` as UTF-8, the bytes of an undecodable
    file name (which ``os.listdir`` gives as lone surrogates) restored; ``bytes`` as
    they are."""
    if isinstance(name, str):
        return name.encode("utf-8", "surrogateescape")
    return name


class DTPFactory(_ftp.DTPFactory):
    """Twisted's DTPFactory (connection state, timeout, one connection only) building
    ``protocol`` (txframe's :class:`DTP`) instances."""

    protocol: type[DTP] = DTP

    def buildProtocol(self, addr: Any) -> DTP | None:
        if self._state is not self._IN_PROGRESS:
            return None  # timed out, failed, or already connected once
        self._state = self._FINISHED
        self.cancelTimeout()
        p = self.protocol()
        p.factory = self
        p.pi = self.pi
        self.pi.dtpInstance = p
        return p

    def setTimeout(self, seconds: float) -> None:
        """Fail the connection attempt after *seconds* (replacing an earlier timeout;
        Twisted's leaves the earlier one running)."""
        self.cancelTimeout()
        super().setTimeout(seconds)


class FTP(_ftp.FTP):
    """Twisted's FTP server protocol, with :class:`DTPFactory` (``dtpFactoryClass``)
    making its data connections.

    Twisted's PASV, EPSV, PORT and EPRT create a ``twisted.protocols.ftp.DTPFactory``
    and assign it to ``dtpFactory``; here that assignment puts an equivalent
    ``dtpFactoryClass`` in its place, so those commands run unchanged. LIST streams
    its lines from txframe's formatter; a previous data connection still open when a
    new one is set up, or when the control connection closes, is closed.
    """

    #: The DTPFactory class data connections are made with.
    dtpFactoryClass: type[DTPFactory] = DTPFactory

    _dtpFactory: Any = None

    @property
    def dtpFactory(self) -> Any:
        return self._dtpFactory

    @dtpFactory.setter
    def dtpFactory(self, factory: Any) -> None:
        if type(factory) is _ftp.DTPFactory:  # just made by a command of Twisted's
            factory = self.dtpFactoryClass(factory.pi, factory.peerHost, factory._reactor)
        self._dtpFactory = factory

    def _encodeName(self, name: Any) -> Any:
        """A name as LIST and NLST send it: text as UTF-8, with the bytes of an
        undecodable file name restored (Twisted's fails on them); bytes as they are."""
        return _encodeName(name)

    def cleanupDTP(self) -> None:
        dtp = self.dtpInstance
        super().cleanupDTP()
        transport = getattr(dtp, "transport", None)
        if getattr(dtp, "isConnected", False) and transport is not None:
            transport.loseConnection()  # after what is still being written

    def ftp_LIST(self, path: str = "") -> defer.Deferred[Any]:
        """LIST, as Twisted's, with the lines streamed from txframe's formatter and the
        transfer reported as aborted (426) if the client closes the data connection
        before the end."""
        dtp = self.dtpInstance
        if (
            not isinstance(dtp, DTP)
            or not dtp.isConnected
            or type(self)._encodeName is not FTP._encodeName
        ):
            twisteds: defer.Deferred[Any] = super().ftp_LIST(path)
            return twisteds  # Twisted's way (and its errors)
        if path.lower() in ("-a", "-l", "-la", "-al"):  # ls flags some clients send
            path = ""
        try:
            segments = _ftp.toSegments(self.workingDirectory, path)
        except _ftp.InvalidPath:
            return defer.fail(_ftp.FileNotFoundError(path))
        d = self.shell.list(segments, _LIST_KEYS)
        d.addCallback(self._sendListing, dtp)
        return d

    def _sendListing(self, entries: Sequence[Any], dtp: DTP) -> defer.Deferred[Any]:
        self.reply(_ftp.DATA_CNX_ALREADY_OPEN_START_XFR)

        def sent(_: None) -> tuple[str]:
            dtp.transport.loseConnection()
            return (_ftp.TXFR_COMPLETE_OK,)

        def failed(failure: Failure) -> Any:
            dtp.transport.loseConnection()
            if failure.check(error.ConnectionLost):
                return (_ftp.CNX_CLOSED_TXFR_ABORTED,)
            return failure  # an entry LIST cannot format: Twisted's 550, logged

        return dtp.sendListResponses(entries).addCallbacks(sent, failed)


class FTPFactory(_ftp.FTPFactory):
    """Twisted's FTPFactory, making txframe's :class:`FTP` (and so its DTP)."""

    protocol = FTP
