"""Drop-in replacement for :mod:`twisted.protocols.postfix`, and a socketmap server.

``PostfixTCPMapServer`` and its two factories keep Twisted's names and API (the
factory's ``get(key)`` returns a value, ``None`` or a Deferred) and speak tcp_table(5)
correctly: keys are %XX-decoded, every request gets exactly one reply, in request
order, whatever the factory returns or raises, and no reply passes Postfix's
4,096-byte limit. ``PostfixSocketmapServer`` and its factories serve several named
maps over socketmap_table(5), the protocol of current Postfix map helpers.

The rules of both protocols live in :mod:`txframe.mapproto`, shared with the asyncio
servers of ``txframe serve-map``; the bytes are split by txframe's line and netstring
framers. See the README's "Differences from Twisted".
"""

from __future__ import annotations

from collections import UserDict
from collections.abc import Mapping
from typing import Any, Union

from twisted.internet import defer, error, protocol
from twisted.logger import Logger, LogLevel
from twisted.protocols import policies, postfix as _postfix
from twisted.python.failure import Failure

from . import _reexport, basic, mapproto
from ._replies import Replies, message
from .mapproto import MalformedRequest, quote, unquote

# txframe's names, then every other public name of Twisted's module: a star import
# binds what Twisted's does
__all__ = _reexport.exported(_postfix, [
    "MalformedRequest",
    "PostfixMapError",
    "PostfixSocketmapDeferringDictServerFactory",
    "PostfixSocketmapDictServerFactory",
    "PostfixSocketmapServer",
    "PostfixTCPMapDeferringDictServerFactory",
    "PostfixTCPMapDictServerFactory",
    "PostfixTCPMapServer",
    "UnknownMapError",
    "quote",
    "unquote",
])


def __getattr__(name: str) -> Any:
    """Every other public name of :mod:`twisted.protocols.postfix`, as Twisted's object."""
    return _reexport.attribute(_postfix, name, __name__)


_log = Logger()

_TIMEOUTS = (TimeoutError, defer.TimeoutError, error.TimeoutError)


class PostfixMapError(Exception):
    """Raise this (or fail with it) from a factory's ``get`` to answer with an error
    of your choice, without it being logged as a failure of the lookup.

    A tcp_table client gets ``400 <reason>``; a socketmap client ``<status> <reason>``
    with *status* ``b"TEMP"`` (the default), ``b"TIMEOUT"`` or ``b"PERM"``.
    """

    status = b"TEMP"

    def __init__(self, reason: Any = "", status: bytes | None = None) -> None:
        if isinstance(reason, (bytes, bytearray)):
            reason = bytes(reason).decode("utf-8", "replace")
        super().__init__(reason)
        if status is not None:
            if status not in (b"TEMP", b"TIMEOUT", b"PERM"):
                raise ValueError(f"status must be TEMP, TIMEOUT or PERM, not {status!r}")
            self.status = status


class UnknownMapError(PostfixMapError):
    """A socketmap request named a map the factory does not serve (a ``PERM`` reply:
    Postfix reports it as a configuration error rather than a miss)."""

    status = b"PERM"

    def __init__(self, name: bytes) -> None:
        super().__init__(b"unknown map name: " + bytes(name))


# -- tcp_table ---------------------------------------------------------------------------


