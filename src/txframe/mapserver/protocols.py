"""The asyncio protocols of serve-map: tcp_table(5) and socketmap_table(5).

The protocols parse nothing themselves: bytes go to txframe's framers (a line framer
for tcp_table, a netstring framer for socketmap), and the rules of both protocols are
:mod:`txframe.mapproto`'s. A request's key is folded by the key rule (:mod:`.keys`)
and handed to its map's :class:`~.sources.Source`, which returns the whole reply:
bytes (in memory: sent at once) or an awaitable (sent when it completes, in request
order, through :class:`txframe.mapproto.InOrder`; reading pauses while too many wait).

Nothing here imports Twisted.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, Callable, Iterable

from ..framing import LineFramer, NetstringFramer, Setting
from ..mapproto import (
    NOT_FOUND,
    PUT_ARITY,
    PUT_NOT_IMPLEMENTED,
    REQUEST_TOO_LONG,
    SOCKETMAP_QUERY_LIMIT,
    UNKNOWN_COMMAND,
    InOrder,
    MalformedRequest,
    parse_socketmap_request,
    parse_tcp_request,
    socketmap_error,
    tcp_error,
    tcp_key,
    tcp_reply,
    unquote,
)
from .keys import Fold
from .logs import describe_peer
from .sources import Source

log = logging.getLogger("txframe.serve_map")

_PERCENT = 0x25  # "%": see mapproto._PERCENT

#: Replies a connection may have waiting on asynchronous lookups before it stops
#: reading requests.
MAX_WAITING = 64
#: How long a client that sent an over-long request may go on sending it before it
#: is answered: the rest of the request is read and dropped (so the client, still
#: writing, reads the answer instead of a reset), up to this many bytes ...
DRAIN_LIMIT = 1 << 20
#: ... or until it has sent nothing for this long.
DRAIN_QUIET = 0.3


def tcp_line_limit(max_query: int) -> int:
    """The longest tcp_table request line for keys of up to *max_query* bytes: a key is
    sent %XX-encoded, up to three bytes for each of its own, after ``get SPACE``."""
    return 4 + 3 * max_query


class Stats:
    """What a server counts besides each map's own counters."""

    __slots__ = ("errors", "connections", "connections_total")

    def __init__(self) -> None:
        self.errors = {"tcp": 0, "socketmap": 0}
        self.connections = {"tcp": 0, "socketmap": 0}
        self.connections_total = {"tcp": 0, "socketmap": 0}


class MapServer:
    """The state a process's connections share: the sources, the key rule, the
    counters and the open connections (for idle timeouts and a graceful shutdown)."""

    def __init__(
        self,
        sources: Iterable[Source],
        fold: Fold = None,
        max_query: int = SOCKETMAP_QUERY_LIMIT,
    ) -> None:
        self.sources = {source.name: source for source in sources}
        # socketmap requests name their map in bytes
        self.by_name = {
            name.encode("utf-8", "surrogateescape"): source
            for name, source in self.sources.items()
        }
        self.fold = fold
        self.max_query = max_query
        self.stats = Stats()
        self.connections: set[Any] = set()
        self.socketmap_protocol = _with_settings(SocketmapProtocol, {}, MAX_LENGTH=max_query)

    def tcp_factory(self, source: Source) -> Callable[[], asyncio.Protocol]:
        protocol = _with_settings(
            TcpTableProtocol, {}, delimiter=b"\n", MAX_LENGTH=tcp_line_limit(self.max_query)
        )
        return partial(protocol, self, source)

    def socketmap_factory(self) -> Callable[[], asyncio.Protocol]:
        return partial(self.socketmap_protocol, self)

    def sweep_idle(self) -> None:
        """Called every quarter of the idle timeout: close connections that completed
        no request during the last four calls."""
        for conn in list(self.connections):
            conn._idle += 1
            if conn._idle > 4:
                log.debug("closing a connection idle for too long (%s)", conn.peer())
                conn.close()

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            if conn._transport is not None:
                conn._transport.abort()


def _with_settings(base: type, attrs: dict[str, Any], **values: Any) -> type:
    """A subclass of *base* with *attrs* and the settings its framer reads
    (``delimiter``, ``MAX_LENGTH``): compiled Settings in a compiled build, so that the
    framer reads them once per connection instead of after every frame; plain
    attributes in a pure one, which Python reads fastest."""
    attrs = {"__slots__": (), **attrs}
    for name, value in values.items():
        if Setting is None:
            attrs[name] = value
        else:
            attrs[name] = Setting(name, value)
    return type(base.__name__, (base,), attrs)


def _discard(data: bytes) -> None:
    pass


