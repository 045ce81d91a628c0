"""``txframe map-load``: import a postmap text file into Redis, atomically.

::

    txframe map-load --redis URL (--hash NAME | --prefix PREFIX)
                     [--key-folding utf8|ascii|none] [--lenient] [--version-key KEY] [--keep-old SECONDS] MAPFILE

The file is read as serve-map reads file maps (:mod:`txframe.mapfile`), its keys
folded by the same rule (:mod:`.keys`; serve-map's default, ``utf8``, unless told
otherwise: use the ``--key-folding`` that serve-map uses), so admins keep their files
as the source of truth.

- ``--hash NAME``: the entries go to a new hash, then ``RENAME``\\ d over NAME in one
  transaction (with ``INCR`` of ``--version-key``, if given): readers see the old map
  or the new one. In a Cluster the new hash (and the version key) must share NAME's
  slot: the new hash is named ``{NAME}.load`` (or ``NAME.load`` when NAME has a hash
  tag), and a version key in another slot is refused.
- ``--prefix PREFIX``: versioned strings. The entries go to ``PREFIX<V>:<key>`` for a
  new version V, then the pointer key ``PREFIX`` is set to V in one step (serve-map's
  ``versioned`` string maps read it), then, ``--keep-old`` seconds later (longer than
  serve-maps' deadline, so that no lookup begun under the old version finds its keys
  gone), the old version's keys are removed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from typing import Any

from ..mapfile import MapFileError, open_map, parse_map
from .keys import RULES, folding
from .redis_conn import RedisURLError, parse_url

BATCH = 1000


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
    pipe = client.pipeline(transaction=True)
    pipe.rename(temp, name)
    if version_key is not None:
        pipe.incr(version_key)
    await pipe.execute()


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
    parser.add_argument("--keep-old", type=float, default=10.0, metavar="SECONDS",
                        help="(--prefix) remove the old version's keys this long after "
                        "the switch (default 10)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="give up a Redis request after this long (default 30)")


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
    client = target.client(args.timeout, 4, read_timeout=args.timeout)
    try:
        if args.hash is not None:
            await load_hash(client, args.hash.encode(), loaded.entries,
                            args.version_key.encode() if args.version_key else None,
                            target.kind == "cluster")
            return f"loaded {len(loaded.entries)} entries into hash {args.hash}"
        version = await load_strings(client, args.prefix.encode(), loaded.entries, args.keep_old)
        return f"loaded {len(loaded.entries)} entries under {args.prefix}{version.decode()}:"
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
