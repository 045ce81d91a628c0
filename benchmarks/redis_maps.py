#!/usr/bin/env python
"""serve-map's Redis maps beside the same map served from a file.

The 100,000-entry map of ``maps.py`` (keys ``user<N>@example.com``) is loaded into a
redis-server of its own (free port, no persistence) by ``txframe map-load``, and four
``txframe serve-map`` processes serve it over tcp_table, all started at once:

* ``file``: the postmap text file (the reference);
* ``snapshot``: the Redis hash in snapshot mode;
* ``lookup-hits``: lookup mode with a cache big enough for every key, filled before
  the timed part (100% cache hits);
* ``lookup-0%``: lookup mode with ``cache_entries=0`` (every request reaches Redis).

``maps.py``'s lock-step client (64 connections per server, each sending one request and
waiting for its reply; keys at random, a quarter missing; every reply checked) takes
the servers in turn, short interleaved slices, and reports each server's CPU per
request and requests per second; ratios are medians of round-by-round ratios to the
file map. Redis' own CPU is read from /proc over the whole run and charged to the
lookup-0% requests (the other servers do not ask Redis while timed). The floor:
``redis-benchmark -t get`` with 64 clients, not pipelined, on the same machine.

Then: invalidation lag (a key changed in Redis until serve-map in lookup mode answers
the new value: p50/p99 over 200 changes), a changed 100,000-entry hash (map-load of a
changed file) until the snapshot server serves it, and memory: resident memory per
cached entry (lookup, all keys cached) and per snapshot entry against the file map's.

    python benchmarks/redis_maps.py [--quick] [--json out.json]

Prints Markdown; progress on stderr. Needs redis-server, redis-benchmark and
txframe[redis].
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import map_client  # noqa: E402
import maps  # noqa: E402

ENTRIES = maps.ENTRIES
SPAN = ENTRIES + ENTRIES // 3


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ask_all(port: int, keys: range) -> None:
    """Ask for every key, 64 in flight (fills a lookup cache)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        reader = sock.makefile("rb")
        for start in range(keys.start, keys.stop, 64):
            batch = range(start, min(start + 64, keys.stop))
            sock.sendall(b"".join(b"get user%d@example.com\n" % n for n in batch))
            for _ in batch:
                reader.readline()


