"""The asyncio side of ``txframe serve-map``: the served maps, the tcp_table and
socketmap protocols, the counters and the metrics endpoint.

The protocols parse nothing themselves: bytes go to txframe's framers (a line framer
for tcp_table, a netstring framer for socketmap), and the rules of both protocols are
:mod:`txframe.mapproto`'s. Every reply a map can give is formatted once, when the map
is loaded (``Table``), so answering a request is a dict lookup and one
``transport.write``. Lookups are synchronous, so replies leave in request order
without :class:`txframe.mapproto.InOrder`.

Nothing here imports Twisted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from functools import partial
from typing import Any, Callable, Iterable

from .framing import LineFramer, NetstringFramer, Setting
from .mapproto import (
    NOT_FOUND,
    PUT_ARITY,
    PUT_NOT_IMPLEMENTED,
    REQUEST_TOO_LONG,
    UNKNOWN_COMMAND,
    SOCKETMAP_QUERY_LIMIT,
    SOCKETMAP_REPLY_LIMIT,
    MalformedRequest,
    parse_socketmap_request,
    parse_tcp_request,
    socketmap_error,
    socketmap_found,
    tcp_error,
    tcp_found,
    tcp_key,
    tcp_reply,
    unquote,
)

log = logging.getLogger("txframe.serve_map")

_PERCENT = 0x25  # "%": see mapproto._PERCENT

TCP_NOT_FOUND = tcp_reply(NOT_FOUND)  # b"500 \n", as Twisted's server says it
SOCKETMAP_NOT_FOUND = socketmap_found(None)  # b"9:NOTFOUND ,"


#: ``Table.signature`` / ``failed_signature`` before there is one (None is a signature:
#: the file's, when it is missing).
NO_SIGNATURE: Any = object()


def tcp_line_limit(max_query: int) -> int:
    """The longest tcp_table request line for keys of up to *max_query* bytes: a key is
    sent %XX-encoded, up to three bytes for each of its own, after ``get SPACE``."""
    return 4 + 3 * max_query


# -- the served maps ------------------------------------------------------------------


class Table:
    """One served map: its replies, ready to send, and its counters.

    ``tcp`` maps a key to its whole tcp_table reply line and ``socketmap`` to its whole
    socketmap reply netstring (each ``None`` when no listener speaks that protocol).
    A reload replaces both dicts at once, between two requests: a request sees the old
    map or the new one, never a mix.
    """

    __slots__ = (
        "name",
        "path",
        "tcp",
        "socketmap",
        "entries",
        "tcp_hits",
        "tcp_misses",
        "socketmap_hits",
        "socketmap_misses",
        "reloads",
        "reload_failures",
        "loaded_at",
        "signature",
        "failed_signature",
    )

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self.tcp: dict[bytes, bytes] | None = None
        self.socketmap: dict[bytes, bytes] | None = None
        self.entries = 0
        self.tcp_hits = self.tcp_misses = 0
        self.socketmap_hits = self.socketmap_misses = 0
        self.reloads = self.reload_failures = 0
        self.loaded_at = 0.0
        self.signature: Any = NO_SIGNATURE  # the file's (dev, ino, size, mtime) when loaded
        self.failed_signature: Any = NO_SIGNATURE  # ... when it last failed to load

    def install(self, built: "Built") -> None:
        """Serve *built* from now on (one step of the event loop: atomic for requests)."""
        self.tcp = built.tcp
        self.socketmap = built.socketmap
        self.entries = built.entries
        self.signature = built.signature
        self.failed_signature = NO_SIGNATURE
        self.loaded_at = time.time()


class Built:
    """A map file loaded and its replies formatted, ready for :meth:`Table.install`."""

    __slots__ = ("tcp", "socketmap", "entries", "signature", "too_long", "problems")

    def __init__(
        self,
        entries: dict[bytes, bytes],
        signature: Any,
        tcp: bool,
        socketmap: bool,
        socketmap_limit: int = SOCKETMAP_REPLY_LIMIT,
    ) -> None:
        self.entries = len(entries)
        self.signature = signature
        self.problems: list[str] = []
        self.tcp: dict[bytes, bytes] | None = None
        self.socketmap: dict[bytes, bytes] | None = None
        # Values Postfix would reject in a reply: answered with a 400 / PERM instead.
        too_long: set[bytes] = set()
        if tcp:
            self.tcp = {key: tcp_found(value) for key, value in entries.items()}
            too_long.update(key for key, reply in self.tcp.items() if reply[:1] == b"4")
        if socketmap:
            self.socketmap = {
                key: socketmap_found(value, socketmap_limit) for key, value in entries.items()
            }
            too_long.update(
                key for key, reply in self.socketmap.items() if b":PERM " in reply[:12]
            )
        self.too_long = sorted(too_long)


class Stats:
    """What a server counts besides each map's hits and misses."""

    __slots__ = ("errors", "connections", "connections_total")

    def __init__(self) -> None:
        self.errors = {"tcp": 0, "socketmap": 0}
        self.connections = {"tcp": 0, "socketmap": 0}
        self.connections_total = {"tcp": 0, "socketmap": 0}


