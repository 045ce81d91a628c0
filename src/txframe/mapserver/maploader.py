"""``txframe map-load``: import a postmap text file into Redis, atomically.

::

    txframe map-load --redis URL (--hash NAME | --prefix PREFIX)
                     [--key-folding utf8|ascii|none] [--lenient] [--version-key KEY] [--keep-old SECONDS]
                     [--wait-replicas N [--wait-timeout SECONDS]] MAPFILE

The file is read as serve-map reads file maps (:mod:`txframe.mapfile`), its keys
folded by the same rule (:mod:`.keys`; serve-map's default, ``utf8``, unless told
otherwise: use the ``--key-folding`` that serve-map uses), so admins keep their files
as the source of truth.

- ``--hash NAME``: the entries go to a new hash, then ``RENAME``\\ d over NAME in one
  atomic script (with ``INCR`` of ``--version-key``, if given): readers see the old map
  or the new one. In a Cluster the new hash (and the version key) must share NAME's
  slot: the new hash is named ``{NAME}.load`` (or ``NAME.load`` when NAME has a hash
  tag), and a version key in another slot is refused.
- ``--prefix PREFIX``: versioned strings. The entries go to ``PREFIX<V>:<key>`` for a
  new version V, then the pointer key ``PREFIX`` is set to V in one step (serve-map's
  ``versioned`` string maps read it), then, ``--keep-old`` seconds later (longer than
  serve-maps' deadline, so that no lookup begun under the old version finds its keys
  gone), the old version's keys are removed.
- ``--wait-replicas N``: then wait (``WAIT``) until N replicas of each primary
  acknowledge every write of the load, and fail if they do not within
  ``--wait-timeout``. Redis replicates asynchronously: without it, a failover right
  after a load can promote a replica that never received the new map.

All of a load's commands go over one connection per Redis server: ``WAIT`` waits for the
writes of the connection it is sent on.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from typing import Any

from ..mapfile import MapFileError, open_map, parse_map
from .config import positive_int, seconds
from .keys import RULES, folding
from .redis_conn import RedisURLError, parse_url

BATCH = 1000
#: RENAME the new hash over the old one, and INCR the version key if there is one.
SWITCH_HASH = """
redis.call('RENAME', KEYS[1], KEYS[2])
if KEYS[3] then redis.call('INCR', KEYS[3]) end
"""


class LoadError(Exception):
    """The load failed; the message says why (nothing served changed)."""


def temporary_name(name: bytes) -> bytes:
    """A key in *name*'s Cluster slot for the hash being built."""
    start = name.find(b"{")
    if start >= 0:
        end = name.find(b"}", start + 1)
        if end > start + 1:
            return name + b".load"  # the hash tag decides the slot
    return b"{" + name + b"}.load"


def _slot(key: bytes) -> int:
    from redis.crc import key_slot

    return int(key_slot(key))


async def load_hash(client: Any, name: bytes, entries: dict[bytes, bytes],
                    version_key: bytes | None, cluster: bool) -> None:
    temp = temporary_name(name)
    if cluster and version_key is not None and _slot(version_key) != _slot(name):
        raise LoadError(
            f"in a Cluster the version key must share the hash's slot: use a hash tag, "
            f"e.g. {{{name.decode(errors='replace')}}}.version"
        )
    await client.delete(temp)
    items = list(entries.items())
    for start in range(0, len(items), BATCH):
        mapping = dict(items[start : start + BATCH])
        await client.hset(temp, mapping=mapping)
    # One script, so one atomic step (a Cluster's client refuses RENAME in a MULTI
    # pipeline; a script whose keys share a slot runs anywhere)
    keys = [temp, name] if version_key is None else [temp, name, version_key]
    await client.eval(SWITCH_HASH, len(keys), *keys)


async def load_strings(client: Any, prefix: bytes, entries: dict[bytes, bytes],
                       keep_old: float) -> bytes:
    """Returns the new version."""
    old = await client.get(prefix)
    version = b"%d" % time.time_ns()
    base = prefix + version + b":"
    items = list(entries.items())
    for start in range(0, len(items), BATCH):
        pipe = client.pipeline(transaction=False)
        for key, value in items[start : start + BATCH]:
            pipe.set(base + key, value)
        await pipe.execute()
    await client.set(prefix, version)
    if old:
        await asyncio.sleep(keep_old)
        pattern = re.sub(rb"([*?\[\]\\])", rb"\\\1", prefix + old + b":") + b"*"
        batch = []
        async for key in client.scan_iter(match=pattern, count=BATCH):
            batch.append(key)
            if len(batch) >= BATCH:
                await _unlink(client, batch)
                batch = []
        if batch:
            await _unlink(client, batch)
    return version