def get(port: int, key: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"get " + key + b"\n")
        return sock.makefile("rb").readline()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    rounds, phase, warmup = (
        (maps.QUICK_ROUNDS, maps.QUICK_SECONDS, maps.QUICK_WARMUP) if args.quick
        else (maps.DEFAULT_ROUNDS, maps.DEFAULT_SECONDS, maps.DEFAULT_WARMUP)
    )
    work = tempfile.mkdtemp(prefix="txframe-redis-bench-")
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    servers: dict[str, maps.Server] = {}
    try:
        url = f"redis://127.0.0.1:{redis_port}"
        map_path = os.path.join(work, f"{maps.MAP_NAME}.map")
        maps.write_map(map_path, ENTRIES)
        time.sleep(0.3)
        subprocess.run([sys.executable, "-m", "txframe", "map-load", map_path, "--redis", url,
                        "--hash", "bench"], check=True, stdout=subprocess.DEVNULL)
        specs = {
            "file": map_path,
            "snapshot": f"bench={url}?hash=bench&mode=snapshot",
            "lookup-hits": f"bench={url}?hash=bench&cache_entries=1000000&cache_bytes=2000000000&ttl=86400&negative_ttl=86400",
            "lookup-0%": f"bench={url}?hash=bench&cache_entries=0",
        }
        for key, spec in specs.items():
            ready = os.path.join(work, f"{key}.ready")
            command = [sys.executable, "-m", "txframe", "serve-map", "--tcp", "127.0.0.1:0",
                       "--ready-file", ready, "--log-level", "warning", spec]
            servers[key] = maps.Server(key, key, command, ready)
            servers[key].start(work)
        deadline = time.monotonic() + maps.START_TIMEOUT
        while not all(s.ready() for s in servers.values()):
            if time.monotonic() > deadline:
                raise SystemExit("a server did not get ready")
            time.sleep(0.05)
        base_rss = {k: map_client.rss(s.pids[0]) for k, s in servers.items()}
        log("filling the lookup cache ...")
        ask_all(servers["lookup-hits"].ports["tcp"], range(SPAN))
        cached_rss = map_client.rss(servers["lookup-hits"].pids[0])

        client = map_client.build()
        keys = list(servers)
        targets = [maps.target(servers[k], "tcp", "tcp") for k in keys]
        command = maps.client_command(client, targets, phase, warmup, rounds + 1, 1, seed=1)
        redis_cpu0 = cpu_seconds(redis.pid)
        log(f"lock-step: {rounds} rounds of {len(keys)} servers ...")
        result = maps.run_client(command, (rounds + 1) * len(keys) * (phase + warmup) * 3 + 120,
                                 list(servers.values()))
        redis_cpu = cpu_seconds(redis.pid) - redis_cpu0
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
        for entry in result["phases"]:
            if entry["bad"]:
                raise SystemExit(f"{keys[entry['target']]}: {entry['bad']} wrong replies")
            if not entry["warm"]:
                runs[keys[entry["target"]]].append(maps.phase_figures(entry))
        figures: dict[str, dict[str, float]] = {}
        for key in keys:
            cpu = [r["cpu_per_request"] for r in runs[key]]
            ratio = [r["cpu_per_request"] / f["cpu_per_request"]
                     for r, f in zip(runs[key], runs["file"])]
            figures[key] = {
                "cpu_us": statistics.median(cpu) * 1e6,
                "rate": statistics.median(r["rate"] for r in runs[key]),
                "ratio": statistics.median(ratio),
            }
        misses = sum(r["requests"] for r in runs["lookup-0%"])
        figures["lookup-0%"]["redis_cpu_us"] = redis_cpu / misses * 1e6 if misses else 0.0

        log("redis-benchmark GET (64 clients, not pipelined) ...")
        bench = subprocess.run(
            ["redis-benchmark", "-p", str(redis_port), "-t", "get", "-n",
             "50000" if args.quick else "200000", "-c", "64", "-q"],
            capture_output=True, text=True, timeout=300,
        )
        match = re.search(r"GET: ([\d.]+) requests per second", bench.stdout.replace("\r", "\n"))
        floor = float(match.group(1)) if match else float("nan")

        log("invalidation lag ...")
        import redis as redis_py

        rc = redis_py.Redis(port=redis_port)
        look = servers["lookup-hits"].ports["tcp"]
        lags = []
        for n in range(50 if args.quick else 200):
            key = b"user%d@example.com" % n
            value = b"changed-%d" % n
            get(look, key)  # cached
            rc.hset("bench", key, value)
            start = time.perf_counter()
            while get(look, key) != b"200 " + value + b"\n":
                pass
            lags.append(time.perf_counter() - start)
        lags.sort()
        lag = {"p50_ms": lags[len(lags) // 2] * 1e3, "p99_ms": lags[int(len(lags) * 0.99) - 1] * 1e3}

        log("a changed 100,000-entry hash as a new snapshot ...")
        with open(map_path, "ab") as f:
            f.write(b"snapshot-marker@example.com new\n")
        snap = servers["snapshot"].ports["tcp"]
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "txframe", "map-load", map_path, "--redis", url,
                        "--hash", "bench"], check=True, stdout=subprocess.DEVNULL)
        loaded = time.perf_counter()
        while get(snap, b"snapshot-marker@example.com") != b"200 new\n":
            time.sleep(0.005)
        snapshot_s = time.perf_counter() - loaded
        load_s = loaded - start

        memory = {
            "cached_entry": (cached_rss - base_rss["lookup-hits"]) / SPAN,
            "snapshot_entry": (base_rss["snapshot"] - base_rss["lookup-0%"]) / ENTRIES,
            "file_entry": (base_rss["file"] - base_rss["lookup-0%"]) / ENTRIES,
        }
    finally:
        for server in servers.values():
            server.stop()
        redis.terminate()
        redis.wait()
        shutil.rmtree(work, ignore_errors=True)

    print("| server (tcp_table, 64 lock-step connections) | server CPU/request | vs file map | req/s |")
    print("|---|---|---|---|")
    for key in keys:
        f = figures[key]
        extra = f" (+ Redis {f['redis_cpu_us']:.1f} µs)" if "redis_cpu_us" in f else ""
        print(f"| {key} | {f['cpu_us']:.1f} µs{extra} | {f['ratio']:.2f}× | {f['rate']:,.0f} |")
    print(f"| redis-benchmark GET, 64 clients (floor) | | | {floor:,.0f} |")
    print()
    print(f"Invalidation lag (lookup mode, change → served): p50 {lag['p50_ms']:.1f} ms, "
          f"p99 {lag['p99_ms']:.1f} ms. A changed 100,000-entry hash: map-load {load_s:.2f} s, "
          f"then served as a new snapshot after {snapshot_s:.2f} s.")
    print(f"Memory: {memory['cached_entry']:.0f} B per cached entry (lookup), "
          f"{memory['snapshot_entry']:.0f} B per snapshot entry, "
          f"{memory['file_entry']:.0f} B per file-map entry.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"figures": figures, "floor": floor, "lag": lag, "snapshot_s": snapshot_s,
                       "memory": memory}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