class MapServer:
    """The state a worker's connections share: the tables, the counters and the open
    connections (for idle timeouts and a graceful shutdown)."""

    def __init__(
        self,
        tables: Iterable[Table],
        fold_case: bool = False,
        max_query: int = SOCKETMAP_QUERY_LIMIT,
    ) -> None:
        self.tables = {table.name: table for table in tables}
        # socketmap requests name their map in bytes
        self.by_name = {os.fsencode(name): table for name, table in self.tables.items()}
        self.fold_case = fold_case
        self.max_query = max_query
        self.stats = Stats()
        self.connections: set[Any] = set()
        self.tcp_protocol = _with_settings(
            TcpTableProtocol, delimiter=b"\n", MAX_LENGTH=tcp_line_limit(max_query)
        )
        self.socketmap_protocol = _with_settings(SocketmapProtocol, MAX_LENGTH=max_query)

    def tcp_factory(self, table: Table) -> Callable[[], asyncio.Protocol]:
        return partial(self.tcp_protocol, self, table)

    def socketmap_factory(self) -> Callable[[], asyncio.Protocol]:
        return partial(self.socketmap_protocol, self)

    def sweep_idle(self) -> None:
        """Called every quarter of the idle timeout: close connections that completed
        no request during the last four calls."""
        for conn in list(self.connections):
            conn._idle += 1
            if conn._idle > 4:
                log.debug("closing a connection idle for too long")
                conn.close()

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            if conn._transport is not None:
                conn._transport.abort()

    def snapshot(self) -> dict[str, Any]:
        """The counters, as plain data (JSON-able)."""
        stats = self.stats
        return {
            "pid": os.getpid(),
            "errors": dict(stats.errors),
            "connections": dict(stats.connections),
            "connections_total": dict(stats.connections_total),
            "maps": {
                name: {
                    "entries": t.entries,
                    "tcp_hits": t.tcp_hits,
                    "tcp_misses": t.tcp_misses,
                    "socketmap_hits": t.socketmap_hits,
                    "socketmap_misses": t.socketmap_misses,
                    "reloads": t.reloads,
                    "reload_failures": t.reload_failures,
                    "loaded_at": t.loaded_at,
                }
                for name, t in self.tables.items()
            },
        }


def _with_settings(base: type, **values: Any) -> type:
    """A subclass of *base* with the settings its framer reads (``delimiter``,
    ``MAX_LENGTH``): compiled Settings in a compiled build, so that the framer reads
    them once per connection instead of after every frame; plain attributes in a pure
    one, which Python reads fastest."""
    attrs: dict[str, Any] = {"__slots__": ()}
    for name, value in values.items():
        if Setting is None:
            attrs[name] = value
        else:
            attrs[name] = Setting(name, value)
    return type(base.__name__, (base,), attrs)


def _discard(data: bytes) -> None:
    pass


# -- protocols -----------------------------------------------------------------------