async def wait_replicas(client: Any, replicas: int, timeout: float, cluster: bool) -> None:
    """Wait until *replicas* replicas of each primary have every write made so far on
    this client's connections; raise LoadError naming the primaries that fell short."""
    milliseconds = max(1, round(timeout * 1000))
    if cluster:  # each primary, on its own connection
        primaries = [(f"{node.host}:{node.port}", {"target_nodes": node})
                     for node in client.get_primaries()]
    else:
        primaries = [("the primary", {})]
    short = []
    for name, route in primaries:
        acknowledged = await client.execute_command("WAIT", replicas, milliseconds, **route)
        if acknowledged < replicas:
            short.append(f"{name}: {acknowledged} of {replicas}")
    if short:
        raise LoadError(
            f"the new map is live on the primary, but not every replica acknowledged it "
            f"within {timeout:g} s ({'; '.join(short)}): a failover now could lose it"
        )


async def _unlink(client: Any, keys: list[bytes]) -> None:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.unlink(key)  # one key per command: keys of a Cluster lie in many slots
    await pipe.execute()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mapfile", metavar="MAPFILE", help="a map in postmap(1)'s text format")
    parser.add_argument("--redis", required=True, metavar="URL",
                        help="redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL")
    layout = parser.add_mutually_exclusive_group(required=True)
    layout.add_argument("--hash", metavar="NAME", help="load into the hash NAME")
    layout.add_argument("--prefix", metavar="PREFIX",
                        help="load into versioned strings PREFIX<version>:<key>")
    parser.add_argument("--key-folding", choices=RULES, default="utf8",
                        help="fold keys as serve-map --key-folding does (default utf8, "
                        "serve-map's default)")
    parser.add_argument("--lenient", action="store_true",
                        help="skip (and report) lines without a value and duplicate keys "
                        "instead of refusing the file")
    parser.add_argument("--version-key", metavar="KEY",
                        help="(--hash) INCR this key with the switch (serve-map's version_key)")
    parser.add_argument("--keep-old", type=seconds, default=10.0, metavar="SECONDS",
                        help="(--prefix) remove the old version's keys this long after "
                        "the switch (default 10)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="give up a Redis request after this long (default 30)")
    parser.add_argument("--wait-replicas", type=positive_int, default=0, metavar="N",
                        help="then wait until N replicas of each primary acknowledge the "
                        "load (WAIT); fail if they do not within --wait-timeout")
    parser.add_argument("--wait-timeout", type=seconds, default=10.0, metavar="SECONDS",
                        help="how long --wait-replicas waits (default 10)")


async def _run(args: argparse.Namespace) -> str:
    with open_map(args.mapfile) as handle:
        loaded = parse_map(handle, fold=folding(args.key_folding))
    if loaded.problems:
        for problem in loaded.problems:
            print(f"{args.mapfile}:{problem.line}: {problem.message}", file=sys.stderr)
        if not args.lenient:
            raise LoadError(f"{args.mapfile}: {len(loaded.problems)} bad line(s); nothing loaded "
                            "(--lenient skips them)")
    if not loaded.entries:
        raise LoadError(f"{args.mapfile}: no entries; nothing loaded")
    target = parse_url(args.redis)
    cluster = target.kind == "cluster"
    # One connection per server (see the module's docstring); the reads may block in
    # WAIT for --wait-timeout.
    read_timeout = args.timeout + (args.wait_timeout if args.wait_replicas else 0)
    client = target.client(args.timeout, 1, read_timeout=read_timeout)
    try:
        if args.hash is not None:
            await load_hash(client, args.hash.encode(), loaded.entries,
                            args.version_key.encode() if args.version_key else None, cluster)
            done = f"loaded {len(loaded.entries)} entries into hash {args.hash}"
        else:
            version = await load_strings(client, args.prefix.encode(), loaded.entries,
                                         args.keep_old)
            done = f"loaded {len(loaded.entries)} entries under {args.prefix}{version.decode()}:"
        if args.wait_replicas:
            await wait_replicas(client, args.wait_replicas, args.wait_timeout, cluster)
            done += f", acknowledged by {args.wait_replicas} replica(s)" + (
                " of each primary" if cluster else "")
        return done
    finally:
        await client.aclose()


def main(argv: list[str]) -> int:
    """``txframe map-load ARGV``; the exit status."""
    parser = argparse.ArgumentParser(
        prog="txframe map-load",
        description="Import MAPFILE (postmap(1)'s text format) into Redis for serve-map's "
        "Redis maps: a hash renamed over the old one, or versioned strings switched in "
        "one step. Needs txframe[redis].",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    try:
        print(asyncio.run(_run(args)))
    except (LoadError, MapFileError, RedisURLError) as error:
        print(f"txframe map-load: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # Redis' errors: one line, nothing served changed
        print(f"txframe map-load: Redis: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0
