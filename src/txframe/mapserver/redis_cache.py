"""The bounded reply cache of a Redis map in lookup mode.

A hit must cost what a file map's lookup costs: ``tcp`` and ``socketmap`` map a key to
its whole reply, formatted once when the value arrived, and a hit is one ``dict.get``
(by the protocols themselves: the dicts are the source's ``Source.tcp`` /
``Source.socketmap``, so they are only ever changed in place, never replaced).
Everything else (expiry, bounds, stale values) is bookkeeping beside those dicts:

- bounds: at most ``max_entries`` keys and ``max_bytes`` (keys, both replies and a
  fixed per-entry overhead, :data:`ENTRY_OVERHEAD`); the oldest entry goes first (FIFO:
  no reordering on a hit, which would cost every hit);
- expiry: values live ``ttl`` seconds, "not found" answers ``negative_ttl``; a timer
  calls :meth:`ReplyCache.expire` (so TTLs are honoured to within its period);
- stale values: an expired value (never a "not found") is kept ``grace`` seconds more
  and only handed out by :meth:`stale` when Redis cannot answer;
- :meth:`invalidate` drops a key Redis says changed; :meth:`distrust` turns every
  value stale at once (the invalidation channel was lost, changes may have been missed).
"""

from __future__ import annotations

import time
import heapq
from typing import Callable

from ..mapproto import SOCKETMAP_REPLY_LIMIT, socketmap_found, tcp_found

#: What one entry costs beside its bytes (an estimate: two dict slots, the bookkeeping
#: object, the expiry heap's tuple, the bytes objects' headers). benchmarks/redis_maps.py
#: measured 588 B of resident memory per entry whose key and replies hold ~110 B.
ENTRY_OVERHEAD = 400


class _Entry:
    __slots__ = ("value", "size", "fresh", "stale")

    def __init__(self, value: bytes | None, size: int, fresh: float, stale: float) -> None:
        self.value = value  # None: "not found"
        self.size = size
        self.fresh = fresh  # served as fresh until
        self.stale = stale  # handed out by stale() until


class ReplyCache:
    __slots__ = (
        "tcp",
        "socketmap",
        "max_entries",
        "max_bytes",
        "ttl",
        "negative_ttl",
        "grace",
        "limit",
        "clock",
        "bytes",
        "_meta",
        "_queue",
        "evictions",
        "invalidations",
    )

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        ttl: float,
        negative_ttl: float,
        grace: float = 0.0,
        limit: int = SOCKETMAP_REPLY_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tcp: dict[bytes, bytes] = {}
        self.socketmap: dict[bytes, bytes] = {}
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.grace = grace
        self.limit = limit
        self.clock = clock
        self.bytes = 0
        # insertion order is the eviction order
        self._meta: dict[bytes, _Entry] = {}
        self._queue: list[tuple[float, bytes]] = []  # heap of (fresh until, key)
        self.evictions = 0
        self.invalidations = 0

    def __len__(self) -> int:
        return len(self._meta)

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def put(self, key: bytes, value: bytes | None) -> None:
        """Cache Redis' answer for *key* (None: not found)."""
        if not self.enabled:
            return
        tcp = tcp_found(value)
        socketmap = socketmap_found(value, self.limit)
        size = ENTRY_OVERHEAD + 2 * len(key) + len(tcp) + len(socketmap)
        if size > self.max_bytes:
            return
        self._drop(key)
        now = self.clock()
        fresh = now + (self.ttl if value else self.negative_ttl)
        # a value may be served stale for a while; a "not found" never is
        self._meta[key] = _Entry(value, size, fresh, fresh + self.grace if value else fresh)
        self.tcp[key] = tcp
        self.socketmap[key] = socketmap
        heapq.heappush(self._queue, (fresh, key))
        if len(self._queue) > 2 * len(self._meta) + 1024:
            # drop the leftovers of replaced and evicted keys (bounded memory)
            self._queue = [(e.fresh, k) for k, e in self._meta.items()]
            heapq.heapify(self._queue)
        self.bytes += size
        while len(self._meta) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._meta)))
            self.evictions += 1

    def stale(self, key: bytes) -> bytes | None:
        """A value for *key* that may be out of date, within the grace; or None."""
        entry = self._meta.get(key)
        if entry is None or entry.value is None or self.clock() >= entry.stale:
            return None
        return entry.value

    def invalidate(self, key: bytes) -> None:
        if key in self._meta:
            self._drop(key)
            self.invalidations += 1

    def clear(self) -> None:
        """Forget everything (Redis said every key may have changed)."""
        self.invalidations += len(self._meta)
        self.tcp.clear()  # in place: the source hands these very dicts to the protocols
        self.socketmap.clear()
        self._meta.clear()
        self._queue.clear()
        self.bytes = 0

    def distrust(self) -> None:
        """Serve nothing as fresh any more; values stay available to :meth:`stale`
        until their grace ends."""
        self.tcp.clear()
        self.socketmap.clear()
        until = self.clock() + self.grace  # stale from now on, for the grace at most
        for key, entry in list(self._meta.items()):
            if entry.value is None or not self.grace:
                self._drop(key)
            else:
                entry.fresh = entry.stale = min(entry.stale, until)
                heapq.heappush(self._queue, (entry.stale, key))

    def expire(self) -> None:
        """Stop serving entries past their TTL; forget those past their grace."""
        now = self.clock()
        queue = self._queue
        while queue and queue[0][0] <= now:
            fresh, key = heapq.heappop(queue)
            entry = self._meta.get(key)
            if entry is None or entry.fresh != fresh:
                continue  # replaced or dropped since
            self.tcp.pop(key, None)
            self.socketmap.pop(key, None)
            if entry.stale > now:
                heapq.heappush(queue, (entry.stale, key))
                entry.fresh = entry.stale
            else:
                self._drop(key)

    def _drop(self, key: bytes) -> None:
        entry = self._meta.pop(key, None)
        if entry is not None:
            self.bytes -= entry.size
            self.tcp.pop(key, None)
            self.socketmap.pop(key, None)
