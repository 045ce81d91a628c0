#!/usr/bin/env python
"""Postfix map servers side by side: ``txframe serve-map`` against Twisted.

One 100,000-entry map (keys ``user<N>@example.com``, values
``smtp:[mx<N>.example.net]``) is served, each server in its own process, all started at
once and kept running for the whole run, by:

* ``txframe serve-map`` (the real program, ``python -m txframe serve-map``, on the
  event loop it picks: uvloop when installed, else asyncio's), over tcp_table and
  over socketmap (one process serving both);
* ``txframe serve-map --workers 2`` (tcp_table);
* txframe's drop-in ``txframe.postfix.PostfixTCPMapServer`` on Twisted's reactor;
* Twisted's ``twisted.protocols.postfix.PostfixTCPMapServer``;
* the floors: a server answering a constant per line, no lookup, on Twisted's reactor
  and on the event loop serve-map runs on (``map_servers.py`` says why a bare
  Protocol);
* with uvloop installed, also serve-map with ``--loop asyncio`` and the floor on
  asyncio's own loop (``--no-extra-loops``: not).

One client process (``map_client.py``: C, compiled with the system's cc; a Python
fallback without one) holds 64 connections to each of them, and takes them in turn: a
*round* gives every *cell* (a server and protocol), in an order rotated from round to
round, a short slice -- 0.1 s untimed, then 0.5 s timed -- while the other servers'
connections wait, idle; 20 rounds follow one warm-up round. In a slice, each of the 64
connections sends one request and waits for its reply before the next, as Postfix
does; keys drawn at random, about a quarter of them missing; every reply checked. At
the start and end of the timed part the client reads the server's own CPU counters
(``utime + stime`` from ``/proc/PID/stat``; for ``--workers 2``, the workers' and the
supervisor's), its own and the machine's: server CPU per request and requests per
second. Each figure reported is the **median over the rounds**, and each ratio between
two cells the median of their ratios round by round (slices seconds apart). Short
interleaved slices, because this kind of machine (a small, shared VM) changes speed by
±30% from one few-second stretch to the next: one long run per server, or the best of
three, compares one moment with another; many slices spread every server over the same
moments. The report also gives the client's CPU per request, how busy the server was
(server CPU ÷ wall time: near 100%, the server is the bottleneck, not the client) and
what the rest of the machine used meanwhile.

Then idle connections: 10,000 connections (a client process raising its open-file
limit) to serve-map's tcp_table port, to txframe's and to Twisted's
PostfixTCPMapServer, each sending one request; the server's resident memory before
and after (÷ 10,000: bytes per idle connection); after holding them a while every
connection must answer again.

Prints Markdown; progress goes to stderr.

    python benchmarks/maps.py                   # full run, ~2 min
    python benchmarks/maps.py --quick           # smoke run, ~25 s
    python benchmarks/maps.py --check-targets   # also PASS/MISS for the issue's targets
    python benchmarks/maps.py --json out.json   # also write the raw results
    python benchmarks/maps.py --profile 25      # also cProfile serve-map, txframe's and
                                                # Twisted's PostfixTCPMapServer under load
                                                # (top 25 functions by own time)

``compare.py --only maps`` runs this too (not among compare.py's default families:
it takes about two minutes on its own). The exit code is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import map_client  # noqa: E402

ENTRIES = 100_000
CONNECTIONS = 64
DEFAULT_ROUNDS = 20  # cycles through every cell, after one warm-up cycle
DEFAULT_SECONDS = 0.5  # timed per cell and round
DEFAULT_WARMUP = 0.1  # untimed, at the start of each phase
DEFAULT_IDLE = 10_000
QUICK_ROUNDS = 3
QUICK_SECONDS = 0.3
QUICK_WARMUP = 0.05
QUICK_IDLE = 2_000
IDLE_HOLD = 2.0  # seconds the idle connections are held before they must answer again
PROFILE_SECONDS = 3.0
START_TIMEOUT = 180.0
MAP_NAME = "bench"  # the map file is bench.map: serve-map serves it as "bench"
SERVERS_SCRIPT = os.path.join(HERE, "map_servers.py")
CLIENT_SCRIPT = os.path.join(HERE, "map_client.py")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the map ---------------------------------------------------------------------------


def write_map(path: str, entries: int) -> None:
    with open(path, "wb") as f:
        f.write(
            b"".join(
                b"user%d@example.com smtp:[mx%d.example.net]\n" % (n, n) for n in range(entries)
            )
        )


# -- servers ---------------------------------------------------------------------------


@dataclass
class Server:
    """A server process: how it is started, then its pids (those whose CPU counts)
    and ports (per protocol)."""

    key: str
    label: str
    command: list[str]
    ready_file: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)

    def start(self, workdir: str) -> None:
        self.log_path = os.path.join(workdir, f"{self.key}.log")
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True,
            )

    def ready(self) -> bool:
        """Whether it is listening (reads its ready file); raises if it died."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise SystemExit(f"{self.label} exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with open(self.ready_file) as f:
                info = json.load(f)
        except (OSError, ValueError):
            return False
        self.info = info
        if "tcp" in info:  # txframe serve-map's ready file
            self.pids = [info["pid"], *info.get("workers", [])]
            if info["tcp"]:
                self.ports["tcp"] = info["tcp"][0]["port"]
            if info["socketmap"]:
                self.ports["socketmap"] = info["socketmap"][0]["port"]
        else:  # map_servers.py's
            self.pids = [info["pid"]]
            self.ports["tcp"] = info["port"]
        return True

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_map_command(map_path: str, ready: str, loop: str, workers: int = 1,
                      socketmap: bool = True, python: str = sys.executable) -> list[str]:
    command = [
        python, "-m", "txframe", "serve-map",
        "--tcp", "127.0.0.1:0",
        "--ready-file", ready,
        "--loop", loop,
        "--log-level", "warning",
    ]
    if socketmap:
        command += ["--socketmap", "127.0.0.1:0"]
    if workers > 1:
        command += ["--workers", str(workers)]
    return command + [map_path]