class _MapProtocol(asyncio.Protocol):
    """What both map protocols share: the connection bookkeeping, flow control and
    replies from asynchronous lookups.

    The protocol is its framer's sink. ``transport`` (what the framer reads) stays
    ``None``; the asyncio transport is ``_transport``. ``data_received`` is the
    framer's ``feed`` bound to this protocol, so bytes go straight to the framer.
    When the client does not read its replies (``pause_writing``), or too many replies
    wait on lookups, the framer is paused and reading stops, so neither replies nor
    requests pile up.

    ``_write`` sends a reply in bytes: the transport's ``write`` while every reply so
    far was sent, ``_reply`` while some wait. ``_send`` takes a source's answer, bytes
    or an awaitable.
    """

    __slots__ = (
        "data_received",
        "_framer",
        "_server",
        "_transport",
        "_write",
        "_fold",
        "_idle",
        "_closing",
        "_write_paused",
        "_order",
    )

    transport = None
    kind = ""

    def __init__(self, server: MapServer, framer: Any) -> None:
        self._server = server
        self._framer = framer
        # the loop calls the framer straight (an instance attribute over the method)
        self.data_received = partial(framer.feed, self)  # type: ignore[method-assign]
        self._transport: Any = None
        self._write: Any = None
        self._fold = server.fold
        self._idle = 0
        self._closing = False
        self._write_paused = False
        self._order: InOrder | None = None

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self._write = transport.write
        server = self._server
        server.connections.add(self)
        server.stats.connections[self.kind] += 1
        server.stats.connections_total[self.kind] += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s connection from %s", self.kind, self.peer())

    def connection_lost(self, exc: Exception | None) -> None:
        server = self._server
        if self in server.connections:
            server.connections.discard(self)
            server.stats.connections[self.kind] -= 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s connection from %s closed%s", self.kind, self.peer(),
                          f": {exc}" if exc else "")
        # break the cycle protocol -> partial -> protocol
        self.data_received = _discard  # type: ignore[method-assign]
        self._framer.paused = True
        self._write = _discard
        self._transport = None

    def peer(self) -> str:
        """The client's address, for the logs."""
        transport = self._transport
        if transport is None:
            return "a closed connection"
        return describe_peer(transport)

    def _reply(self, reply: Any) -> None:
        """Send *reply* (bytes, or an awaitable of bytes) in its turn."""
        order = self._order
        if type(reply) is bytes:
            if order is None:
                self._write(reply)
            else:
                order.send_now(reply)
            return
        if order is None:
            order = self._order = InOrder(self._send_ordered)
            self._write = self._reply
        place = order.reserve()
        future = asyncio.ensure_future(reply)
        future.add_done_callback(partial(self._filled, place))
        if len(order) >= MAX_WAITING:
            self._hold()

    def _send(self, answer: Any) -> None:
        """Send a source's answer: bytes now (or in their turn), an awaitable when done."""
        if type(answer) is bytes:
            self._write(answer)
        else:
            self._reply(answer)

    def _filled(self, place: int, future: "asyncio.Future[bytes]") -> None:
        order = self._order
        if order is None or self._transport is None or future.cancelled():
            return
        try:
            reply = future.result()
        except BaseException as error:  # a source broke its promise: still an answer
            log.error("lookup failed: %r", error)
            reply = tcp_error("lookup failed") if self.kind == "tcp" else \
                socketmap_error("lookup failed")
        order.fill(place, reply)
        if not len(order):
            self._order = None
            self._write = self._transport.write
        if len(order) < MAX_WAITING:
            self._release()

    def _send_ordered(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def _hold(self) -> None:
        self._framer.paused = True
        if self._transport is not None and not self._closing:
            self._transport.pause_reading()

    def _release(self) -> None:
        if self._write_paused or self._closing or self._transport is None:
            return
        if self._order is not None and len(self._order) >= MAX_WAITING:
            return
        if self._framer.paused:
            self._framer.paused = False
            self._framer.feed(self, b"")  # the requests held back; may pause again
            if not self._framer.paused and self._transport is not None:
                self._transport.resume_reading()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._hold()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release()

    def close(self) -> None:
        """Close once what was written is sent; deliver no more requests."""
        self._closing = True
        self._framer.paused = True
        if self._transport is not None:
            self._transport.close()

    def _error(self, reply: bytes) -> None:
        self._server.stats.errors[self.kind] += 1
        self._reply(reply)

    def _too_long(self, reply: bytes, end: bytes) -> None:
        """Answer an over-long request with *reply* once the client has sent the rest
        of it (up to *end*, within bounds), then close: closing on a client still
        writing would reset the connection before it reads the answer."""
        log.debug("%s: over-long request from %s", self.kind, self.peer())
        self._server.stats.errors[self.kind] += 1
        self._framer.paused = True
        self._closing = True
        if self._transport is not None:
            self.data_received = _Drain(self, reply, end)  # type: ignore[method-assign]


class _Drain:
    """The ``data_received`` of a connection whose request was too long: drop what
    arrives until the request ends (a chunk ending with *end*), the client goes quiet
    or sends too much; then send *reply* and close."""

    __slots__ = ("_protocol", "_reply", "_end", "_left", "_timer")

    def __init__(self, protocol: _MapProtocol, reply: bytes, end: bytes) -> None:
        self._protocol = protocol
        self._reply = reply
        self._end = end
        self._left = DRAIN_LIMIT
        self._timer = asyncio.get_running_loop().call_later(DRAIN_QUIET, self.finish)

    def __call__(self, data: bytes) -> None:
        self._left -= len(data)
        if self._left <= 0 or (self._end in data[-1:] if self._end == b"," else self._end in data):
            self.finish()
        else:
            self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(DRAIN_QUIET, self.finish)

    def finish(self) -> None:
        self._timer.cancel()
        protocol = self._protocol
        protocol.data_received = _discard  # type: ignore[method-assign]
        transport = protocol._transport
        if transport is not None:
            protocol._order = None  # replies still waiting are dropped with the connection
            transport.write(self._reply)
            transport.close()


class TcpTableProtocol(_MapProtocol):
    """tcp_table(5) for one map: ``get SPACE key`` lines, one reply line each."""

    # the source in a slot: read per request, where a class attribute is slower
    __slots__ = ("_source",)
    kind = "tcp"
    MAX_LENGTH: int  # with delimiter, set on the subclass of tcp_factory

    def __init__(self, server: MapServer, source: Source) -> None:
        super().__init__(server, LineFramer(True))
        self._source = source

    def lineReceived(self, line: bytes) -> None:
        self._idle = 0
        # parse_tcp_request and tcp_key, inlined for the one request Postfix sends
        words = line.split()
        if len(words) == 2 and words[0] == b"get":
            key = words[1]
            if _PERCENT in key:
                try:
                    key = unquote(key)
                except MalformedRequest as error:
                    return self._error(tcp_error(error))
            fold = self._fold
            if fold is not None:  # every rule is bytes.lower on ASCII (keys.py)
                key = key.lower() if key.isascii() else fold(key)
            source = self._source
            replies = source.tcp
            if replies is not None:  # in memory: a hit without a call (sources.Source)
                reply = replies.get(key)
                if reply is not None:
                    source.tcp_hits += 1
                    self._write(reply)
                    return None
            return self._send(source.tcp_reply(key))
        return self._other(line)

    def _other(self, line: bytes) -> None:
        request = parse_tcp_request(line)
        if request.command == b"get":
            try:
                tcp_key(request)  # raises: the fast path took every valid get
            except MalformedRequest as error:
                return self._error(tcp_error(error))
        if request.command == b"put":
            if len(request.params) < 2:
                return self._error(tcp_error(PUT_ARITY))
            # tcp_table(5): not implemented. Twisted's answer: a permanent failure.
            return self._error(tcp_reply(NOT_FOUND, PUT_NOT_IMPLEMENTED))
        return self._error(tcp_error(UNKNOWN_COMMAND))

    def lineLengthExceeded(self, line: bytes) -> None:
        self._too_long(tcp_error(REQUEST_TOO_LONG), b"\n")


class SocketmapProtocol(_MapProtocol):
    """socketmap_table(5): ``name SPACE key`` netstrings, one reply netstring each."""

    __slots__ = ("_sources",)
    kind = "socketmap"
    MAX_LENGTH: int  # set on the subclass of MapServer

    def __init__(self, server: MapServer) -> None:
        super().__init__(server, NetstringFramer())
        self._sources = server.by_name

    def stringReceived(self, payload: bytes) -> None:
        self._idle = 0
        # parse_socketmap_request, inlined
        name, space, key = payload.partition(b" ")
        source = self._sources.get(name)
        if source is None or not space:
            return self._other(payload)
        fold = self._fold
        if fold is not None:  # every rule is bytes.lower on ASCII (keys.py)
            key = key.lower() if key.isascii() else fold(key)
        replies = source.socketmap
        if replies is not None:  # in memory: a hit without a call (sources.Source)
            reply = replies.get(key)
            if reply is not None:
                source.socketmap_hits += 1
                self._write(reply)
                return None
        return self._send(source.socketmap_reply(key))

    def _other(self, payload: bytes) -> None:
        try:
            name, _ = parse_socketmap_request(payload)
        except MalformedRequest as error:
            return self._error(socketmap_error(error, b"PERM"))
        return self._error(
            socketmap_error(f"unknown map {name.decode('utf-8', 'replace')!r}", b"PERM")
        )

    def _netstringParseError(self, message: str) -> None:
        if "longer than the maximum" in message:
            return self._too_long(
                socketmap_error(f"request too long (limit {self.MAX_LENGTH} bytes)", b"PERM"),
                b",",
            )
        log.debug("socketmap: %s from %s: closing", message, self.peer())
        self._error(socketmap_error("malformed request: not a netstring", b"PERM"))
        self.close()