class PostfixTCPMapServer(Replies, basic.LineReceiver, policies.TimeoutMixin):
    """Postfix's tcp_table(5) protocol, server side.

    Each ``get <key>`` request is answered from ``self.factory.get(key)`` (the key
    %XX-decoded): a value (bytes, or text sent as UTF-8) is found, ``None`` is not
    found, and a Deferred (or coroutine) is waited for; an exception or failure is a
    ``400`` reply with its message. Replies leave in request order. Try it with
    Postfix's postmap::

        postmap -q KEY tcp:localhost:4242

    Other commands are methods ``do_<command>(params)``, given the rest of the request
    line (still encoded) or ``None``; answer them with :meth:`sendCode`.
    """

    delimiter = b"\n"
    #: The longest request line (without its newline): ``get`` and a key of up to
    #: socketmap's query limit (10,000 bytes) even if every byte is %XX-encoded.
    #: Postfix sends keys of any length, but those it looks up in practice --
    #: addresses and domains, from SMTP command lines of at most 2,048 bytes -- are
    #: far shorter. A longer line gets a 400 reply (Postfix then reports a temporary
    #: lookup error) and is skipped; the connection stays up.
    MAX_LENGTH = len(b"get ") + 3 * mapproto.SOCKETMAP_QUERY_LIMIT

    _skipCarry = b""

    def sendCode(self, code: Any, message: Any = b"") -> None:
        """Send a reply: *code* and *message*, which is sent as it is (a value must
        already be encoded with :func:`quote`), except that CR and LF are %XX-encoded
        so that the reply stays one line. Text is sent as UTF-8.

        Called while a ``do_`` method runs, it answers that request, after any
        earlier replies still outstanding.
        """
        if isinstance(message, str):
            message = message.encode("utf-8")
        if b"\n" in message or b"\r" in message:
            message = message.replace(b"\r", b"%0D").replace(b"\n", b"%0A")
        self._send(str(code).encode("ascii") + b" " + message + b"\n")

    def lineReceived(self, line: bytes) -> None:
        if self.timeOut is not None:
            self.resetTimeout()
        if line.endswith(b"\r"):  # a person at a terminal
            line = line[:-1]
        parts = line.split(None, 1)
        params: bytes | None
        if len(parts) == 2:
            command, params = parts
        elif parts:
            command = parts[0]
            # "get " is a request for the empty key (Postfix sends that); "get" has
            # no key at all.
            params = None if line.endswith(command) else b""
        else:
            command, params = b"", None
        try:
            handler = getattr(self, "do_" + command.decode("ascii"))
        except (UnicodeDecodeError, AttributeError):
            self.sendCode(400, mapproto.UNKNOWN_COMMAND)
            return
        try:
            handler(params)
        except Exception as e:
            name = command.decode("ascii")
            self._send(mapproto.tcp_reply(400, f"Command {name} failed: {e}"))

    def do_get(self, key: bytes | None) -> None:
        """Look up *key* (the request's encoded parameter) and answer."""
        if key is None:
            self.sendCode(400, b"Command 'get' takes 1 parameters.")
            return
        words = key.split()
        try:
            key = mapproto.tcp_key(mapproto.TcpRequest(b"get", tuple(words))) if words else b""
        except MalformedRequest as e:
            self._send(mapproto.tcp_reply(400, str(e)))
            return
        self._answer(self.factory.get, (key,), key)

    def do_put(self, keyAndValue: bytes | None) -> None:
        """``put`` is not implemented (tcp_table(5) documents it so): ``500``."""
        if keyAndValue is None or len(keyAndValue.split(None, 1)) < 2:
            self.sendCode(400, mapproto.PUT_ARITY)
        else:
            self.sendCode(500, mapproto.PUT_NOT_IMPLEMENTED)

    def lineLengthExceeded(self, line: bytes) -> None:
        """A request line longer than ``MAX_LENGTH``: answer ``400`` and skip it."""
        _log.warn("tcp_table request line longer than {limit} bytes", limit=self.MAX_LENGTH)
        self._send(mapproto.tcp_reply(400, mapproto.REQUEST_TOO_LONG))
        delimiter = self.delimiter
        end = line.find(delimiter)
        if end < 0:  # the line goes on: skip to its end
            self._skipCarry = line[len(line) - len(delimiter) + 1 :] if len(delimiter) > 1 else b""
            self.setRawMode()
        elif end + len(delimiter) < len(line):
            # Requests sent behind it without waiting (Postfix never does): the framer
            # has handed them over with the long line, and cannot take them back.
            self.setRawMode()
            self._closeWhenDone()

    def rawDataReceived(self, data: bytes) -> None:
        """The rest of a request line that was too long: skipped."""
        if self._closing:
            return
        delimiter = self.delimiter
        if self._skipCarry:
            data = self._skipCarry + data
        end = data.find(delimiter)
        if end < 0:
            self._skipCarry = data[len(data) - len(delimiter) + 1 :] if len(delimiter) > 1 else b""
            return
        self._skipCarry = b""
        self.setLineMode(data[end + len(delimiter) :])

    # -- replies ---------------------------------------------------------------------

    def _found(self, value: Any, key: bytes) -> bytes:
        if value is None:
            return b"500 \n"
        try:
            data = mapproto.as_value(value)
        except TypeError as e:
            _log.error("tcp_table lookup of {key!r}: {why}", key=key, why=str(e))
            return mapproto.tcp_reply(400, str(e))
        assert data is not None
        reply = mapproto.tcp_found(data)  # an empty value is not found (500)
        if reply[:1] == b"4":
            reply = b"400 value too long for a tcp_table reply\n"
            _log.error(
                "tcp_table lookup of {key!r}: the value ({size} bytes) does not fit in a"
                " reply of {limit} bytes",
                key=key,
                size=len(data),
                limit=mapproto.TCP_REPLY_LIMIT,
            )
        return reply

    def _failed(self, failure: Failure, key: bytes) -> bytes:
        if not failure.check(PostfixMapError):
            _log.failure("tcp_table lookup of {key!r} failed", failure, LogLevel.error, key=key)
        return mapproto.tcp_reply(400, message(failure))

    def _errorReply(self, reason: Any, *args: Any) -> bytes:
        return mapproto.tcp_reply(400, reason)