def make_servers(workdir: str, map_path: str, loop: str, extra_loops: list[str],
                 baseline: str | None = None) -> dict[str, Server]:
    """The servers: serve-map and the floor on *loop* (and on each of *extra_loops*),
    serve-map --workers 2, the three on Twisted's reactor, and serve-map run by the
    *baseline* interpreter (another txframe, for a before/after comparison)."""

    def ready(key: str) -> str:
        return os.path.join(workdir, f"{key}.ready")

    def ours(kind: str, key: str, on: str = loop) -> list[str]:
        command = [sys.executable, SERVERS_SCRIPT, kind, "--ready-file", ready(key)]
        if kind == "asyncio-floor":
            return command + ["--loop", on]
        return command + ([] if kind == "twisted-floor" else ["--map", map_path])

    servers = [
        Server("serve-map", f"txframe serve-map ({loop})",
               serve_map_command(map_path, ready("serve-map"), loop), ready("serve-map")),
        Server("serve-map-2", f"txframe serve-map --workers 2 ({loop})",
               serve_map_command(map_path, ready("serve-map-2"), loop, 2, False),
               ready("serve-map-2")),
        Server("txframe-postfix", "txframe PostfixTCPMapServer (Twisted reactor)",
               ours("txframe-postfix", "txframe-postfix"), ready("txframe-postfix")),
        Server("twisted-postfix", "Twisted PostfixTCPMapServer",
               ours("twisted-postfix", "twisted-postfix"), ready("twisted-postfix")),
        Server("twisted-floor", "Twisted reactor floor (constant reply)",
               ours("twisted-floor", "twisted-floor"), ready("twisted-floor")),
        Server("loop-floor", f"{loop} floor (constant reply)",
               ours("asyncio-floor", "loop-floor"), ready("loop-floor")),
    ]
    if baseline:
        servers.append(Server("serve-map-baseline", f"baseline serve-map ({loop})",
                              serve_map_command(map_path, ready("serve-map-baseline"), loop,
                                                python=baseline),
                              ready("serve-map-baseline")))
    for other in extra_loops:
        key = f"serve-map-{other}"
        servers.append(Server(key, f"txframe serve-map ({other})",
                              serve_map_command(map_path, ready(key), other, socketmap=False),
                              ready(key)))
        key = f"loop-floor-{other}"
        servers.append(Server(key, f"{other} floor (constant reply)",
                              ours("asyncio-floor", key, other), ready(key)))
    return {server.key: server for server in servers}


def start_all(servers: list[Server], workdir: str) -> None:
    for server in servers:
        server.start(workdir)
    deadline = time.monotonic() + START_TIMEOUT
    waiting = list(servers)
    while waiting:
        waiting = [server for server in waiting if not server.ready()]
        if waiting and time.monotonic() > deadline:
            raise SystemExit(
                "not listening after %d s: %s" % (START_TIMEOUT, ", ".join(s.label for s in waiting))
            )
        if waiting:
            time.sleep(0.05)


# -- cells -----------------------------------------------------------------------------


