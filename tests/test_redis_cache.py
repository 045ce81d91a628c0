"""The reply cache of Redis maps in lookup mode: bounds, TTLs, stale values,
invalidation (a fake clock; no Redis needed)."""

from __future__ import annotations

import pytest

from txframe.mapserver.redis_cache import ENTRY_OVERHEAD, ReplyCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**kw: object) -> tuple[ReplyCache, Clock]:
    clock = Clock()
    options = dict(max_entries=100, max_bytes=1 << 20, ttl=10.0, negative_ttl=2.0, grace=0.0)
    options.update(kw)
    return ReplyCache(clock=clock, **options), clock  # type: ignore[arg-type]


def test_replies_formatted_once() -> None:
    cache, _ = make()
    cache.put(b"k", b"v 1%")
    cache.put(b"gone", None)
    assert cache.tcp[b"k"] == b"200 v%201%25\n"
    assert cache.socketmap[b"k"] == b"7:OK v 1%,"
    assert cache.tcp[b"gone"] == b"500 \n"
    assert cache.socketmap[b"gone"] == b"9:NOTFOUND ,"


def test_ttl_and_negative_ttl() -> None:
    cache, clock = make()
    cache.put(b"k", b"v")
    cache.put(b"n", None)
    clock.now += 2.5
    cache.expire()
    assert b"n" not in cache.tcp and b"k" in cache.tcp
    clock.now += 8
    cache.expire()
    assert b"k" not in cache.tcp and len(cache) == 0


def test_stale_within_grace_never_negative() -> None:
    cache, clock = make(grace=5.0)
    cache.put(b"k", b"v")
    cache.put(b"n", None)
    clock.now += 11
    cache.expire()
    assert b"k" not in cache.tcp
    assert cache.stale(b"k") == b"v"
    assert cache.stale(b"n") is None
    clock.now += 5
    cache.expire()
    assert cache.stale(b"k") is None and len(cache) == 0


def test_distrust_keeps_values_only_as_stale() -> None:
    cache, clock = make(grace=5.0)
    cache.put(b"k", b"v")
    cache.put(b"n", None)
    cache.distrust()
    assert not cache.tcp and not cache.socketmap
    assert cache.stale(b"k") == b"v"
    assert cache.stale(b"n") is None
    clock.now += 5  # the grace counts from the moment the value was distrusted
    assert cache.stale(b"k") is None
    cache.expire()
    assert len(cache) == 0


def test_distrust_without_grace_forgets() -> None:
    cache, _ = make(grace=0.0)
    cache.put(b"k", b"v")
    cache.distrust()
    assert cache.stale(b"k") is None and len(cache) == 0


def test_bounds_entries_and_bytes() -> None:
    cache, _ = make(max_entries=10)
    for n in range(1000):
        cache.put(b"key%d" % n, b"value")
    assert len(cache) == 10 and len(cache.tcp) == 10
    assert set(cache.tcp) == {b"key%d" % n for n in range(990, 1000)}
    limit = 5 * (ENTRY_OVERHEAD + 200)
    cache, _ = make(max_bytes=limit)
    for n in range(1000):
        cache.put(b"key%04d" % n, b"x" * 50)
        assert cache.bytes <= limit
    assert 0 < len(cache) <= 5
    assert len(cache._queue) <= 2 * len(cache) + 1024  # the expiry heap is bounded too


def test_size_zero_disables() -> None:
    for kw in ({"max_entries": 0}, {"max_bytes": 0}):
        cache, _ = make(**kw)
        cache.put(b"k", b"v")
        assert len(cache) == 0 and not cache.tcp


def test_invalidate_and_clear() -> None:
    cache, _ = make()
    cache.put(b"a", b"1")
    cache.put(b"b", b"2")
    cache.invalidate(b"a")
    cache.invalidate(b"missing")
    assert b"a" not in cache.tcp and b"b" in cache.tcp
    assert cache.invalidations == 1
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0 and not cache.socketmap


def test_replaced_value() -> None:
    cache, clock = make()
    cache.put(b"a", b"1")
    clock.now += 5
    cache.put(b"a", b"2")
    clock.now += 6
    cache.expire()  # the first put's expiry must not drop the second value
    assert cache.tcp[b"a"] == b"200 2\n"
