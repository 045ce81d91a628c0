"""The map sources: what the protocols ask for a key (the contract between the protocols
and every kind of map), the postmap-format files, and the registry that creates a
source from a map spec.

A :class:`Source` returns the whole reply for a key, formatted with
:mod:`txframe.mapproto`: bytes when the answer is in memory (the hot path: a dict
lookup), an awaitable of bytes when it is not. Keys reach it already folded by the
key rule (:mod:`.keys`). A source never raises out of a lookup: a failure is a
TEMP / 400 reply (never a "not found" for a key that may exist).

Sources are made from the configuration by a factory registered for a scheme:
``register("redis", factory)``; a map spec ``[NAME=]SCHEME://...`` picks it, a path
the ``file`` factory (:class:`FileSource`).
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
import os
import time
from typing import Any, Awaitable, Callable, Iterable, NamedTuple, Union

from ..mapfile import MapFileError, open_map, parse_map, show_key
from ..mapproto import (
    NOT_FOUND,
    SOCKETMAP_REPLY_LIMIT,
    socketmap_error,
    socketmap_found,
    tcp_error,
    tcp_found,
    tcp_reply,
)
from .config import Config, MapSpec
from .keys import folding

log = logging.getLogger("txframe.serve_map")

Reply = Union[bytes, Awaitable[bytes]]

TCP_NOT_FOUND = tcp_reply(NOT_FOUND)  # b"500 \n", as Twisted's server says it
SOCKETMAP_NOT_FOUND = socketmap_found(None)  # b"9:NOTFOUND ,"


class LookupFailed(Exception):
    """A lookup could not be answered: ``temporary`` (the default) -> socketmap TEMP /
    tcp_table 400; else -> PERM / 400 (permanent means 'this key can never be answered',
    e.g. its value is too long; never used for a miss)."""

    def __init__(self, reason: str, *, temporary: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary


class SourceError(Exception):
    """A source cannot start (a map that cannot be read, a server that cannot be
    reached): one line for the user."""


class Sample(NamedTuple):
    """One value for the metrics endpoint: ``txframe_map_<name>{labels} value``.
    The server adds the ``map`` (and ``worker``) labels."""

    name: str  # without the txframe_map_ prefix; counters end in _total
    kind: str  # "counter" or "gauge"
    help: str
    labels: dict[str, str]
    value: float


class Source(abc.ABC):
    """One served map, as the protocols see it."""

    name: str  # the socketmap map name; a tcp listener names one map

    #: Optional: replies held in memory, by folded key (tcp_table lines, socketmap
    #: netstrings). The protocols look there first, count a reply found in
    #: ``tcp_hits`` / ``socketmap_hits``, and call the methods below only for keys not
    #: there: a hit costs a dict lookup, no Python call. A reload replaces the dict.
    tcp: dict[bytes, bytes] | None = None
    socketmap: dict[bytes, bytes] | None = None
    tcp_hits = socketmap_hits = 0

    @abc.abstractmethod
    def tcp_reply(self, key: bytes) -> Reply:
        """The tcp_table reply line (newline included) for *key*."""

    @abc.abstractmethod
    def socketmap_reply(self, key: bytes) -> Reply:
        """The socketmap reply netstring for *key*."""

    async def open(self) -> None:
        """The first load or connection. :raises SourceError: if it cannot start."""

    async def reload(self) -> None:
        """Replace the map atomically (SIGHUP); one reload in flight at a time."""

    async def close(self) -> None:
        """Stop (tasks, connections)."""

    def healthy(self) -> bool:
        """Whether the source answers from current data (for ``/health``)."""
        return True

    def describe(self) -> str:
        """A few words for the logs and the ready file (e.g. "N entries from PATH")."""
        return self.name

    def metrics(self) -> Iterable[Sample]:
        """Counters and gauges for the metrics endpoint."""
        return ()


class ValueSource(Source):
    """A source that looks up values: subclasses implement :meth:`get`, this formats
    replies (found / NOTFOUND / TEMP / PERM; 200 / 500 / 400) and counts hits, misses
    and failures."""

    def __init__(self, name: str, socketmap_limit: int = SOCKETMAP_REPLY_LIMIT) -> None:
        self.name = name
        self.socketmap_limit = socketmap_limit
        self.counts = {
            (protocol, outcome): 0
            for protocol in ("tcp", "socketmap")
            for outcome in ("hits", "misses", "failures")
        }

    @abc.abstractmethod
    def get(self, key: bytes) -> Union[bytes, None, Awaitable[Union[bytes, None]]]:
        """The value of *key*, None if it has none, or an awaitable of either.

        :raises LookupFailed: if it cannot say.
        """

    def tcp_reply(self, key: bytes) -> Reply:
        return self._reply(key, "tcp")

    def socketmap_reply(self, key: bytes) -> Reply:
        return self._reply(key, "socketmap")

    def _reply(self, key: bytes, protocol: str) -> Reply:
        try:
            value = self.get(key)
        except LookupFailed as error:
            return self._failed(error, protocol)
        if inspect.isawaitable(value):
            return self._later(value, protocol)
        return self._format(value, protocol)

    async def _later(self, pending: Awaitable[bytes | None], protocol: str) -> bytes:
        try:
            value = await pending
        except LookupFailed as error:
            return self._failed(error, protocol)
        except Exception as error:  # a bug or a broken connection: TEMP, never NOTFOUND
            log.warning("map %s: lookup failed: %s", self.name, error)
            return self._failed(LookupFailed(f"lookup failed: {error}"), protocol)
        return self._format(value, protocol)

    def _format(self, value: bytes | None, protocol: str) -> bytes:
        self.counts[protocol, "misses" if value is None else "hits"] += 1
        if protocol == "tcp":
            return tcp_found(value) if value is not None else TCP_NOT_FOUND
        return socketmap_found(value, self.socketmap_limit)

    def _failed(self, error: LookupFailed, protocol: str) -> bytes:
        self.counts[protocol, "failures"] += 1
        if protocol == "tcp":
            return tcp_error(error.reason)
        return socketmap_error(error.reason, b"TEMP" if error.temporary else b"PERM")

    def metrics(self) -> Iterable[Sample]:
        for (protocol, outcome), value in self.counts.items():
            yield Sample(f"{outcome}_total", "counter", _HELP[outcome],
                         {"protocol": protocol}, value)


_HELP = {
    "hits": "Lookups that found the key.",
    "misses": "Lookups that did not find the key.",
    "failures": "Lookups answered with a temporary or permanent failure.",
}


# -- the registry ---------------------------------------------------------------------

Factory = Callable[[MapSpec, Config], Source]
_factories: dict[str, Factory] = {}


def register(scheme: str, factory: Factory) -> None:
    """Make map specs ``[NAME=]SCHEME://...`` create their source with *factory*
    (called with the parsed spec and the whole configuration)."""
    _factories[scheme.lower()] = factory


def create(spec: MapSpec, config: Config) -> Source:
    """The source for *spec*. :raises SourceError: for a scheme nobody registered."""
    factory = _factories.get(spec.scheme)
    if factory is None:
        known = ", ".join(sorted(s for s in _factories if s != "file"))
        raise SourceError(
            f"map {spec.target}: no source for {spec.scheme}:// "
            f"(known: {known or 'none'}; a path is a map file)"
        )
    return factory(spec, config)


def create_all(config: Config) -> list[Source]:
    return [create(spec, config) for spec in config.specs()]


# -- postmap-format files -------------------------------------------------------------


class FileChanging(Exception):
    """The map file changed while it was read: read it again later."""


def file_signature(path: str) -> Any:
    """What tells a changed file: device, inode, size and mtime; None if missing."""
    try:
        return stat_signature(os.stat(path))
    except OSError:
        return None


def stat_signature(st: os.stat_result) -> Any:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


#: ``FileSource.signature`` / ``failed_signature`` before there is one (None is a
#: signature: the file's, when it is missing).
NO_SIGNATURE: Any = object()


class Built:
    """A map file loaded and its replies formatted, ready for :meth:`FileSource.install`."""

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
        self.tcp: dict[bytes, bytes] = {}
        self.socketmap: dict[bytes, bytes] = {}
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


def build_map(path: str, config: Config, tcp: bool, socketmap: bool | None = None) -> Built:
    """Load the map file at *path* and format its replies (runs in a thread at reload).

    The version read is the one opened: a file replaced (renamed over) meanwhile is
    read whole and the next poll picks up the new one. Only a file written in place
    while it is read is refused.

    :raises MapFileError: unreadable, or (unless ``config.lenient``) with bad lines.
    :raises FileChanging: if the file changed while it was read.
    """
    with open_map(path) as handle:
        before = stat_signature(os.fstat(handle.fileno()))
        loaded = parse_map(handle, fold=folding(config.key_folding))
        if stat_signature(os.fstat(handle.fileno())) != before:
            raise FileChanging(path)
    problems = [f"{path}, line {p.line}: {p.message}" for p in loaded.problems]
    if problems and not config.lenient:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise MapFileError(f"{shown}{more} (--lenient skips such lines)")
    if socketmap is None:
        socketmap = config.wants_socketmap()
    built = Built(loaded.entries, before, tcp, socketmap)
    built.problems = problems
    return built


def build_map_retrying(path: str, config: Config, tcp: bool) -> Built:
    for _ in range(20):
        try:
            return build_map(path, config, tcp)
        except FileChanging:
            time.sleep(0.1)
    raise MapFileError(f"map file {path!r} keeps changing while it is read")


class FileSource(Source):
    """A map file in postmap(1)'s text format, every reply formatted at load time.

    A reload (SIGHUP, or the file's signature changed at a poll) reads the file in a
    thread and replaces both reply dicts in one step of the event loop: a request
    sees the old map or the new one, never a mix. One reload runs at a time; reloads
    asked for meanwhile make one more. A map that fails to load stays as it was, and
    the failure is logged once per version of the file.
    """

    def __init__(self, spec: MapSpec, config: Config) -> None:
        self.name = spec.name
        self.path = spec.target
        self._config = config
        self._serves_tcp = spec.name in config.tcp_names()
        self.tcp: dict[bytes, bytes] = {}
        self.socketmap: dict[bytes, bytes] = {}
        self.entries = 0
        self.tcp_hits = self.tcp_misses = 0
        self.socketmap_hits = self.socketmap_misses = 0
        self.reloads = self.reload_failures = 0
        self.loaded_at = 0.0
        self.signature: Any = NO_SIGNATURE  # the file's (dev, ino, size, mtime) when loaded
        self.failed_signature: Any = NO_SIGNATURE  # ... when it last failed to load
        self._wanted = False  # a reload was asked for
        self._task: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None

    # -- lookups: the protocols find hits in self.tcp / self.socketmap themselves --

    def tcp_reply(self, key: bytes) -> bytes:
        reply = self.tcp.get(key)
        if reply is None:
            self.tcp_misses += 1
            return TCP_NOT_FOUND
        self.tcp_hits += 1
        return reply

    def socketmap_reply(self, key: bytes) -> bytes:
        reply = self.socketmap.get(key)
        if reply is None:
            self.socketmap_misses += 1
            return SOCKETMAP_NOT_FOUND
        self.socketmap_hits += 1
        return reply

    # -- loading --

    async def open(self) -> None:
        # In this thread: nothing is served yet, and the memory the load frees is
        # reused by the connections (a thread's leaves the process bigger).
        try:
            built = build_map_retrying(self.path, self._config, self._serves_tcp)
        except MapFileError as error:
            raise SourceError(str(error)) from None
        self.install(built)
        self._report(built)
        if self._config.poll_interval > 0:
            self._poller = asyncio.ensure_future(self._poll())

    def install(self, built: Built) -> None:
        """Serve *built* from now on (one step of the event loop: atomic for requests)."""
        self.tcp = built.tcp
        self.socketmap = built.socketmap
        self.entries = built.entries
        self.signature = built.signature
        self.failed_signature = NO_SIGNATURE
        self.loaded_at = time.time()

    def describe(self) -> str:
        return f"{self.entries} entries from {self.path}"

    def _report(self, built: Built) -> None:
        for problem in built.problems[:20]:
            log.warning("skipped: %s", problem)
        if len(built.problems) > 20:
            log.warning("skipped %d more lines of %s", len(built.problems) - 20, self.path)
        if built.too_long:
            keys = ", ".join(show_key(key) for key in built.too_long[:5])
            log.warning(
                "map %s: %d value(s) too long for a reply, answered with an error instead "
                "(keys: %s%s)", self.name, len(built.too_long), keys,
                ", ..." if len(built.too_long) > 5 else "",
            )
        if not built.entries:
            log.warning("map %s: %s has no entries: every lookup finds nothing",
                        self.name, self.path)

    async def reload(self) -> None:
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._reload_while_wanted())
        await asyncio.shield(self._task)

    def reloading(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._config.poll_interval)
            signature = file_signature(self.path)
            if (
                signature != self.signature
                and signature != self.failed_signature
                and not self.reloading()
            ):
                await self.reload()

    async def _reload_while_wanted(self) -> None:
        loop = asyncio.get_running_loop()
        while self._wanted:
            self._wanted = False
            signature = file_signature(self.path)
            try:
                built = await loop.run_in_executor(
                    None, build_map, self.path, self._config, self._serves_tcp
                )
            except FileChanging:
                log.info("map file %s changed while being read: trying again", self.path)
                await asyncio.sleep(0.2)
                self._wanted = True
                continue
            except Exception as error:  # MapFileError, MemoryError, ...
                self.reload_failures += 1
                self.failed_signature = signature
                log.error(
                    "reloading map %s failed; still serving the %d entries loaded at %s: %s",
                    self.name, self.entries,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.loaded_at)),
                    error,
                )
                continue
            self.install(built)
            self.reloads += 1
            self._report(built)
            log.info("reloaded map %s from %s: %d entries", self.name, self.path, self.entries)

    async def close(self) -> None:
        for task in (self._poller, self._task):
            if task is not None:
                task.cancel()

    def healthy(self) -> bool:
        return self.signature is not NO_SIGNATURE

    def metrics(self) -> Iterable[Sample]:
        for protocol in ("tcp", "socketmap"):
            labels = {"protocol": protocol}
            yield Sample("hits_total", "counter", _HELP["hits"], labels,
                         getattr(self, f"{protocol}_hits"))
            yield Sample("misses_total", "counter", _HELP["misses"], labels,
                         getattr(self, f"{protocol}_misses"))
        yield Sample("reloads_total", "counter", "Successful reloads of a map.", {},
                     self.reloads)
        yield Sample("reload_failures_total", "counter",
                     "Failed reloads (the old map was kept).", {}, self.reload_failures)
        yield Sample("entries", "gauge", "Entries in the map as served.", {}, self.entries)
        yield Sample("last_reload_timestamp_seconds", "gauge",
                     "When the map served was loaded.", {}, round(self.loaded_at, 3))


register("file", FileSource)


def _redis(spec: MapSpec, config: Config) -> Source:
    # imported when a Redis map is configured: redis-py is optional (txframe[redis])
    from .redis_conn import RedisURLError, require_redis

    try:
        require_redis()
    except RedisURLError as error:
        raise SourceError(f"map {spec.name}: {error}") from None
    from .redis_source import factory

    return factory(spec, config)


for _scheme in ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster"):
    register(_scheme, _redis)