@dataclass
class Cell:
    key: str
    label: str
    server: str  # key into the servers
    protocol: str  # tcp or socketmap: which port
    mode: str  # the client's: tcp, socketmap or line (any line is a good reply)
    floor: str | None  # the cell whose CPU is this one's event-loop floor


def make_cells(loop: str, extra_loops: list[str], baseline: bool = False) -> list[Cell]:
    cells = [
        Cell("serve-map-tcp", f"txframe serve-map ({loop})", "serve-map", "tcp", "tcp",
             "loop-floor"),
        Cell("serve-map-socketmap", f"txframe serve-map ({loop})", "serve-map", "socketmap",
             "socketmap", "loop-floor"),
        Cell("serve-map-2-tcp", f"txframe serve-map --workers 2 ({loop})", "serve-map-2", "tcp",
             "tcp", None),
        Cell("txframe-postfix", "txframe PostfixTCPMapServer on Twisted", "txframe-postfix",
             "tcp", "tcp", "twisted-floor"),
        Cell("twisted-postfix", "Twisted PostfixTCPMapServer", "twisted-postfix", "tcp", "tcp",
             "twisted-floor"),
        Cell("twisted-floor", "floor: Twisted reactor", "twisted-floor", "tcp", "line", None),
        Cell("loop-floor", f"floor: {loop} loop", "loop-floor", "tcp", "line", None),
    ]
    if baseline:
        cells[2:2] = [
            Cell("serve-map-baseline-tcp", f"baseline serve-map ({loop})", "serve-map-baseline",
                 "tcp", "tcp", "loop-floor"),
            Cell("serve-map-baseline-socketmap", f"baseline serve-map ({loop})",
                 "serve-map-baseline", "socketmap", "socketmap", "loop-floor"),
        ]
    for other in extra_loops:
        cells.insert(-2, Cell(f"serve-map-{other}-tcp", f"txframe serve-map --loop {other}",
                              f"serve-map-{other}", "tcp", "tcp", f"loop-floor-{other}"))
        cells.append(Cell(f"loop-floor-{other}", f"floor: {other} loop", f"loop-floor-{other}",
                          "tcp", "line", None))
    return cells


PROTOCOL_LABEL = {"tcp": "tcp_table", "socketmap": "socketmap"}


def client_command(client: str | None, targets: list[str], phase: float, warmup: float,
                   cycles: int, warm_cycles: int, seed: int) -> list[str]:
    args = [
        f"{phase:g}", f"{warmup:g}", str(cycles), str(warm_cycles), str(CONNECTIONS),
        MAP_NAME, str(ENTRIES), str(seed), *targets,
    ]
    if client is not None:
        return [client, *args]
    return [sys.executable, CLIENT_SCRIPT, "lockstep", *args]


def target(server: Server, protocol: str, mode: str) -> str:
    return f"127.0.0.1:{server.ports[protocol]}:{mode}:{'+'.join(map(str, server.pids))}"


def run_client(command: list[str], timeout: float, servers: list[Server]) -> dict[str, Any]:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        result = {}
    if proc.returncode != 0 or "phases" not in result:
        logs = "\n".join(f"-- {s.label}:\n{s.log()}" for s in servers if s.log().strip())
        raise SystemExit(
            f"the lock-step client failed (exit {proc.returncode}): {proc.stderr.strip()}\n{logs}"
        )
    return result


def phase_figures(phase: dict[str, Any]) -> dict[str, Any]:
    """One phase's per-request figures."""
    requests = phase["requests"]
    out = dict(phase)
    out["cpu_per_request"] = phase["server_cpu"] / requests
    out["user_per_request"] = phase["server_user_cpu"] / requests
    out["client_cpu_per_request"] = phase["client_cpu"] / requests
    out["rate"] = requests / phase["seconds"]
    out["server_busy"] = phase["server_cpu"] / phase["seconds"]
    machine = phase.get("machine")
    if machine:
        # The rest of the machine: every CPU's busy time but softirq (mostly the
        # loopback traffic of this very measurement, charged to no process), less the
        # server's and the client's; steal (the hypervisor's other guests) included.
        busy = sum(machine[k] for k in ("user", "nice", "system", "irq", "steal"))
        out["others_busy"] = max(
            0.0, busy - phase["server_cpu"] - phase["client_cpu"]
        ) / phase["seconds"]
        out["softirq_per_request"] = machine["softirq"] / requests
    else:
        out["others_busy"] = out["softirq_per_request"] = None
    return out