class _MapProtocol(asyncio.Protocol):
    """What both map protocols share: the connection bookkeeping and flow control.

    The protocol is its framer's sink. ``transport`` (what the framer reads) stays
    ``None``; the asyncio transport is ``_transport``. ``data_received`` is the
    framer's ``feed`` bound to this protocol, so bytes go straight to the framer.
    When the client does not read its replies (``pause_writing``), the framer is
    paused and reading stops, so neither replies nor requests pile up.
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
        self._fold = server.fold_case
        self._idle = 0
        self._closing = False
        self._write_paused = False

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self._write = transport.write
        server = self._server
        server.connections.add(self)
        server.stats.connections[self.kind] += 1
        server.stats.connections_total[self.kind] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        server = self._server
        if self in server.connections:
            server.connections.discard(self)
            server.stats.connections[self.kind] -= 1
        # break the cycle protocol -> partial -> protocol
        self.data_received = _discard  # type: ignore[method-assign]
        self._framer.paused = True
        self._write = _discard
        self._transport = None

    def pause_writing(self) -> None:
        self._write_paused = True
        self._framer.paused = True
        if self._transport is not None and not self._closing:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._closing or self._transport is None:
            return
        self._framer.paused = False
        self._framer.feed(self, b"")  # the requests held back; may pause again
        if not self._write_paused and not self._closing and self._transport is not None:
            self._transport.resume_reading()

    def close(self) -> None:
        """Close once what was written is sent; deliver no more requests."""
        self._closing = True
        self._framer.paused = True
        if self._transport is not None:
            self._transport.close()

    def _error(self, reply: bytes) -> None:
        self._server.stats.errors[self.kind] += 1
        self._write(reply)


class TcpTableProtocol(_MapProtocol):
    """tcp_table(5) for one map: ``get SPACE key`` lines, one reply line each."""

    __slots__ = ("_table",)
    kind = "tcp"
    MAX_LENGTH: int  # with delimiter, set on the subclass MapServer makes (_with_settings)

    def __init__(self, server: MapServer, table: Table) -> None:
        super().__init__(server, LineFramer(True))
        self._table = table

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
            if self._fold:
                key = key.lower()
            table = self._table
            reply = table.tcp.get(key)  # type: ignore[union-attr]  # set: we serve tcp
            if reply is None:
                table.tcp_misses += 1
                self._write(TCP_NOT_FOUND)
            else:
                table.tcp_hits += 1
                self._write(reply)
            return None
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
        log.debug("tcp_table request line over %d bytes: closing", self.MAX_LENGTH)
        self._error(tcp_error(REQUEST_TOO_LONG))
        self.close()


class SocketmapProtocol(_MapProtocol):
    """socketmap_table(5): ``name SPACE key`` netstrings, one reply netstring each."""

    __slots__ = ("_tables",)
    kind = "socketmap"

    def __init__(self, server: MapServer) -> None:
        super().__init__(server, NetstringFramer())
        self._tables = server.by_name

    def stringReceived(self, payload: bytes) -> None:
        self._idle = 0
        # parse_socketmap_request, inlined
        name, space, key = payload.partition(b" ")
        table = self._tables.get(name)
        if table is None or not space:
            return self._other(payload)
        if self._fold:
            key = key.lower()
        reply = table.socketmap.get(key)  # type: ignore[union-attr]  # set: we serve it
        if reply is None:
            table.socketmap_misses += 1
            self._write(SOCKETMAP_NOT_FOUND)
        else:
            table.socketmap_hits += 1
            self._write(reply)
        return None

    def _other(self, payload: bytes) -> None:
        try:
            name, _ = parse_socketmap_request(payload)
        except MalformedRequest as error:
            return self._error(socketmap_error(error, b"PERM"))
        return self._error(
            socketmap_error(f"unknown map {name.decode('utf-8', 'replace')!r}", b"PERM")
        )

    def _netstringParseError(self, message: str) -> None:
        log.debug("socketmap: %s: closing", message)
        self._error(socketmap_error(message, b"PERM"))
        self.close()


# -- metrics --------------------------------------------------------------------------

_HELP = [
    ("requests_total", "counter", "Map requests answered (hits, misses and errors)."),
    ("hits_total", "counter", "Lookups that found the key."),
    ("misses_total", "counter", "Lookups that did not find the key."),
    ("errors_total", "counter", "Requests answered with an error (malformed, unknown "
     "command or map, too long)."),
    ("reloads_total", "counter", "Successful reloads of a map file."),
    ("reload_failures_total", "counter", "Failed reloads (the old map was kept)."),
    ("entries", "gauge", "Entries in the map as served."),
    ("last_reload_timestamp_seconds", "gauge", "When the map served was loaded."),
    ("connections", "gauge", "Open client connections."),
    ("connections_total", "counter", "Client connections accepted."),
]


def _label(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{text}"'


def render_metrics(snapshots: list[tuple[int, dict[str, Any]]]) -> bytes:
    """The Prometheus text format (0.0.4) of each worker's :meth:`MapServer.snapshot`;
    every series is labelled with its ``worker`` (0 for a single process)."""
    series: dict[str, list[str]] = {name: [] for name, _, _ in _HELP}

    def add(metric: str, labels: dict[str, Any], value: Any) -> None:
        text = ",".join(f"{key}={_label(val)}" for key, val in labels.items())
        series[metric].append(f"txframe_map_{metric}{{{text}}} {value}")

    for worker, snap in snapshots:
        for protocol in ("tcp", "socketmap"):
            requests = snap["errors"][protocol]
            for table in snap["maps"].values():
                requests += table[f"{protocol}_hits"] + table[f"{protocol}_misses"]
            base = {"worker": worker, "protocol": protocol}
            add("requests_total", base, requests)
            add("errors_total", base, snap["errors"][protocol])
            add("connections", base, snap["connections"][protocol])
            add("connections_total", base, snap["connections_total"][protocol])
        for name, table in snap["maps"].items():
            for protocol in ("tcp", "socketmap"):
                labels = {"worker": worker, "map": name, "protocol": protocol}
                add("hits_total", labels, table[f"{protocol}_hits"])
                add("misses_total", labels, table[f"{protocol}_misses"])
            labels = {"worker": worker, "map": name}
            add("reloads_total", labels, table["reloads"])
            add("reload_failures_total", labels, table["reload_failures"])
            add("entries", labels, table["entries"])
            add("last_reload_timestamp_seconds", labels, f"{table['loaded_at']:.3f}")
    out = []
    for metric, kind, text in _HELP:
        out.append(f"# HELP txframe_map_{metric} {text}")
        out.append(f"# TYPE txframe_map_{metric} {kind}")
        out.extend(series[metric])
    return ("\n".join(out) + "\n").encode("utf-8")


class MetricsProtocol(asyncio.Protocol):
    """A minimal HTTP/1.x server: ``GET /metrics`` answers the metrics text, then the
    connection closes. The request head is split by txframe's line framer."""

    MAX_LENGTH = 8192  # per header line
    delimiter = b"\n"
    transport = None  # the framer's view; the asyncio transport is _transport
    MAX_HEADERS = 100

    def __init__(self, collect: Callable[[], Any]) -> None:
        self._collect = collect
        self._framer = LineFramer(True)
        self._transport: Any = None
        self._request: bytes | None = None
        self._headers = 0

    def connection_made(self, transport: Any) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._framer.feed(self, data)

    def lineReceived(self, line: bytes) -> None:
        if self._request is None:
            self._request = line.rstrip(b"\r")
            return
        self._headers += 1
        if line.rstrip(b"\r") == b"":
            self._framer.paused = True
            asyncio.ensure_future(self._answer())
        elif self._headers > self.MAX_HEADERS:
            self._send(431, b"too many headers\n")

    def lineLengthExceeded(self, line: bytes) -> None:
        self._send(431, b"request header too long\n")

    async def _answer(self) -> None:
        parts = (self._request or b"").split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return self._send(400, b"bad request\n")
        method, target = parts[0], parts[1]
        if target.split(b"?", 1)[0] != b"/metrics":
            return self._send(404, b"not found: try /metrics\n")
        if method not in (b"GET", b"HEAD"):
            return self._send(405, b"method not allowed\n", b"Allow: GET, HEAD\r\n")
        try:
            body = await self._collect()
        except Exception as error:  # a worker that did not answer, say
            log.warning("metrics: %s", error)
            return self._send(503, b"metrics unavailable\n")
        self._send(200, body, b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
                   head_only=method == b"HEAD")

    _REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                431: "Request Header Fields Too Large", 503: "Service Unavailable"}

    def _send(self, status: int, body: bytes, extra: bytes = b"",
              head_only: bool = False) -> None:
        self._framer.paused = True
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not extra:
            extra = b"Content-Type: text/plain; charset=utf-8\r\n"
        head = (
            b"HTTP/1.1 %d %s\r\n%bContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, self._REASONS[status].encode(), extra, len(body))
        )
        transport.write(head if head_only else head + body)
        transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
