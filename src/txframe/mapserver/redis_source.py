"""Redis maps for serve-map: maps kept in Redis, served by every serve-map of a fleet.

Layouts (``RedisMapOptions.layout``):

- ``string``: one Redis string per key, ``GET <prefix><key>``: the data the Postfix
  redis patch reads. With ``versioned``, ``<prefix>`` names a pointer key holding the
  current version V (``txframe map-load`` switches it in one step) and values are read
  from ``<prefix><V>:<key>``.
- ``hash``: one hash per map, ``HGET <hash> <key>``.

Modes:

- ``lookup``: a miss asks Redis. Concurrent misses of one key share one request;
  the misses of one event-loop turn go in one pipeline. Answers are kept in a
  bounded :class:`~.redis_cache.ReplyCache`. Changes reach it by Redis' client-side
  caching in broadcast mode (``CLIENT TRACKING ON BCAST PREFIX``, RESP3 push messages on
  a connection of its own, pinged every :data:`HEARTBEAT` seconds): a changed key is
  dropped from the cache when Redis' message arrives. When that connection is lost no
  cached answer is served as fresh until it is back (changes may have been missed), so
  the bound on serving a changed key holds through outages: the push message's
  delivery time while connected, never more than ``HEARTBEAT + deadline`` after a
  change even on a silently dead link (then the link is declared lost).
- ``snapshot`` (hash layout): the whole hash is loaded with ``HGETALL``, its replies
  formatted once, and served as a file map is; it is loaded again when Redis reports
  the hash changed (tracking, as above), when the ``version_key`` changes (polled), or
  every ``refresh`` seconds. The last good snapshot is served through an outage; a
  missing or empty hash is never taken for an empty map.

Failures: a request that Redis does not answer within ``deadline`` seconds (down,
slow, failing over, pool exhausted), or answers with an error, gets TEMP (socketmap) or
400 (tcp_table) -- or a stale value within ``stale_grace``, counted -- never a "not
found". After a connection failure requests fail at once, without trying Redis, for a
backoff that doubles from 0.1 s to :data:`MAX_BACKOFF`; the first request after it
tries again. An outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, fields
from typing import Any, Awaitable, Iterable, Mapping

from ..mapproto import (
    SOCKETMAP_REPLY_LIMIT,
    socketmap_error,
    socketmap_found,
    tcp_error,
    tcp_found,
)
from .redis_cache import ReplyCache
from .redis_conn import RedisURLError, Target, parse_url

from .config import Config, MapSpec
from .sources import LookupFailed, Sample, Source, SourceError

log = logging.getLogger("txframe.serve_map.redis")

HEARTBEAT = 1.0  # seconds between PINGs on the invalidation connection
MIN_BACKOFF = 0.1
MAX_BACKOFF = 2.0


@dataclass
class RedisMapOptions:
    """One Redis map, as configured (CLI spec or a TOML table)."""

    name: str
    url: str
    layout: str = "hash"  # "hash" or "string"
    key: str = ""  # the hash, or the strings' prefix
    versioned: bool = False
    mode: str = "lookup"  # "lookup" or "snapshot"
    cache_entries: int = 100_000
    cache_bytes: int = 64 << 20
    ttl: float = 300.0
    negative_ttl: float = 30.0
    stale_grace: float = 0.0
    deadline: float = 5.0
    version_key: str = ""
    poll: float = 1.0
    refresh: float = 300.0
    max_connections: int = 16

    @classmethod
    def from_mapping(cls, name: str, table: Mapping[str, Any]) -> "RedisMapOptions":
        """From a TOML table (or a URL's query options): ``url``, ``hash`` or
        ``prefix``, and any field above."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {"name": name}
        for option, raw in table.items():
            option = option.replace("-", "_")
            if option in ("hash", "prefix"):
                if "key" in values:
                    raise SourceError(f"map {name}: give one of hash and prefix")
                values["layout"] = "hash" if option == "hash" else "string"
                values["key"] = str(raw)
                continue
            if option not in known or option in ("name", "layout", "key"):
                raise SourceError(f"map {name}: unknown Redis map option {option!r}")
            kind: Any = type(getattr(cls, option, "")) if option != "url" else str
            try:
                if kind is bool:
                    value: Any = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
                else:
                    value = kind(raw)
            except (TypeError, ValueError):
                raise SourceError(f"map {name}: bad value for {option}: {raw!r}") from None
            if kind in (int, float) and (value < 0 or not math.isfinite(value)):
                raise SourceError(f"map {name}: {option} must be 0 or more, got {raw!r}")
            values[option] = value
        if "url" not in values:
            raise SourceError(f"map {name}: no Redis url")
        if "key" not in values:
            raise SourceError(f"map {name}: give hash=NAME or prefix=PREFIX")
        options = cls(**values)
        options.check()
        return options

    @classmethod
    def from_spec(cls, spec: str) -> "RedisMapOptions":
        """``NAME=URL?hash=H&mode=snapshot...`` (the map's options in the URL's query;
        the rest of the query is the connection's)."""
        import urllib.parse

        name, eq, url = spec.partition("=")
        if not eq or not name or "://" in name:
            raise SourceError(f"expected NAME=redis://..., got {spec!r}")
        parts = urllib.parse.urlsplit(url)
        ours: dict[str, Any] = {"url": ""}
        theirs = []
        known = {f.name for f in fields(cls)} | {"hash", "prefix"}
        for option, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if option.replace("-", "_") in known:
                ours[option] = value
            else:
                theirs.append((option, value))
        # the URL as written, less our options (urlunsplit would turn unix:///p into unix:/p)
        base = url.partition("?")[0]
        # (paths, as in ssl_ca_certs=/etc/..., stay readable in messages)
        ours["url"] = base + ("?" + urllib.parse.urlencode(theirs, safe="/") if theirs else "")
        return cls.from_mapping(name, ours)

    def check(self) -> None:
        if self.layout not in ("hash", "string"):
            raise SourceError(f"map {self.name}: layout must be hash or string")
        if self.mode not in ("lookup", "snapshot"):
            raise SourceError(f"map {self.name}: mode must be lookup or snapshot")
        if self.mode == "snapshot" and self.layout != "hash":
            raise SourceError(f"map {self.name}: snapshot mode needs the hash layout")
        if self.layout == "hash" and not self.key:
            raise SourceError(f"map {self.name}: an empty hash name")
        if self.versioned and self.layout != "string":
            raise SourceError(f"map {self.name}: versioned is for the string layout")
        if not 0 < self.deadline < 100:
            raise SourceError(f"map {self.name}: deadline must be between 0 and 100 seconds")
        if self.max_connections < 1:
            raise SourceError(f"map {self.name}: max_connections must be at least 1")
        try:
            parse_url(self.url)
        except RedisURLError as error:
            raise SourceError(f"map {self.name}: {error}") from None


class _Outage:
    """Log an outage once when it starts and once when it ends; the backoff."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down_since = 0.0
        self.retry_at = 0.0
        self.backoff = MIN_BACKOFF
        self.errors = 0
        self.reason = ""

    def failed(self, error: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        self.reason = _describe(error)
        if not self.down_since:
            self.down_since = now
            log.warning("map %s: Redis unavailable: %s", self.name, self.reason)
        self.retry_at = now + self.backoff
        self.backoff = min(self.backoff * 2, MAX_BACKOFF)

    def succeeded(self) -> None:
        if self.down_since:
            log.warning(
                "map %s: Redis reachable again after %.1f s",
                self.name,
                time.monotonic() - self.down_since,
            )
        self.down_since = 0.0
        self.retry_at = 0.0
        self.backoff = MIN_BACKOFF


def _sample(name: str, help: str, value: float, kind: str = "counter") -> Sample:
    return Sample(name, kind, help, {}, float(value))


def _describe(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "no answer within the deadline"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class RedisSource(Source):
    """What both modes share: the client, the invalidation connection(s), health and
    counters. Replies are formatted with :mod:`txframe.mapproto`."""

    def __init__(self, options: RedisMapOptions, socketmap_limit: int = SOCKETMAP_REPLY_LIMIT) -> None:
        self.name = options.name
        self.options = options
        self.limit = socketmap_limit
        self.target: Target = parse_url(options.url)
        self.client: Any = None
        self.outage = _Outage(options.name)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.reconnects = 0
        self.stale_served = 0
        self.hits = self.misses = self.failures = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._push_up = 0  # push connections established
        self._push_total = 0
        self._problems: set[str] = set()  # logged once each (until Redis recovers)

    # -- the interface ------------------------------------------------------------

    async def open(self) -> None:
        self.client = self.target.client(self.options.deadline, self.options.max_connections)
        try:
            await asyncio.wait_for(self.client.ping(), self.options.deadline)
        except Exception as error:
            await self._close_client()
            raise SourceError(
                f"map {self.name}: cannot use Redis at {self.target.url}: {_describe(error)}"
            ) from None

    async def reload(self) -> None:
        pass

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # bounded: a task cancelled inside the client's own locking must not hang us
            await asyncio.wait(self._tasks, timeout=self.options.deadline)
        self._tasks.clear()
        await self._close_client()

    def healthy(self) -> bool:
        """Redis is reachable (the last request, and the push connection, worked)."""
        return not self.outage.down_since and self._push_up >= self._push_total

    def describe(self) -> str:
        layout = f"hash {self.options.key}" if self.options.layout == "hash" else f"strings {self.options.key}*"
        return f"{self.options.mode} of Redis {layout} at {self.target.url}"

    def metrics(self) -> Iterable[Sample]:
        yield _sample("redis_errors_total", "Redis requests that failed (errors, timeouts, refused).", self.outage.errors)
        yield _sample("redis_reconnects_total", "Reconnections of the invalidation connection.", self.reconnects)
        yield _sample("redis_up", "1 if Redis is reachable (requests and invalidations).", 1.0 if self.healthy() else 0.0, "gauge")
        yield _sample("redis_request_seconds_sum", "Time spent in Redis requests (pipelines, loads).", self.latency_sum)
        yield _sample("redis_request_seconds_count", "Redis requests (pipelines, loads).", self.latency_count)
        yield _sample("redis_stale_served_total", "Stale values served within the grace while Redis could not answer.", self.stale_served)
        yield _sample("failures_total", "Lookups answered TEMP / 400.", self.failures)

    # -- helpers ------------------------------------------------------------------

    async def _close_client(self) -> None:
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.aclose(), self.options.deadline)
            except Exception:
                pass
            self.client = None

    def _problem(self, message: str) -> None:
        """Log *message* once (until Redis recovers from an outage)."""
        if message not in self._problems:
            self._problems.add(message)
            log.warning("map %s: %s", self.name, message)

    def _start(self, coro: Any) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro))

    async def _watch(self, prefix: bytes, on_change: Any, on_lost: Any, on_back: Any) -> None:
        """Keep push connections tracking keys under *prefix* (to every primary);
        call ``on_change(keys or None)`` for an invalidation, ``on_lost()`` when a
        connection is lost, ``on_back()`` when all are tracking again."""
        backoff = MIN_BACKOFF
        first = True
        while True:
            clients: list[Any] = []
            try:
                clients = await asyncio.wait_for(
                    self.target.push_clients(self.options.deadline, self.client),
                    self.options.deadline,
                )
                self._push_total = len(clients)
                for client in clients:
                    await asyncio.wait_for(
                        client.execute_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", prefix),
                        self.options.deadline,
                    )
                self._push_up = len(clients)
                if not first:
                    self.reconnects += 1
                first = False
                backoff = MIN_BACKOFF
                on_back()
                await _first_done([self._listen(c, on_change) for c in clients])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.outage.failed(error)
            finally:
                self._push_up = 0
                for client in clients:
                    try:
                        await client.aclose()
                    except Exception:
                        pass
            on_lost()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _listen(self, client: Any, on_change: Any) -> None:
        """Read push messages; ping every HEARTBEAT seconds so that a silently dead
        link is noticed within HEARTBEAT + deadline (then raise)."""
        conn = client.connection

        async def invalidated(message: list[Any]) -> list[Any]:
            on_change(message[1])  # a list of keys, or None: everything
            return message

        conn._parser.set_invalidation_push_handler(invalidated)
        read: asyncio.Future[Any] | None = None
        ping_sent = 0.0
        try:
            while True:
                if read is None:
                    read = asyncio.ensure_future(conn.read_response(push_request=True, timeout=math.inf))
                done, _ = await asyncio.wait({read}, timeout=HEARTBEAT)
                now = time.monotonic()
                if read in done:
                    reply = read.result()
                    read = None
                    if reply == b"PONG":
                        ping_sent = 0.0
                    continue
                if ping_sent and now - ping_sent > self.options.deadline:
                    raise asyncio.TimeoutError()
                if not ping_sent:
                    ping_sent = now
                    await asyncio.wait_for(conn.send_command("PING"), self.options.deadline)
        finally:
            if read is not None:
                read.cancel()


async def _first_done(coros: list[Awaitable[None]]) -> None:
    """Run *coros* until the first ends; re-raise its error; cancel the others."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()


# -- lookup mode -----------------------------------------------------------------------


class LookupSource(RedisSource):
    """Each miss asks Redis (see the module's docstring)."""

    def __init__(self, options: RedisMapOptions, socketmap_limit: int = SOCKETMAP_REPLY_LIMIT) -> None:
        super().__init__(options, socketmap_limit)
        self.cache = ReplyCache(
            options.cache_entries,
            options.cache_bytes,
            options.ttl,
            options.negative_ttl,
            options.stale_grace,
            socketmap_limit,
        )
        # the protocols answer hits from these dicts themselves (Source.tcp), counting
        # them in tcp_hits / socketmap_hits
        self.tcp = self.cache.tcp
        self.socketmap = self.cache.socketmap
        self._prefix = options.key.encode("utf-8", "surrogateescape")
        self._version: bytes | None = None  # versioned strings: the current version
        self._inflight: dict[bytes, list[tuple[asyncio.Future[bytes], bool]]] = {}
        self._dirty: set[bytes] = set()  # in flight, changed meanwhile: not cached
        self._batch: list[bytes] = []
        self._tracking = False  # the cache may serve fresh answers
        self._loop: Any = None  # set by open()
        self.cache_misses = 0

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        await super().open()
        self._start(self._watch(self._prefix, self._changed, self._lost, self._back))
        self._start(self._expire_loop())
        # caching starts once invalidations can reach us; wait for that, a little
        for _ in range(int(self.options.deadline / 0.01)):
            if self._tracking:
                break
            await asyncio.sleep(0.01)

    def metrics(self) -> Iterable[Sample]:
        yield from super().metrics()
        yield _sample("cache_hits_total", "Lookups answered from the cache.",
                      self.hits + self.tcp_hits + self.socketmap_hits)
        yield _sample("cache_misses_total", "Lookups that asked Redis.", self.cache_misses)
        yield _sample("cache_invalidations_total", "Cached answers dropped because Redis said they changed.", self.cache.invalidations)
        yield _sample("cache_evictions_total", "Cached answers dropped to stay within the bounds.", self.cache.evictions)
        yield _sample("cache_entries", "Answers in the cache.", len(self.cache), "gauge")
        yield _sample("cache_bytes", "Bytes of the cache (estimated).", self.cache.bytes, "gauge")

    # the hot path: a dict lookup, as for file maps
    def tcp_reply(self, key: bytes) -> bytes | Awaitable[bytes]:
        reply = self.cache.tcp.get(key)
        if reply is not None:
            self.hits += 1
            return reply
        return self._miss(key, True)

    def socketmap_reply(self, key: bytes) -> bytes | Awaitable[bytes]:
        reply = self.cache.socketmap.get(key)
        if reply is not None:
            self.hits += 1
            return reply
        return self._miss(key, False)

    def _miss(self, key: bytes, tcp: bool) -> asyncio.Future[bytes]:
        """A future of the reply: the misses of one key wait for one Redis request
        (a plain future per caller, so that a caller that goes away cancels only its
        own; no task per miss)."""
        self.cache_misses += 1
        future: asyncio.Future[bytes] = self._loop.create_future()
        waiters = self._inflight.get(key)
        if waiters is None:
            if self.outage.retry_at > time.monotonic():
                failure = LookupFailed(f"Redis unavailable: {self.outage.reason}")
                future.set_result(self._failed_reply(key, tcp, failure))
                return future
            self._inflight[key] = waiters = []
            if not self._batch:
                self._loop.call_soon(self._send_batch)
            self._batch.append(key)
        waiters.append((future, tcp))
        return future

    def _found_reply(self, key: bytes, tcp: bool, value: bytes | None) -> bytes:
        if tcp:
            reply = tcp_found(value)
            if reply[:1] == b"4":
                self._problem(f"value of key {key!r} too long for a tcp_table reply")
            return reply
        return socketmap_found(value, self.limit)

    def _failed_reply(self, key: bytes, tcp: bool, failure: LookupFailed) -> bytes:
        stale = self.cache.stale(key) if failure.temporary else None
        if stale is not None:
            self.stale_served += 1
            return self._found_reply(key, tcp, stale)
        self.failures += 1
        return tcp_error(failure.reason) if tcp else socketmap_error(failure.reason)

    def _send_batch(self) -> None:
        keys, self._batch = self._batch, []
        self._start_batch(keys)

    def _start_batch(self, keys: list[bytes]) -> None:
        task = asyncio.get_running_loop().create_task(self._run_batch(keys))
        task.add_done_callback(_ignore)

    async def _run_batch(self, keys: list[bytes]) -> None:
        started = time.monotonic()
        tracking = self._tracking
        try:
            results = await asyncio.wait_for(self._query(keys), self.options.deadline)
        except asyncio.CancelledError:
            for key in keys:
                self._settle(key, LookupFailed("shutting down"), False)
            raise
        except Exception as error:
            if not isinstance(error, LookupFailed):
                self.outage.failed(error)
                error = LookupFailed(f"Redis unavailable: {_describe(error)}")
            for key in keys:
                self._settle(key, error, False)
            return
        finally:
            self.latency_sum += time.monotonic() - started
            self.latency_count += 1
        if self.outage.down_since:
            self._problems.clear()
        self.outage.succeeded()
        for key, result in zip(keys, results):
            if isinstance(result, Exception):
                self._problem(f"Redis error for key {key!r}: {_describe(result)}")
                self._settle(key, LookupFailed(f"Redis error: {_describe(result)}"), False)
            else:
                self._settle(key, result, tracking)

    async def _query(self, keys: list[bytes]) -> list[Any]:
        if self.options.layout == "hash":
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hget(self._prefix, key)
            return list(await pipe.execute(raise_on_error=False))
        prefix = self._prefix
        if self.options.versioned:
            if self._version is None:
                version = await self.client.get(self._prefix)
                if not version:
                    raise LookupFailed(f"no version in Redis at {self._prefix!r} (map not loaded?)")
                self._version = version
            prefix = self._prefix + self._version + b":"
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.get(prefix + key)
        return list(await pipe.execute(raise_on_error=False))

    def _settle(self, key: bytes, result: Any, cacheable: bool) -> None:
        waiters = self._inflight.pop(key, ())
        dirty = key in self._dirty
        self._dirty.discard(key)
        if isinstance(result, LookupFailed):
            for future, tcp in waiters:
                if not future.done():
                    future.set_result(self._failed_reply(key, tcp, result))
            return
        if cacheable and self._tracking and not dirty:
            self.cache.put(key, result)
        for future, tcp in waiters:
            if not future.done():
                future.set_result(self._found_reply(key, tcp, result))

    # invalidation
    def _changed(self, keys: list[bytes] | None) -> None:
        # everything: a flush, the hash (one Redis key for the whole map), the version
        if keys is None or (self.options.layout == "hash" or self.options.versioned) and self._prefix in keys:
            self._version = None
            self.cache.clear()
            self._dirty.update(self._inflight)
            return
        if self.options.layout == "hash":
            return  # other keys that start with the hash's name
        prefix = self._prefix
        if self.options.versioned:
            if self._version is None:
                return  # nothing cached
            prefix += self._version + b":"
        for key in keys:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                self.cache.invalidate(key)
                if key in self._inflight:
                    self._dirty.add(key)

    def _lost(self) -> None:
        self._tracking = False
        self._version = None
        self.cache.distrust()
        self._dirty.update(self._inflight)

    def _back(self) -> None:
        self.cache.clear()  # changes while we were not listening
        self._dirty.update(self._inflight)
        self._tracking = True

    async def _expire_loop(self) -> None:
        period = max(0.05, min(1.0, self.options.negative_ttl / 10 or 1.0, self.options.ttl / 10 or 1.0))
        while True:
            await asyncio.sleep(period)
            self.cache.expire()


def _ignore(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


# -- snapshot mode ---------------------------------------------------------------------


class SnapshotSource(RedisSource):
    """The whole hash in memory (see the module's docstring)."""

    def __init__(self, options: RedisMapOptions, socketmap_limit: int = SOCKETMAP_REPLY_LIMIT) -> None:
        super().__init__(options, socketmap_limit)
        self._hash = options.key.encode("utf-8", "surrogateescape")
        self.tcp: dict[bytes, bytes] = {}
        self.socketmap: dict[bytes, bytes] = {}
        self.entries = 0
        self.loaded_at = 0.0  # time.time() of the snapshot served
        self.loads = self.load_failures = 0
        self._version: Any = None
        self._wanted = asyncio.Event()
        self._loading: asyncio.Lock | None = None
        self.not_found_tcp = tcp_found(None)
        self.not_found_socketmap = socketmap_found(None)

    async def open(self) -> None:
        await super().open()
        self._loading = asyncio.Lock()
        try:
            await self._load()
        except Exception as error:
            await self._close_client()
            raise SourceError(f"map {self.name}: {_describe(error) if not isinstance(error, LookupFailed) else error}") from None
        self._start(self._watch(self._hash, self._changed, self._lost, self._changed_all))
        self._start(self._reloader())

    async def reload(self) -> None:
        await self._load()

    def tcp_reply(self, key: bytes) -> bytes:
        self.hits += 1
        return self.tcp.get(key, self.not_found_tcp)

    def socketmap_reply(self, key: bytes) -> bytes:
        self.hits += 1
        return self.socketmap.get(key, self.not_found_socketmap)

    def healthy(self) -> bool:
        return super().healthy() and bool(self.loaded_at)

    def metrics(self) -> Iterable[Sample]:
        yield from super().metrics()
        yield _sample("snapshot_entries", "Entries of the snapshot served.", self.entries, "gauge")
        yield _sample("snapshot_age_seconds", "Age of the snapshot served.", time.time() - self.loaded_at if self.loaded_at else -1.0, "gauge")
        yield _sample("snapshot_loads_total", "Snapshots loaded.", self.loads)
        yield _sample("snapshot_load_failures_total", "Snapshot loads that failed (the last good one stays).", self.load_failures)

    async def _load(self) -> None:
        assert self._loading is not None
        async with self._loading:
            started = time.monotonic()
            try:
                # a big hash may take longer than a lookup's deadline
                version, data = await asyncio.wait_for(self._read(), max(self.options.deadline, 60.0))
            except Exception as error:
                self.load_failures += 1
                if not isinstance(error, LookupFailed):
                    self.outage.failed(error)
                else:
                    self._problem(str(error))
                raise
            self.latency_sum += time.monotonic() - started
            self.latency_count += 1
            self.outage.succeeded()
            self._problems.clear()
            tcp = {key: tcp_found(value) for key, value in data.items()}
            socketmap = {key: socketmap_found(value, self.limit) for key, value in data.items()}
            for key, reply in tcp.items():
                if reply[:1] == b"4":
                    self._problem(f"value of key {key!r} too long for a tcp_table reply")
            # one step of the event loop: a request sees the old map or the new one
            self.tcp, self.socketmap = tcp, socketmap
            self.entries = len(data)
            self._version = version
            self.loaded_at = time.time()
            self.loads += 1

    async def _read(self) -> tuple[Any, dict[bytes, bytes]]:
        pipe = self.client.pipeline(transaction=self.target.kind != "cluster")
        if self.options.version_key:
            pipe.get(self.options.version_key)
        pipe.hgetall(self._hash)
        results = await pipe.execute()
        data = results[-1]
        if not data:
            raise LookupFailed(f"hash {self.options.key!r} is missing or empty: not taken for an empty map")
        return (results[0] if self.options.version_key else None), data

    def _changed(self, keys: list[bytes] | None) -> None:
        if keys is None or self._hash in keys:
            self._wanted.set()

    def _changed_all(self) -> None:
        self._wanted.set()  # (re)connected: the hash may have changed meanwhile

    def _lost(self) -> None:
        pass  # the last good snapshot stays served

    async def _reloader(self) -> None:
        """Load again when asked to, when the version key changes, every refresh
        seconds, and after a failure (with backoff)."""
        last = time.monotonic()
        while True:
            wait = self.options.poll if self.options.version_key else self.options.refresh
            if self.outage.down_since:
                wait = min(wait, max(self.outage.retry_at - time.monotonic(), MIN_BACKOFF))
            try:
                await asyncio.wait_for(self._wanted.wait(), wait or None)
            except asyncio.TimeoutError:
                pass
            wanted = self._wanted.is_set()
            self._wanted.clear()
            try:
                if not wanted and not self.outage.down_since and self.options.version_key:
                    if time.monotonic() - last < self.options.refresh:
                        version = await asyncio.wait_for(
                            self.client.get(self.options.version_key), self.options.deadline
                        )
                        if version == self._version:
                            continue
                await self._load()
                last = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:
                pass  # counted and logged by _load; the last good snapshot stays


def create(options: RedisMapOptions, socketmap_limit: int = SOCKETMAP_REPLY_LIMIT) -> RedisSource:
    """The source for *options*."""
    options.check()
    cls = SnapshotSource if options.mode == "snapshot" else LookupSource
    return cls(options, socketmap_limit)


def factory(spec: MapSpec, config: Config) -> Source:
    """The registered factory (:func:`.sources.register`) for ``NAME=redis://...``,
    ``rediss://``, ``unix://``, ``redis+sentinel://`` and ``redis+cluster://`` maps,
    the map's options in the URL's query (see :meth:`RedisMapOptions.from_spec`)."""
    return create(RedisMapOptions.from_spec(f"{spec.name}={spec.target}"))