_PostfixTCPMapDict = UserDict[bytes, Union[str, bytes]]


class PostfixTCPMapDictServerFactory(_PostfixTCPMapDict, protocol.ServerFactory):
    """A factory for :class:`PostfixTCPMapServer` that serves itself: a dict of
    bytes keys to values (bytes, or text sent as UTF-8)."""

    protocol = PostfixTCPMapServer

    def __repr__(self) -> str:
        # Not the whole map: Twisted logs the factory's repr when it starts and stops.
        return f"<{type(self).__name__} of {len(self)} keys>"


class PostfixTCPMapDeferringDictServerFactory(protocol.ServerFactory):
    """A factory for :class:`PostfixTCPMapServer` serving the dict ``data``, whose
    ``get`` returns Deferreds."""

    protocol = PostfixTCPMapServer

    def __init__(self, data: Mapping[bytes, Any] | None = None) -> None:
        self.data: dict[bytes, Any] = {}
        if data is not None:
            self.data.update(data)

    def get(self, key: bytes) -> defer.Deferred[Any]:
        return defer.succeed(self.data.get(key))


# -- socketmap ---------------------------------------------------------------------------


class PostfixSocketmapServer(Replies, basic.NetstringReceiver, policies.TimeoutMixin):
    """Postfix's socketmap_table(5) protocol, server side: several named maps on one
    listener.

    Each request ``<name> <key>`` is answered from ``self.factory.get(name, key)``,
    which returns a value (bytes, or text sent as UTF-8), ``None`` (``NOTFOUND``) or a
    Deferred (or coroutine) of one. A :class:`PostfixMapError` chooses the error reply
    (:class:`UnknownMapError`: ``PERM``); a timeout is ``TIMEOUT``, any other
    exception ``TEMP``, with its message. Replies leave in request order. Try it
    with::

        postmap -q KEY socketmap:inet:localhost:4243:NAME

    A request longer than ``MAX_LENGTH`` or a malformed netstring gets a ``PERM``
    reply, after which the connection is closed.
    """

    #: The longest request (name, space and key) accepted: Postfix's query limit.
    MAX_LENGTH = mapproto.SOCKETMAP_QUERY_LIMIT
    #: The longest reply (without the netstring framing) Postfix accepts: a value
    #: that does not fit is a ``PERM`` reply, and logged.
    replyLimit = mapproto.SOCKETMAP_REPLY_LIMIT

    def sendReply(self, status: bytes, data: Any = b"") -> None:
        """Send a reply ``<status> <data>`` (text as UTF-8), after any earlier replies
        still outstanding."""
        self._send(mapproto.socketmap_reply(status, data, self.replyLimit))

    def stringReceived(self, request: bytes) -> None:
        if self.timeOut is not None:
            self.resetTimeout()
        if self._closing:
            return
        try:
            name, key = mapproto.parse_socketmap_request(request)
        except MalformedRequest as e:
            self._send(mapproto.socketmap_error(str(e), b"PERM"))
            return
        self._answer(self.factory.get, (name, key), name, key)

    def netstringParseError(self, reason: Any) -> None:
        """A malformed or too long request: a ``PERM`` reply, then the connection is
        closed (the stream cannot be followed any more)."""
        self.brokenPeer = 1
        if "longer than the maximum" in str(reason):
            why = b"request longer than %d bytes" % (self.MAX_LENGTH,)
        else:
            why = b"malformed netstring"
        _log.warn("socketmap: {why}; closing the connection", why=why.decode())
        self._send(mapproto.socketmap_error(why, b"PERM"))
        self._closeWhenDone()

    # -- replies ---------------------------------------------------------------------

    def _found(self, value: Any, name: bytes, key: bytes) -> bytes:
        try:
            data = mapproto.as_value(value)
        except TypeError as e:
            _log.error(
                "socketmap lookup of {key!r} in {name!r}: {why}", key=key, name=name, why=str(e)
            )
            return mapproto.socketmap_error(str(e))
        reply = mapproto.socketmap_found(data, self.replyLimit)  # b"": NOTFOUND
        if reply.split(b":", 1)[1][:4] == b"PERM":
            _log.error(
                "socketmap lookup of {key!r} in {name!r}: the value ({size} bytes) does"
                " not fit in a reply of {limit} bytes",
                key=key,
                name=name,
                size=len(data or b""),
                limit=self.replyLimit,
            )
        return reply

    def _failed(self, failure: Failure, name: bytes, key: bytes) -> bytes:
        if isinstance(failure.value, PostfixMapError):
            status = failure.value.status
        else:
            _log.failure(
                "socketmap lookup of {key!r} in {name!r} failed",
                failure,
                LogLevel.error,
                key=key,
                name=name,
            )
            status = b"TIMEOUT" if failure.check(*_TIMEOUTS) else b"TEMP"
        return mapproto.socketmap_error(message(failure), status)

    def _errorReply(self, reason: Any, *args: Any) -> bytes:
        return mapproto.socketmap_error(reason)