def run_phases(cells: list[Cell], servers: dict[str, Server], client: str | None,
               cycles: int, phase: float, warmup: float) -> dict[str, list[dict[str, Any]]]:
    """One client process takes the cells in turn, *cycles* times over (plus one
    warm-up cycle): every cell's phases, warm-up phases left out."""
    targets = [target(servers[cell.server], cell.protocol, cell.mode) for cell in cells]
    command = client_command(client, targets, phase, warmup, cycles + 1, 1, seed=1)
    expected = (cycles + 1) * len(cells) * (phase + warmup + 0.05)
    log(f"  one client process, {cycles} cycles (+1 warm-up) of {len(cells)} phases of "
        f"{phase:g} s: ~{expected:.0f} s ...")
    result = run_client(command, expected * 3 + 120, list(servers.values()))
    runs: dict[str, list[dict[str, Any]]] = {cell.key: [] for cell in cells}
    for entry in result["phases"]:
        cell = cells[entry["target"]]
        if entry["bad"]:
            raise SystemExit(f"{cell.label} ({PROTOCOL_LABEL[cell.protocol]}): "
                             f"{entry['bad']} wrong replies")
        if not entry["requests"]:
            raise SystemExit(f"{cell.label}: no reply in a phase")
        if entry["server_cpu"] < 0:
            raise SystemExit(f"cannot read the CPU counters of {servers[cell.server].label}")
        if not entry["warm"]:
            figures = phase_figures(entry)
            figures["client"] = result.get("client")
            runs[cell.key].append(figures)
    return runs


def median(values: list[float]) -> float:
    return statistics.median(values)