def _map_names(maps: Mapping[Any, Any] | None) -> dict[bytes, Any]:
    """*maps* with its names as bytes (text names are taken as UTF-8)."""
    if maps is None:
        return {}
    return {
        (name.encode("utf-8") if isinstance(name, str) else bytes(name)): table
        for name, table in maps.items()
    }


class PostfixSocketmapDictServerFactory(protocol.ServerFactory):
    """A factory for :class:`PostfixSocketmapServer` serving ``maps``: a dict of map
    names (bytes; text names are converted) to dicts of bytes keys to values.

    The socketmap counterpart of :class:`PostfixTCPMapDictServerFactory`; ``maps``
    may be changed (or replaced) at any time.
    """

    protocol = PostfixSocketmapServer

    def __init__(self, maps: Mapping[Any, Mapping[bytes, Any]] | None = None) -> None:
        self.maps: dict[bytes, Mapping[bytes, Any]] = _map_names(maps)

    def get(self, name: bytes, key: bytes) -> Any:
        """The value of *key* in the map *name*, or None.

        :raises UnknownMapError: if there is no map *name*.
        """
        table = self.maps.get(name)
        if table is None:
            raise UnknownMapError(name)
        return table.get(key)


class PostfixSocketmapDeferringDictServerFactory(PostfixSocketmapDictServerFactory):
    """:class:`PostfixSocketmapDictServerFactory` whose ``get`` returns Deferreds (the
    socketmap counterpart of :class:`PostfixTCPMapDeferringDictServerFactory`)."""

    def get(self, name: bytes, key: bytes) -> defer.Deferred[Any]:
        return defer.maybeDeferred(super().get, name, key)