def summarise(cells: list[Cell], runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per cell: the median over its phases of each figure, the pooled CPU per
    request (all its CPU ÷ all its requests) and the best phase's."""
    out: dict[str, Any] = {}
    for cell in cells:
        results = runs[cell.key]

        def med(key: str) -> float | None:
            values = [r[key] for r in results if r.get(key) is not None]
            return median(values) if values else None

        requests = sum(r["requests"] for r in results)
        out[cell.key] = {
            "label": cell.label,
            "protocol": cell.protocol,
            "server": cell.server,
            "cpu_per_request": med("cpu_per_request"),
            "user_per_request": med("user_per_request"),
            "cpu_per_request_pooled": sum(r["server_cpu"] for r in results) / requests,
            "cpu_per_request_best": min(r["cpu_per_request"] for r in results),
            "rate": med("rate"),
            "rate_pooled": requests / sum(r["seconds"] for r in results),
            "client_cpu_per_request": med("client_cpu_per_request"),
            "server_busy": med("server_busy"),
            "others_busy": med("others_busy"),
            "softirq_per_request": med("softirq_per_request"),
            "client": results[0].get("client") if results else None,
            "phases": len(results),
            "requests": requests,
            "hits": sum(r["hits"] for r in results),
            "misses": sum(r["misses"] for r in results),
            "runs": results,
        }
    for cell in cells:
        entry = out[cell.key]
        twisted = out.get("twisted-postfix")
        floor = out.get(cell.floor) if cell.floor else None
        # Ratios round by round: each of the cell's slices against the other cell's
        # slice of the same round (seconds apart, so the machine's speed drifts out of
        # them), the median of those; and the plain ratios of the medians.
        entry["vs_twisted"] = _paired(runs[cell.key], runs.get("twisted-postfix"))
        entry["vs_floor"] = _paired(runs[cell.key], runs[cell.floor]) if floor else None
        base = runs.get(f"serve-map-baseline-{cell.protocol}")
        entry["vs_baseline"] = (
            _paired(runs[cell.key], base) if base and cell.key.startswith("serve-map-")
            and cell.mode != "line" else None
        )
        entry["vs_twisted_of_medians"] = (
            entry["cpu_per_request"] / twisted["cpu_per_request"] if twisted else None
        )
        entry["vs_floor_of_medians"] = (
            entry["cpu_per_request"] / floor["cpu_per_request"] if floor else None
        )
    return out


def _paired(mine: list[dict[str, Any]], other: list[dict[str, Any]] | None) -> float | None:
    if not other:
        return None
    by_cycle = {r["cycle"]: r["cpu_per_request"] for r in other}
    ratios = [r["cpu_per_request"] / by_cycle[r["cycle"]] for r in mine if r["cycle"] in by_cycle]
    return median(ratios) if ratios else None


# -- idle connections ----------------------------------------------------------------------


def measure_idle(server: Server, count: int) -> dict[str, Any]:
    command = [
        sys.executable, CLIENT_SCRIPT, "idle", "127.0.0.1", str(server.ports["tcp"]),
        str(count), str(server.pids[0]), f"{IDLE_HOLD:g}",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        result = {"ok": False, "error": f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}"}
    result["server"] = server.label
    if server.proc is not None and server.proc.poll() is not None:
        result["ok"] = False
        result["error"] = f"the server exited ({server.proc.returncode})"
    return result


# -- profiles --------------------------------------------------------------------------


def profile_server(key: str, map_path: str, workdir: str, client: str | None, loop: str,
                   warmup: float, top: int) -> str:
    # *loop*: serve-map's (with uvloop, cProfile sees only the Python code: the loop's
    # own work, and the write in it, shows as the time of the callback that called it)
    """cProfile of one server process (``map_servers.py --profile``) over
    PROFILE_SECONDS of lock-step tcp_table load: the top *top* functions by own time."""
    import pstats
    from io import StringIO

    ready = os.path.join(workdir, f"profile-{key}.ready")
    stats_path = os.path.join(workdir, f"profile-{key}.pstats")
    if key == "serve-map":
        command = [sys.executable, SERVERS_SCRIPT, "serve-map", "--profile", stats_path, "--"]
        command += serve_map_command(map_path, ready, loop, socketmap=False)[4:]
    else:
        command = [sys.executable, SERVERS_SCRIPT, key, "--ready-file", ready,
                   "--map", map_path, "--profile", stats_path]
    server = Server(key, key, command, ready)
    server.start(workdir)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.ready():
            if time.monotonic() > deadline:
                raise SystemExit(f"profile: {key} not listening")
            time.sleep(0.05)
        pid = server.pids[0]
        client_proc = subprocess.Popen(
            client_command(client, [target(server, "tcp", "tcp")], PROFILE_SECONDS + 1.0,
                           warmup, 1, 0, seed=7),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(warmup + 0.8)  # connected, warmed up
        os.kill(pid, signal.SIGUSR1)
        time.sleep(PROFILE_SECONDS)
        os.kill(pid, signal.SIGUSR2)
        out, err = client_proc.communicate(timeout=120)
        phases = json.loads(out.strip().splitlines()[-1])["phases"] if out.strip() else []
        result = phases[0] if phases else {}
        for _ in range(100):
            if os.path.exists(stats_path):
                break
            time.sleep(0.05)
        text = StringIO()
        stats = pstats.Stats(stats_path, stream=text)
        stats.sort_stats("tottime").print_stats(top)
        total_time = stats.total_tt  # type: ignore[attr-defined]
        name = f"serve-map --loop {loop}" if key == "serve-map" else key
        head = (
            f"{name}: {result.get('requests', 0) / max(result.get('seconds', 1), 1e-9):,.0f} "
            f"requests/s under the profiler (which slows it); profiled {total_time:.2f} s\n"
        )
        body = text.getvalue()
        # Drop pstats' preamble (file name, date) and keep the table.
        at = body.find("   ncalls")
        return head + (body[at:] if at >= 0 else body)
    finally:
        server.stop()


# -- formatting ------------------------------------------------------------------------


def us(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e6:.2f} µs"


def ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def check_targets(summary: dict[str, Any], idle: list[dict[str, Any]],
                  idle_count: int) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []

    def add(name: str, value: float | None, ok: bool, shown: str) -> None:
        targets.append({"target": name, "value": value, "ok": ok, "measured": shown})

    def compare(name: str, mine: str, other: str, limit: float) -> None:
        a, b = summary[mine], summary[other]
        paired = _paired(a["runs"], b["runs"])
        of_medians = a["cpu_per_request"] / b["cpu_per_request"]
        add(
            name, paired, paired is not None and paired <= limit,
            f"{ratio(paired)} ({us(a['cpu_per_request'])} vs {us(b['cpu_per_request'])}: "
            f"{ratio(of_medians)})",
        )

    compare("serve-map tcp_table CPU/request ≤ 0.5× Twisted's PostfixTCPMapServer",
            "serve-map-tcp", "twisted-postfix", 0.5)
    compare("serve-map tcp_table CPU/request ≤ 1.3× its event loop's floor",
            "serve-map-tcp", "loop-floor", 1.3)
    compare("serve-map socketmap CPU/request no worse than tcp_table (≤ 1.0×)",
            "serve-map-socketmap", "serve-map-tcp", 1.0)
    compare("txframe's PostfixTCPMapServer on Twisted ≤ 0.85× Twisted's",
            "txframe-postfix", "twisted-postfix", 0.85)
    smap_idle = next((r for r in idle if r.get("key") == "serve-map"), None)
    if smap_idle is None:
        add(f"serve-map holds {DEFAULT_IDLE:,} idle connections without error", None, False,
            "not run")
    else:
        held = smap_idle.get("connected", 0)
        ok = bool(smap_idle.get("ok")) and held >= DEFAULT_IDLE
        shown = f"{held:,} held, all answered" if smap_idle.get("ok") else (
            f"{held:,} connected; {smap_idle.get('error') or ''} "
            f"failed: {smap_idle.get('failed_first')} then {smap_idle.get('failed_after_hold')}"
        )
        if idle_count < DEFAULT_IDLE:
            shown += f" (only {idle_count:,} tried)"
        if smap_idle.get("limit"):
            shown += f"; {smap_idle['limit']}"
        add(f"serve-map holds {DEFAULT_IDLE:,} idle connections without error", held, ok, shown)
    return targets


def report(env: dict[str, Any], settings: dict[str, Any], cells: list[Cell],
           summary: dict[str, Any], idle: list[dict[str, Any]], targets: list[dict[str, Any]] | None,
           profiles: list[str]) -> str:
    from compare import si, table

    client = settings["client"]
    baseline = settings.get("baseline")
    out = [
        "# Postfix map servers: txframe serve-map vs Twisted",
        "",
        f"- txframe {env['txframe_version']} (framers: `{env['txframe_implementation']}`); "
        f"serve-map on the `{settings['loop']}` event loop"
        + ("" if settings["uvloop_installed"] else " (uvloop is not installed)")
        + "".join(f"; also on `{other}` (`--loop {other}`)" for other in settings["extra_loops"]),
        f"- Python: {env['python']}; Twisted: {env['twisted']} ({settings['reactor']})",
        f"- CPU: {env['cpu']} ({env['cpus']} logical CPUs)",
        f"- Map: {ENTRIES:,} entries (`user<N>@example.com` → `smtp:[mx<N>.example.net]`); "
        f"keys drawn at random, ~25% misses; every reply checked.",
        f"- Load: {CONNECTIONS} connections, each sending one `get KEY` (socketmap: one "
        f"netstring `{MAP_NAME} KEY`) and waiting for the reply, from one client process "
        f"({'C, epoll' if client == 'C' else 'Python, for want of a C compiler or by request: may be the bottleneck'}); "
        f"the cells interleaved: {settings['rounds']} rounds (after one warm-up round), "
        f"each taking every cell in turn (in a rotated order) for {settings['warmup']:g} s "
        "untimed then "
        f"{settings['seconds']:g} s timed, the other servers' connections idle meanwhile; "
        "each figure is the **median of the rounds**.",
        "- Server CPU: `utime + stime` of the server process(es) from `/proc/PID/stat` at "
        "the start and end of each timed slice (for `--workers 2`: both workers and the "
        "supervisor).",
    ]
    if settings["quick"]:
        out.append("- **--quick**: a few short rounds; figures are only a smoke test.")
    out += ["", "## Lock-step lookups", ""]
    rows = []
    for cell in cells:
        s = summary[cell.key]
        rows.append([
            cell.label,
            PROTOCOL_LABEL[cell.protocol] if cell.mode != "line" else "constant line",
            f"{us(s['cpu_per_request'])} ({s['user_per_request'] * 1e6:.1f} + "
            f"{(s['cpu_per_request'] - s['user_per_request']) * 1e6:.1f})",
            f"{si(s['rate'])} req/s",
            ratio(s["vs_twisted"]),
            ratio(s["vs_floor"]),
            *([ratio(s["vs_baseline"])] if baseline else []),
            percent(s["server_busy"]),
            us(s["client_cpu_per_request"]),
            percent(s["others_busy"]),
        ])
    out.append(table(
        ["Server", "Protocol", "Server CPU / request (user + sys)", "Requests/s", "CPU ÷ Twisted's",
         "CPU ÷ its loop's floor", *(["CPU ÷ baseline's"] if baseline else []), "Server busy",
         "Client CPU / request", "Others busy"],
        rows, "llrrrrrrr" + ("r" if baseline else ""),
    ))
    out += [
        "",
        "Server CPU per request: user + system. The ratios are taken round by round -- "
        "each slice of the cell ÷ the other cell's slice of the same round, seconds apart, "
        "so that the machine's drift cancels out -- and their median shown (the ratio of "
        "the two medians is in the targets and `--json`). CPU ÷ Twisted's: ÷ Twisted's "
        "`PostfixTCPMapServer`. Its loop's floor: each serve-map row against the floor on "
        "its own event loop, the servers on Twisted against the Twisted reactor floor. "
        "Floors: a bare protocol writing a constant reply per newline, no lookup. Server "
        "busy: server CPU ÷ wall time (100% = one core: the server, not the client, is the "
        "bottleneck; `--workers 2` can use two). "
        "Others busy: CPU the rest of the machine used meanwhile (other processes, the "
        "hypervisor's steal; not softirq, which is mostly this loopback traffic and is "
        "charged to no process), 100% = one core: above a few %, the figures are "
        "disturbed. Every round's figures, the pooled CPU per request (all CPU ÷ all "
        "requests), the best round's and softirq per request are in `--json`.",
    ]
    slow = [
        cell.label + (f" ({PROTOCOL_LABEL[cell.protocol]})" if cell.mode != "line" else "")
        for cell in cells
        if cell.server != "serve-map-2" and (summary[cell.key]["server_busy"] or 0) < 0.9
    ]
    if slow:
        out += [
            "",
            "**Server busy below 90%** (the client, or the rest of the machine, may have "
            "held it back; its CPU per request is then overstated): " + ", ".join(slow) + ".",
        ]
    if idle:
        out += ["", "## Idle connections", ""]
        rows = []
        for r in idle:
            per = r.get("bytes_per_connection")
            rows.append([
                r["server"],
                f"{r.get('connected', 0):,} / {r.get('requested', 0):,}",
                f"{r.get('rss_before', 0) / 2**20:.1f} MiB",
                f"{r.get('rss_after', 0) / 2**20:.1f} MiB",
                "n/a" if per is None else f"{per:,.0f} B",
                "yes" if r.get("ok") else f"**no**: {r.get('error') or ''} "
                f"(failed {r.get('failed_first')}, then {r.get('failed_after_hold')})",
            ])
        out.append(table(
            ["Server", "Connections", "RSS before", "RSS after", "Bytes / idle connection",
             "All answered after holding"],
            rows, "lrrrrl",
        ))
        notes = sorted({r["limit"] for r in idle if r.get("limit")})
        out += [
            "",
            "One client process opens the connections (its open-file limit raised), sends "
            "one tcp_table `get` on each and reads the reply; resident memory (VmRSS) of "
            f"the server before and 0.5 s after; then, after holding them {IDLE_HOLD:g} s, "
            "every connection must answer another `get`."
            + ("".join(f" **Limit:** {note}." for note in notes)),
        ]
    if targets is not None:
        out += ["", "## Targets", ""]
        if settings["quick"]:
            out += ["(--quick: a few short rounds; not meaningful.)", ""]
        rows = [[t["target"], t["measured"], "PASS" if t["ok"] else "**MISS**"] for t in targets]
        out.append(table(["Target", "Measured", "Result"], rows, "lrl"))
        out += [
            "",
            "Measured: the ratio round by round, as in the table (PASS/MISS is decided on "
            "it), then the two medians and their plain ratio.",
        ]
    if profiles:
        out += [
            "", "## Profiles (cProfile, tcp_table lock-step load)", "",
            "Python functions only, under the profiler's own overhead. On uvloop a Python "
            "callback's own time includes the loop's C code it calls (`transport.write`, "
            "and the `send` in it); on asyncio's and Twisted's loops that shows as "
            "`send`.", "",
        ]
        for text in profiles:
            out += ["```", text.rstrip(), "```", ""]
    return "\n".join(out).rstrip() + "\n"


# -- running ---------------------------------------------------------------------------


def default_loop() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def run(quick: bool = False, check: bool = False, rounds: int | None = None,
        seconds: float | None = None, idle_count: int | None = None, loop: str | None = None,
        profile: int = 0, python_client: bool = False,
        extra_loops: list[str] | None = None,
        baseline: str | None = None) -> tuple[str, dict[str, Any]]:
    """The whole benchmark: (Markdown report, raw results)."""
    from compare import environment

    started = time.perf_counter()
    rounds = rounds or (QUICK_ROUNDS if quick else DEFAULT_ROUNDS)
    profile_warmup = 0.5
    seconds = seconds or (QUICK_SECONDS if quick else DEFAULT_SECONDS)
    warmup = QUICK_WARMUP if quick else DEFAULT_WARMUP
    if idle_count is None:
        idle_count = QUICK_IDLE if quick else DEFAULT_IDLE
    loop = loop or default_loop()
    if extra_loops is None:
        extra_loops = ["asyncio"] if loop == "uvloop" else []
    extra_loops = [other for other in extra_loops if other != loop]
    client = None if python_client else map_client.build()
    if client is None:
        log("no C compiler (or it failed): the Python client is used, and may be the bottleneck")
    env = environment()
    from twisted.internet import default

    settings = {
        "quick": quick,
        "rounds": rounds,
        "seconds": seconds,
        "warmup": warmup,
        "connections": CONNECTIONS,
        "entries": ENTRIES,
        "idle_connections": idle_count,
        "loop": loop,
        "extra_loops": extra_loops,
        "uvloop_installed": importlib.util.find_spec("uvloop") is not None,
        "client": "C" if client else "Python",
        "reactor": default.install.__module__.rsplit(".", 1)[-1],
        "baseline": baseline,
    }
    workdir = tempfile.mkdtemp(prefix="txframe-maps-")
    map_path = os.path.join(workdir, f"{MAP_NAME}.map")
    write_map(map_path, ENTRIES)
    servers = make_servers(workdir, map_path, loop, extra_loops, baseline)
    cells = make_cells(loop, extra_loops, bool(baseline))
    try:
        log(f"starting {len(servers)} servers on a {ENTRIES:,}-entry map ...")
        start_all(list(servers.values()), workdir)
        settings["reactor"] = servers["twisted-postfix"].info.get("reactor", settings["reactor"])
        log(f"timing: {rounds} rounds of {len(cells)} cells, {seconds:g} s each ...")
        runs = run_phases(cells, servers, client, rounds, seconds, warmup)
        summary = summarise(cells, runs)
        idle: list[dict[str, Any]] = []
        if idle_count > 0:
            keys = ["serve-map", "txframe-postfix", "twisted-postfix"]
            if baseline:
                keys.insert(1, "serve-map-baseline")
            for key in keys:
                log(f"idle connections: {idle_count:,} to {servers[key].label} ...")
                result = measure_idle(servers[key], idle_count)
                result["key"] = key
                idle.append(result)
        for server in servers.values():
            if server.proc is not None and server.proc.poll() is not None:
                raise SystemExit(f"{server.label} exited during the run:\n{server.log()}")
    finally:
        for server in servers.values():
            server.stop()
    profiles = []
    try:
        if profile:
            todo = [("serve-map", on) for on in [loop, *extra_loops]]
            todo += [("txframe-postfix", loop), ("twisted-postfix", loop)]
            for key, on in todo:
                log(f"profiling {key}" + (f" ({on})" if key == "serve-map" else "") + " ...")
                profiles.append(profile_server(key, map_path, workdir, client, on, profile_warmup,
                                               profile))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    targets = check_targets(summary, idle, idle_count)
    text = report(env, settings, cells, summary, idle, targets if check else None, profiles)
    elapsed = time.perf_counter() - started
    raw = {
        "environment": env,
        "settings": settings,
        "elapsed_seconds": elapsed,
        "lockstep": summary,
        "idle": idle,
        "targets": targets,
        "profiles": profiles,
    }
    return text, raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one short round, 2,000 idle connections (~25 s)")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help=f"interleaved rounds, each timing every cell once, medians kept "
                        f"(default {DEFAULT_ROUNDS}; --quick {QUICK_ROUNDS})")
    parser.add_argument("--seconds", type=float, metavar="S",
                        help=f"timed seconds per cell and round (default {DEFAULT_SECONDS:g}; "
                        f"--quick {QUICK_SECONDS:g})")
    parser.add_argument("--idle", type=int, metavar="N",
                        help=f"idle connections per server (default {DEFAULT_IDLE:,}; "
                        f"--quick {QUICK_IDLE:,}; 0 skips them)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"),
                        help="serve-map's event loop, and the floor's (default: uvloop when "
                        "installed, else asyncio)")
    parser.add_argument("--no-extra-loops", action="store_true",
                        help="with uvloop, do not also time serve-map and the floor on "
                        "asyncio's own loop")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile serve-map, txframe's and Twisted's "
                        "PostfixTCPMapServer under load; show the top N functions")
    parser.add_argument("--python-client", action="store_true",
                        help="use the Python client even if a C compiler is there")
    parser.add_argument("--json", metavar="PATH", help="write the raw results to PATH")
    parser.add_argument("--baseline", metavar="PYTHON",
                        help="also run serve-map with this interpreter (another txframe "
                        "installed: e.g. an older commit's venv) and give each serve-map "
                        "row's CPU ÷ the baseline's, round by round")
    parser.add_argument("--check-targets", action="store_true",
                        help="print the issue's targets as PASS/MISS (informational)")
    args = parser.parse_args(argv)
    text, raw = run(
        quick=args.quick, check=args.check_targets, rounds=args.rounds, seconds=args.seconds,
        idle_count=args.idle, loop=args.loop, profile=args.profile,
        python_client=args.python_client, extra_loops=[] if args.no_extra_loops else None,
        baseline=args.baseline,
    )
    print(text, end="")
    log(f"done in {raw['elapsed_seconds']:.1f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(raw, f, indent=2, ensure_ascii=False)
            f.write("\n")
        log(f"raw results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
