#!/usr/bin/env python
"""Compare txframe (compiled and pure) with Twisted's line and string receivers and AMP.

Runs every workload of ``workloads.py`` (lines: LineReceiver / LineOnlyReceiver;
strings: Int32/Int16/Int8StringReceiver and NetstringReceiver; AMP: BinaryBoxProtocol
decoding boxes) on the three implementations in one process, interleaved round by
round (each round runs each cell once, the implementations in a rotating order) so
that a noisy, shared machine slows them alike, and keeps the best run of each cell.
Every run feeds a fresh protocol connected to a ``StringTransport``; the chunks are cut
beforehand, protocol creation is not timed, the garbage collector is off while timing
and ``lineReceived`` / ``stringReceived`` / ``ampBoxReceived`` is empty (a counting
run first checks that every implementation receives exactly the expected frames, down
to the last one, and each timed run is checked to leave nothing buffered).

A cell stops repeating after ``--repeat`` runs or once its runs add up to ``--budget``
seconds, whichever comes first, but always runs at least once: Twisted's quadratic
cases therefore run exactly once (on a 2.5 GHz Xeon: one 4 MiB line ~11-12 s, one
10 MiB Int32 string in 1 KiB chunks ~10-20 s), and they dominate a full run. The larger
case of each linearity pair (the 8 MiB line, ~45-68 s on Twisted, and the 20 MiB string,
~40-80 s) is not run on Twisted at all unless ``--twisted-all`` is given; the report
says so, with the time its smaller case took. The linearity targets are about txframe.

AMP box encoding is timed the same way (interleaved, best of runs, GC off, every
encoder first checked to write Twisted's bytes for every box): Twisted's
``AmpBox.serialize`` against each implementation's ``encode_box``, and txframe.amp's
``AmpBox.serialize`` (the codec txframe.framing selected). AMP ``callRemote`` round
trips over loopback TCP run in a fresh process per measurement (``amp_roundtrip.py``:
a reactor cannot be restarted), the implementations interleaved over
``--roundtrip-rounds`` rounds, the best kept.

Then it measures the memory each idle connected line protocol holds (10,000 of each,
built by a Factory, each on its own StringTransport, fed one line ``b"hello\\r\\n"``,
counted by tracemalloc).

Prints Markdown (paste the tables into the README); progress goes to stderr.

    python benchmarks/compare.py                  # full run, ~2.5-3 min on 2 slow cores
    python benchmarks/compare.py --quick          # smoke run, ~10 s, small sizes
    python benchmarks/compare.py --check-targets  # also PASS/MISS for the issue's targets
    python benchmarks/compare.py --twisted-all    # also Twisted on the 8 MiB line and
                                                  # the 20 MiB string (~1.5-2.5 min more)
    python benchmarks/compare.py --json out.json  # also write the raw results
    python benchmarks/compare.py --only amp       # only the AMP workloads (~1 min)
    python benchmarks/compare.py --only maps      # only the Postfix map servers (maps.py,
                                                  # ~2 min; not run by default)
    python benchmarks/compare.py --only ftp       # only the FTP data channel (ftp_bench.py,
                                                  # ~1-1.5 min, needs curl; not run by default)

The exit code is 0 whatever the figures (targets are informational).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import twisted  # noqa: E402
from twisted.internet.protocol import Factory  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402

import txframe  # noqa: E402
import workloads as W  # noqa: E402

DEFAULT_REPEAT = 150
DEFAULT_BUDGET = 2.5  # seconds of timed runs per cell
DEFAULT_CONNECTIONS = 10_000
QUICK_REPEAT = 3
QUICK_BUDGET = 0.1
QUICK_CONNECTIONS = 2_000
DEFAULT_ROUNDTRIP_ROUNDS = 5
QUICK_ROUNDTRIP_ROUNDS = 2
ROUNDTRIP_TIMEOUT = 600  # seconds for one amp_roundtrip.py process
ROUNDTRIP_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "amp_roundtrip.py")
FAMILIES = ("lines", "strings", "amp", "maps", "ftp")
#: run when --only is not given: not "maps" (maps.py: Postfix map servers in their own
#: processes under lock-step load, about two minutes on its own), not "ftp"
#: (ftp_bench.py: FTP servers in their own processes moving 100 MiB files with curl,
#: one to one and a half minutes)
DEFAULT_FAMILIES = ("lines", "strings", "amp")

IMPL_LABEL = {"twisted": "Twisted", "compiled": "compiled", "pure": "pure"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- environment ---------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment() -> dict[str, Any]:
    return {
        "txframe_implementation": txframe.implementation,
        "txframe_version": txframe.__version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": sys.version.replace("\n", " "),
        "twisted": twisted.__version__,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


# -- formatting ----------------------------------------------------------------------


def si(value: float) -> str:
    """3 significant digits with a k/M/G prefix: 12345 -> '12.3 k'."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor * 0.9995:
            value /= factor
            break
    else:
        prefix = ""
    if value >= 99.95:
        return f"{value:.0f} {prefix}".rstrip()
    if value >= 9.995:
        return f"{value:.1f} {prefix}".rstrip()
    return f"{value:.2f} {prefix}".rstrip()


def fmt_rate(rate: float | None, unit: str) -> str:
    if rate is None:
        return "n/a"
    if unit in ("lines", "strings", "boxes", "calls"):
        return f"{si(rate)} {unit}/s"
    return f"{si(rate)}B/s"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "n/a"
    if ratio >= 99.5:
        return f"{ratio:,.0f}×"
    if ratio >= 9.95:
        return f"{ratio:.1f}×"
    return f"{ratio:.2f}×"


def fmt_seconds(t: float | None) -> str:
    if t is None:
        return "n/a"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.1f} µs"


def table(header: list[str], rows: list[list[str]], align: str) -> str:
    """A Markdown table; *align* has one letter per column: l or r."""
    marks = {"l": "---", "r": "--:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- throughput ----------------------------------------------------------------------


def runnable(wl: Any, impl: str, impls: list[str]) -> bool:
    """Whether the cell (*wl*, *impl*) runs: not skipped, and *impl* is built for it."""
    return impl in impls and wl.runs_on(impl) and W.available(impl, wl.family)


def verify(workloads: list[W.Workload], impls: list[str]) -> None:
    """One untimed counting run per cell: every implementation must get every frame
    (AMP: also every box, compared with the boxes the stream was made of)."""
    for wl in workloads:
        for impl in impls:
            if not runnable(wl, impl, impls):
                continue
            if impl == "twisted" and wl.group in W.BIG_GROUPS:
                continue  # quadratic: checked by every timed run below instead
            cls = W.protocol_class(impl, wl.kind, counting=True)
            proto = W.feed(W.connect(cls, wl), wl.chunks)
            try:
                W.check(proto, wl)
                if wl.family == "amp":
                    got = W.collect_boxes(impl, wl)
                    expected = W.make_boxes(wl.count)
                    assert got == expected, next(
                        (i, a, b) for i, (a, b) in enumerate(zip(got, expected)) if a != b
                    ) if len(got) == len(expected) else (len(got), len(expected))
            except AssertionError as e:
                raise SystemExit(f"{impl} gave wrong results on {wl.name}: {e!r}") from None


def run_throughput(
    workloads: list[W.Workload], impls: list[str], repeat: int, budget: float
) -> dict[tuple[str, str], list[float]]:
    """Best-of-N timings, interleaved; returns every run's seconds per (workload, impl)."""
    classes = {
        (wl.name, impl): W.protocol_class(impl, wl.kind)
        for wl in workloads
        for impl in impls
        if runnable(wl, impl, impls)
    }
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in classes}
    spent = dict.fromkeys(classes, 0.0)
    perf_counter = time.perf_counter
    started = perf_counter()
    last_report = started
    for round_no in range(repeat):
        order = impls[round_no % len(impls) :] + impls[: round_no % len(impls)]
        ran = False
        gc.collect()
        gc.disable()
        try:
            for wl in workloads:
                chunks = wl.chunks
                for impl in order:
                    key = (wl.name, impl)
                    if key not in classes or (samples[key] and spent[key] >= budget):
                        continue
                    if not samples[key] and wl.group in W.BIG_GROUPS and impl == "twisted":
                        log(f"  {wl.name} on Twisted (quadratic: slow) ...")
                    proto = W.connect(classes[key], wl)
                    receive = proto.dataReceived
                    t0 = perf_counter()
                    for chunk in chunks:
                        receive(chunk)
                    elapsed = perf_counter() - t0
                    if W.leftover(proto) or proto.transport.disconnecting:
                        raise SystemExit(f"{impl} left data buffered on {wl.name}")
                    samples[key].append(elapsed)
                    spent[key] += elapsed
                    ran = True
        finally:
            gc.enable()
        now = perf_counter()
        if now - last_report >= 10:
            log(f"  round {round_no + 1}/{repeat}, {now - started:.0f} s")
            last_report = now
        if not ran:
            break
    return samples


def verify_encoding(workloads: list[W.EncodeWorkload], impls: list[str]) -> None:
    """Every encoder must write Twisted's bytes for every box."""
    for wl in workloads:
        for impl in impls:
            if not runnable(wl, impl, impls):
                continue
            try:
                W.check_encoding(impl, wl)
            except AssertionError as e:
                raise SystemExit(f"{impl} encoded wrongly on {wl.name}: {e!r}") from None


def run_encoding(
    workloads: list[W.EncodeWorkload], impls: list[str], repeat: int, budget: float
) -> dict[tuple[str, str], list[float]]:
    """As run_throughput, for the encoding workloads: each run is
    ``for box in boxes: encode(box)`` over boxes made beforehand."""
    prepared = {
        (wl.name, impl): W.encoder(impl, wl)
        for wl in workloads
        for impl in impls
        if runnable(wl, impl, impls)
    }
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in prepared}
    spent = dict.fromkeys(prepared, 0.0)
    perf_counter = time.perf_counter
    for round_no in range(repeat):
        order = impls[round_no % len(impls) :] + impls[: round_no % len(impls)]
        ran = False
        gc.collect()
        gc.disable()
        try:
            for wl in workloads:
                for impl in order:
                    key = (wl.name, impl)
                    if key not in prepared or (samples[key] and spent[key] >= budget):
                        continue
                    encode, boxes = prepared[key]
                    t0 = perf_counter()
                    for box in boxes:
                        encode(box)
                    elapsed = perf_counter() - t0
                    samples[key].append(elapsed)
                    spent[key] += elapsed
                    ran = True
        finally:
            gc.enable()
        if not ran:
            break
    return samples


def roundtrip_once(wl: W.RoundTripWorkload, impl: str) -> dict[str, Any]:
    """One amp_roundtrip.py process: its JSON result (wall and CPU seconds)."""
    command = [
        sys.executable,
        ROUNDTRIP_SCRIPT,
        impl,
        "--calls", str(wl.count),
        "--window", str(wl.window),
        "--warmup", str(wl.warmup),
    ]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=ROUNDTRIP_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise SystemExit(f"AMP round trips on {impl}: no result in {ROUNDTRIP_TIMEOUT} s") from None
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {}
    if proc.returncode != 0 or "error" in result or "seconds" not in result:
        raise SystemExit(
            f"AMP round trips failed on {impl} (exit {proc.returncode}): "
            f"{result.get('error', '')}\n{proc.stderr}"
        )
    return result


def run_roundtrips(
    wl: W.RoundTripWorkload, impls: list[str], rounds: int
) -> tuple[dict[tuple[str, str], list[float]], dict[str, list[dict[str, Any]]]]:
    """*rounds* rounds, each running every implementation once (rotating order):
    the seconds of each run per (workload, impl), and every run's JSON per impl."""
    cells = [impl for impl in impls if runnable(wl, impl, impls)]
    samples: dict[tuple[str, str], list[float]] = {(wl.name, impl): [] for impl in cells}
    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in cells}
    for round_no in range(rounds):
        order = cells[round_no % len(cells) :] + cells[: round_no % len(cells)]
        for impl in order:
            result = roundtrip_once(wl, impl)
            samples[(wl.name, impl)].append(result["seconds"])
            runs[impl].append(result)
        best = {
            impl: f"{si(wl.count / min(samples[(wl.name, impl)]))} calls/s" for impl in cells
        }
        log(f"  round {round_no + 1}/{rounds}: best so far " + ", ".join(
            f"{IMPL_LABEL[impl]} {rate}" for impl, rate in best.items()
        ))
    return samples, runs


def roundtrip_cpu(runs: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """Per implementation, the CPU µs per call (client and server together) of its
    fastest run."""
    out = {}
    for impl, results in runs.items():
        if results:
            best = min(results, key=lambda r: r["seconds"])
            out[impl] = best["cpu_seconds"] / best["calls"] * 1e6
    return out


# -- memory --------------------------------------------------------------------------


def bytes_per_connection(cls: type, n: int) -> float:
    """Bytes tracemalloc attributes to each of *n* idle connected protocols of *cls*."""
    factory = Factory.forProtocol(cls)
    transports = [StringTransport() for _ in range(n)]
    peers = [t.getPeer() for t in transports]
    protocols: list[Any] = [None] * n
    for _ in range(20):  # warm up code paths and caches outside the measurement
        p = factory.buildProtocol(peers[0])
        p.makeConnection(StringTransport())
        p.dataReceived(b"hello\r\n")
    del p
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(n):
            p = factory.buildProtocol(peers[i])
            p.makeConnection(transports[i])
            p.dataReceived(b"hello\r\n")
            protocols[i] = p
        del p
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "filename")
    total = sum(stat.size_diff for stat in stats)
    assert all(p.transport is transports[i] for i, p in enumerate(protocols))
    return total / n


def run_memory(impls: list[str], n: int) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = {}
    for kind in W.LINE_KINDS:
        result[kind] = {}
        for impl in impls:
            result[kind][impl] = bytes_per_connection(W.protocol_class(impl, kind, fresh=True), n)
            gc.collect()
    return result


# -- analysis ------------------------------------------------------------------------


def analyse(workloads, samples) -> dict[str, dict[str, dict[str, Any]]]:
    """Per workload, per implementation: best time, rate and ratio to Twisted.

    A cell the workload does not run (see ``Workload.skip``) has ``skipped`` set to the
    reason; one whose implementation is not available has no runs and no reason.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for wl in workloads:
        cells: dict[str, dict[str, Any]] = {}
        for impl in W.IMPLEMENTATIONS:
            times = samples.get((wl.name, impl))
            skipped = None if wl.runs_on(impl) else wl.skip_reason or "skipped"
            if not times:
                cells[impl] = {
                    "runs": 0,
                    "best": None,
                    "rate": None,
                    "ratio": None,
                    "times": [],
                    "skipped": skipped,
                }
                continue
            best = min(times)
            cells[impl] = {
                "runs": len(times),
                "best": best,
                "median": sorted(times)[len(times) // 2],
                "rate": wl.amount() / best,
                "times": times,
                "skipped": None,
            }
        twisted_best = cells["twisted"]["best"]
        for impl in W.IMPLEMENTATIONS:
            best = cells[impl]["best"]
            cells[impl]["ratio"] = (
                twisted_best / best if best is not None and twisted_best is not None else None
            )
        out[wl.name] = cells
    return out


def linearity(workloads, results, group: str = "big-line") -> dict[str, Any] | None:
    """Time of the larger ÷ the smaller workload of *group* (``"big-line"`` or
    ``"big-string"``), per implementation."""
    big = [wl for wl in workloads if wl.group == group]
    if len(big) < 2:
        return None
    small, large = big[0], big[1]
    noun = "line" if group == "big-line" else "string"
    ratios = {}
    for impl in W.IMPLEMENTATIONS:
        a, b = results[small.name][impl]["best"], results[large.name][impl]["best"]
        ratios[impl] = b / a if a and b else None
    return {
        "group": group,
        "kind": small.kind,
        "noun": noun,
        "small": small.name,
        "large": large.name,
        "label": f"{W.pretty_size(large.length)} {noun} time ÷ "
        f"{W.pretty_size(small.length)} {noun} time",
        "size_ratio": large.length / small.length,
        "ratios": ratios,
    }


def check_targets(workloads, results, lin, memory, lin_strings=None) -> list[dict[str, Any]]:
    """The issue's targets: name, measured figure, pass/miss."""
    by_name = {wl.name: wl for wl in workloads}
    one_chunk = {wl.kind: wl for wl in workloads if wl.group == "one-chunk"}
    big = [wl for wl in workloads if wl.group == "big-line"]
    big_strings = [wl for wl in workloads if wl.group == "big-string"]
    targets: list[dict[str, Any]] = []

    def add(name: str, value: float | None, ok: bool | None, shown: str) -> None:
        targets.append({"target": name, "value": value, "ok": bool(ok), "measured": shown})

    def ratio_target(kind: str, wl: W.Workload | None, at_least: float, what: str) -> None:
        name = f"{kind} compiled÷Twisted ≥ {at_least:g}× {what}"
        if wl is None:
            add(name, None, False, "workload not run")
            return
        ratio = results[wl.name]["compiled"]["ratio"]
        add(name, ratio, ratio is not None and ratio >= at_least, fmt_ratio(ratio))

    def linear_target(lin_result: dict[str, Any] | None, fallback: str) -> None:
        ratio = lin_result["ratios"]["compiled"] if lin_result else None
        add(
            f"compiled linear: {lin_result['label'] if lin_result else fallback} ≤ 2.2",
            ratio,
            ratio is not None and ratio <= 2.2,
            "n/a" if ratio is None else f"{ratio:.2f}",
        )

    def pure_target(family: str, noun: str) -> None:
        cells = [wl for wl in workloads if wl.family == family]
        compared = [wl for wl in cells if wl.runs_on("twisted") and wl.runs_on("pure")]
        skipped = [wl.name for wl in cells if wl not in compared]
        pure = [(results[wl.name]["pure"]["ratio"], wl.name) for wl in compared]
        known = [(r, n) for r, n in pure if r is not None]
        misses = [f"{n} {fmt_ratio(r)}" for r, n in known if r < 1.0]
        worst = min(known) if known else None
        add(
            f"pure txframe ÷ Twisted ≥ 1.0× on every {noun} workload",
            worst[0] if worst else None,
            worst is not None and not misses and len(known) == len(pure),
            ("n/a" if worst is None else f"lowest {fmt_ratio(worst[0])} ({worst[1]})")
            + (f"; below 1×: {', '.join(misses)}" if misses else "")
            + (f"; not compared (Twisted skipped): {', '.join(skipped)}" if skipped else ""),
        )

    # lines
    if any(wl.family == "lines" for wl in workloads):
        ratio_target("LineReceiver", by_name.get("LineReceiver-1024"), 3, "at 1024 B chunks")
        ratio_target("LineReceiver", by_name.get("LineReceiver-16"), 2, "at 16 B chunks")
        chunk_wl = one_chunk.get("LineReceiver")
        chunk_size = chunk_wl.nominal if chunk_wl else W.FULL_ONE_CHUNK
        ratio_target("LineReceiver", chunk_wl, 30, f"on one {W.pretty_size(chunk_size)} chunk")
        r65 = results.get("LineReceiver-65536", {}).get("compiled", {}).get("rate")
        r1k = results.get("LineReceiver-1024", {}).get("compiled", {}).get("rate")
        add(
            "LineReceiver compiled lines/s at 65536 B chunks ≥ at 1024 B chunks",
            r65 / r1k if r65 and r1k else None,
            r65 is not None and r1k is not None and r65 >= r1k,
            f"{fmt_rate(r65, 'lines')} vs {fmt_rate(r1k, 'lines')}",
        )
        ratio_target(
            "LineOnlyReceiver", by_name.get("LineOnlyReceiver-1024"), 1.5, "at 1024 B chunks"
        )
        ratio_target(
            "LineOnlyReceiver", by_name.get("LineOnlyReceiver-65536"), 1.5, "at 65536 B chunks"
        )
        ratio_target("LineOnlyReceiver", by_name.get("LineOnlyReceiver-16"), 2, "at 16 B chunks")
        line_size = big[0].nominal if big else W.FULL_BIG_LINES[0]
        ratio_target(
            "LineReceiver",
            big[0] if big else None,
            20,
            f"on one {W.pretty_size(line_size)} line in 1 KiB chunks",
        )
        linear_target(lin, "8 MiB ÷ 4 MiB line time")
        pure_target("lines", "line")

    # strings
    if any(wl.family == "strings" for wl in workloads):
        for kind in W.STRING_KINDS:
            at_least = 15 if kind == "NetstringReceiver" else 4
            for size in W.STRING_CHUNK_SIZES:
                ratio_target(
                    kind,
                    by_name.get(f"{W.SHORT_NAMES[kind]}-{size}"),
                    at_least,
                    f"at {size} B chunks",
                )
        string_size = big_strings[0].nominal if big_strings else W.FULL_BIG_STRINGS[0]
        ratio_target(
            "Int32StringReceiver",
            big_strings[0] if big_strings else None,
            5,
            f"on one {W.pretty_size(string_size)} string in 1 KiB chunks",
        )
        linear_target(lin_strings, "20 MiB ÷ 10 MiB string time")
        pure_target("strings", "string")

    # memory: the target is the compiled build's; the pure build keeps its framer for
    # the connection's lifetime (making one per chunk costs more in Python than it
    # saves), so its figure is in the memory table but is not a target.
    for impl in ("compiled",) if any(wl.family == "lines" for wl in workloads) else ():
        for kind in W.LINE_KINDS:
            mine = memory.get(kind, {}).get(impl) if memory else None
            theirs = memory.get(kind, {}).get("twisted") if memory else None
            ratio = mine / theirs if mine is not None and theirs else None
            add(
                f"{kind} {impl} bytes per idle connection ≤ 1.25× Twisted's",
                ratio,
                ratio is not None and ratio <= 1.25,
                "n/a" if ratio is None else f"{fmt_ratio(ratio)} ({mine:.0f} B vs {theirs:.0f} B)",
            )

    # AMP
    def amp_target(label: str, name: str, impl: str, at_least: float) -> None:
        who = "compiled÷Twisted" if impl == "compiled" else "pure txframe÷Twisted"
        title = f"AMP {label} {who} ≥ {at_least:g}×"
        if name not in results:
            add(title, None, False, "workload not run")
            return
        ratio = results[name][impl]["ratio"]
        add(title, ratio, ratio is not None and ratio >= at_least, fmt_ratio(ratio))

    if any(wl.family == "amp" for wl in workloads):
        for wl in workloads:
            if wl.group == "boxes":
                what = f"box decoding, {W.pretty_size(wl.chunk_size)} chunks,"
                amp_target(what, wl.name, "compiled", 10)
                amp_target(what, wl.name, "pure", 1)
        amp_target("box encoding (encode_box)", "AMP-encode_box", "compiled", 5)
        amp_target("callRemote round trips", "AMP-callRemote", "compiled", 2.5)
        amp_target("callRemote round trips", "AMP-callRemote", "pure", 1)
    return targets


# -- report --------------------------------------------------------------------------


def _throughput_table(workloads, results) -> str:
    rows = []
    for wl in workloads:
        cells = results[wl.name]
        rows.append(
            [wl.title]
            + [
                "skipped" if cells[impl]["skipped"] else fmt_rate(cells[impl]["rate"], wl.unit)
                for impl in W.IMPLEMENTATIONS
            ]
            + [fmt_ratio(cells["compiled"]["ratio"]), fmt_ratio(cells["pure"]["ratio"])]
        )
    return table(
        [
            "Workload",
            "Twisted rate",
            "compiled rate",
            "pure rate",
            "compiled÷Twisted",
            "pure÷Twisted",
        ],
        rows,
        "lrrrrr",
    )


def _linearity_table(workloads, results, lin) -> str:
    big = [wl for wl in workloads if wl.group == lin["group"]]
    rows = []
    for wl in big:
        rows.append(
            [
                f"one {W.pretty_size(wl.length)} {lin['noun']}, "
                f"{W.pretty_size(wl.chunk_size)} chunks (best time)"
            ]
            + [
                (
                    "skipped"
                    if results[wl.name][impl]["skipped"]
                    else fmt_seconds(results[wl.name][impl]["best"])
                )
                for impl in W.IMPLEMENTATIONS
            ]
        )
    rows.append(
        [
            f"**{lin['label']}** (linear = {lin['size_ratio']:g}, "
            f"quadratic = {lin['size_ratio'] ** 2:g})"
        ]
        + [
            "n/a" if lin["ratios"][impl] is None else f"**{lin['ratios'][impl]:.2f}**"
            for impl in W.IMPLEMENTATIONS
        ]
    )
    return table([lin["kind"], "Twisted", "compiled", "pure"], rows, "lrrr")


def _amp_notes(workloads, results, roundtrip_cpu) -> list[str]:
    notes = []
    decode = [wl for wl in workloads if wl.group == "boxes"]
    if decode:
        notes.append(
            "Decoding: the boxes `callRemote(Sum, a=…, b=…, text=…)` sends (`_ask`, "
            "`_command`, `a`, `b`, `text`) fed to `BinaryBoxProtocol.dataReceived`, a fresh "
            "protocol on a `StringTransport` per run, whose box receiver does nothing."
        )
    if any(wl.group == "encode" for wl in workloads):
        notes.append(
            "Encoding: the same boxes, one call each: Twisted's `AmpBox.serialize()` against "
            "each implementation's `encode_box(box)` and (the row below it) txframe.amp's "
            "`AmpBox.serialize()`, which uses the codec `txframe.framing` selected; every "
            "encoder is checked to write Twisted's bytes."
        )
    rt = next((wl for wl in workloads if wl.group == "roundtrip"), None)
    if rt is not None:
        runs = {impl: results[rt.name][impl]["runs"] for impl in W.IMPLEMENTATIONS}
        cpu = ", ".join(
            f"{IMPL_LABEL[impl]} {roundtrip_cpu[impl]:.0f} µs"
            for impl in W.IMPLEMENTATIONS
            if impl in roundtrip_cpu
        )
        notes.append(
            f"Round trips: `Sum` (Integer, Integer, Unicode → Integer), client and server of "
            f"the same implementation in one process over 127.0.0.1 TCP (`listenTCP` port 0, "
            f"`connectTCP`), {rt.window} calls outstanding, {rt.warmup:,} untimed calls first; "
            f"a fresh process per run (`amp_roundtrip.py`), best of "
            f"{max(runs.values())} interleaved runs. CPU per call (client and server "
            f"together, fastest run): {cpu or 'n/a'}."
        )
    return notes


def report(
    env, settings, workloads, results, lin, memory, targets, lin_strings=None, roundtrip_cpu=None
) -> str:
    line_wls = [wl for wl in workloads if wl.family == "lines"]
    string_wls = [wl for wl in workloads if wl.family == "strings"]
    amp_wls = [wl for wl in workloads if wl.family == "amp"]
    names = [n for n, wls in (("line", line_wls), ("string", string_wls), ("AMP", amp_wls)) if wls]
    what = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
    out = [f"# txframe vs Twisted: {what} framing", ""]
    callbacks = (["lineReceived"] if line_wls else []) + (["stringReceived"] if string_wls else [])
    callbacks += ["ampBoxReceived"] if amp_wls else []
    units = (["lines"] if line_wls else []) + (["strings"] if string_wls else [])
    units += (["boxes"] if amp_wls else []) + (["bytes"] if line_wls or string_wls else [])
    out += [
        f"- txframe.implementation: `{env['txframe_implementation']}` "
        f"(txframe {env['txframe_version']}; the tables bind each implementation explicitly)",
        f"- Python: {env['python']}",
        f"- Twisted: {env['twisted']}",
        f"- CPU: {env['cpu']} ({env['cpus']} logical CPUs)",
        f"- Best of up to {settings['repeat']} interleaved runs per cell (at most "
        f"{settings['budget']:g} s of runs per cell, at least one); empty "
        + " / ".join(f"`{c}`" for c in callbacks)
        + "; fresh protocol on a `StringTransport` per run; rates: "
        + (", ".join(units[:-1]) + " or " if len(units) > 1 else "")
        + units[-1]
        + (" (1 MB = 10⁶ B)" if "bytes" in units else "")
        + " per second, higher is better"
        + ("; AMP round trips: see below." if any(wl.group == "roundtrip" for wl in amp_wls)
           else "."),
    ]
    skipped = [
        (wl, impl)
        for wl in workloads
        for impl in W.IMPLEMENTATIONS
        if results[wl.name][impl]["skipped"] and wl.family != "amp"
    ]
    if skipped:
        notes = []
        for wl, impl in skipped:
            what = f"{IMPL_LABEL[impl]} on one {W.pretty_size(wl.length)} {wl.kind} " + (
                "line" if wl.family == "lines" else "string"
            )
            smaller = next(
                (
                    o
                    for o in workloads
                    if o.group == wl.group
                    and o.length < wl.length
                    and results[o.name][impl]["best"] is not None
                ),
                None,
            )
            if smaller is not None:
                best = results[smaller.name][impl]["best"]
                factor = (wl.length / smaller.length) ** 2
                what += (
                    f" (it took {fmt_seconds(best)} on the {W.pretty_size(smaller.length)} "
                    f"one: ~{fmt_seconds(best * factor)} expected, quadratic)"
                )
            notes.append(what)
        out.append(
            "- **Not run**, to keep the run short: " + "; ".join(notes) + ". The linearity "
            "targets are about txframe; `--twisted-all` runs these too."
        )
    if settings["quick"]:
        out.append(
            "- **--quick**: few runs and scaled-down big workloads; figures are only a smoke test."
        )
    if line_wls:
        out += ["", "## Throughput: lines", "", _throughput_table(line_wls, results)]
    if string_wls:
        out += ["", "## Throughput: strings", "", _throughput_table(string_wls, results)]
    if amp_wls:
        out += ["", "## Throughput: AMP", "", _throughput_table(amp_wls, results)]
        out += [""] + [" ".join(_amp_notes(amp_wls, results, roundtrip_cpu or {}))]
        skipped_amp = [
            f"{IMPL_LABEL[impl]} on {wl.name} ({results[wl.name][impl]['skipped']})"
            for wl in amp_wls
            for impl in W.IMPLEMENTATIONS
            if results[wl.name][impl]["skipped"]
        ]
        if skipped_amp:
            out += ["", "Skipped: " + "; ".join(skipped_amp) + "."]
    few = [
        f"{IMPL_LABEL[impl]} on {wl.name} ({results[wl.name][impl]['runs']})"
        for wl in workloads
        for impl in W.IMPLEMENTATIONS
        if 0 < results[wl.name][impl]["runs"] < min(5, settings["repeat"])
        and wl.group != "roundtrip"
    ]
    if few:
        out += ["", "Cells with fewer than 5 runs (time budget spent): " + ", ".join(few) + "."]
    if lin or lin_strings:
        out += ["", "## Linearity"]
        for one in (lin, lin_strings):
            if one:
                out += ["", _linearity_table(workloads, results, one)]
    if memory:
        out += ["", f"## Memory per idle connection ({settings['connections']:,} connections)", ""]
        rows = []
        for kind in W.LINE_KINDS:
            mem = memory[kind]
            tw = mem.get("twisted")
            rows.append(
                [kind]
                + [f"{mem[impl]:.0f} B" if impl in mem else "n/a" for impl in W.IMPLEMENTATIONS]
                + [
                    fmt_ratio(mem[impl] / tw) if impl in mem and tw else "n/a"
                    for impl in ("compiled", "pure")
                ]
            )
        out.append(
            table(
                ["Protocol", "Twisted", "compiled", "pure", "compiled÷Twisted", "pure÷Twisted"],
                rows,
                "lrrrrr",
            )
        )
        out += [
            "",
            "Bytes tracemalloc attributes to each protocol built by a `Factory`, connected to "
            'its own `StringTransport` and fed one line `b"hello\\r\\n"`.',
        ]
    if targets is not None:
        out += ["", "## Targets", ""]
        if settings["quick"]:
            out += ["(--quick: scaled-down sizes and few runs; not meaningful.)", ""]
        rows = [[t["target"], t["measured"], "PASS" if t["ok"] else "**MISS**"] for t in targets]
        out.append(table(["Target", "Measured", "Result"], rows, "lrl"))
    return "\n".join(out) + "\n"


def _servers_only(
    families: list[str], quick: bool, check: bool, json_path: str | None
) -> int:
    """``--only maps`` / ``--only ftp``: those scripts' runs and reports alone."""
    raws: dict[str, Any] = {}
    texts = []
    started = time.perf_counter()
    for family in families:
        module = importlib.import_module("maps" if family == "maps" else "ftp_bench")
        text, raws[family] = module.run(quick=quick, check=check)
        texts.append(text)
    print("\n".join(texts), end="")
    log(f"done in {time.perf_counter() - started:.1f} s")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(raws, f, indent=2, ensure_ascii=False)
            f.write("\n")
        log(f"raw results written to {json_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: few runs, small sizes (a few seconds)"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, metavar="N",
        help=f"runs per cell, best kept (default {DEFAULT_REPEAT}; --quick {QUICK_REPEAT})",
    )
    parser.add_argument(
        "--budget", type=float, default=None, metavar="SECONDS",
        help="stop repeating a cell once its runs add up to this "
        f"(default {DEFAULT_BUDGET:g}; --quick {QUICK_BUDGET:g})",
    )
    parser.add_argument(
        "--connections", type=int, default=None, metavar="N",
        help=f"protocols for the memory measurement (default {DEFAULT_CONNECTIONS:,}; "
        f"--quick {QUICK_CONNECTIONS:,}; 0 skips it)",
    )
    parser.add_argument(
        "--twisted-all", action="store_true",
        help="also run Twisted on the 8 MiB line and the 20 MiB string (quadratic: about "
        "a minute each; skipped by default, always run with --quick)",
    )
    parser.add_argument(
        "--roundtrip-rounds", type=int, default=None, metavar="N",
        help="AMP round trips: processes per implementation, best kept "
        f"(default {DEFAULT_ROUNDTRIP_ROUNDS}; --quick {QUICK_ROUNDTRIP_ROUNDS}; 0 skips them)",
    )
    parser.add_argument(
        "--roundtrip-calls", type=int, default=None, metavar="N",
        help=f"AMP round trips: calls timed per process (default {W.ROUNDTRIP_CALLS:,}; "
        f"--quick {W.QUICK_ROUNDTRIP_CALLS:,})",
    )
    parser.add_argument(
        "--only", metavar="FAMILIES", default=",".join(DEFAULT_FAMILIES),
        help=f"comma-separated workload families to run, of {', '.join(FAMILIES)} "
        f"(default {','.join(DEFAULT_FAMILIES)}; the memory measurement comes with lines; "
        "maps runs maps.py, the Postfix map servers, ~2 min more; ftp runs ftp_bench.py, "
        "the FTP data channel, ~1-1.5 min more)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the raw results to PATH")
    parser.add_argument(
        "--check-targets", action="store_true",
        help="print the issue's performance targets as PASS/MISS (informational)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    repeat = max(1, args.repeat or (QUICK_REPEAT if quick else DEFAULT_REPEAT))
    budget = args.budget
    if budget is None:
        budget = QUICK_BUDGET if quick else DEFAULT_BUDGET
    connections = args.connections
    if connections is None:
        connections = QUICK_CONNECTIONS if quick else DEFAULT_CONNECTIONS
    twisted_all = args.twisted_all or quick  # --quick's big cases are small
    families = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        parser.error(f"--only: unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    run_maps = "maps" in families
    run_ftp = "ftp" in families
    families = [f for f in families if f not in ("maps", "ftp")]
    if (run_maps or run_ftp) and not families:
        return _servers_only(
            [f for f, on in (("maps", run_maps), ("ftp", run_ftp)) if on],
            quick, args.check_targets, args.json,
        )
    if "lines" not in families:
        connections = 0  # the memory measurement is of the line protocols
    rt_rounds = args.roundtrip_rounds
    if rt_rounds is None:
        rt_rounds = QUICK_ROUNDTRIP_ROUNDS if quick else DEFAULT_ROUNDTRIP_ROUNDS
    rt_calls = args.roundtrip_calls or (W.QUICK_ROUNDTRIP_CALLS if quick else W.ROUNDTRIP_CALLS)
    rt_warmup = min(W.QUICK_ROUNDTRIP_WARMUP if quick else W.ROUNDTRIP_WARMUP, rt_calls)
    settings = {
        "quick": quick,
        "repeat": repeat,
        "budget": budget,
        "connections": connections,
        "twisted_all": twisted_all,
        "families": families,
        "roundtrip_rounds": rt_rounds,
        "roundtrip_calls": rt_calls,
        "roundtrip_warmup": rt_warmup,
    }

    started = time.perf_counter()
    env = environment()
    impls = [impl for impl in W.IMPLEMENTATIONS if W.available(impl)]
    for impl in W.IMPLEMENTATIONS:
        if impl not in impls:
            log(f"txframe's {impl} framer is not available: its columns will read n/a")
        elif "amp" in families and not W.available(impl, "amp"):
            log(f"txframe's {impl} box codec is not available: its AMP columns will read n/a")
    workloads: list[Any] = []
    if "lines" in families:
        if quick:
            workloads += W.standard_workloads(
                one_chunk=W.SMALL_ONE_CHUNK, big_lines=W.SMALL_BIG_LINES,
                twisted_on_largest=twisted_all,
            )
        else:
            workloads += W.standard_workloads(twisted_on_largest=twisted_all)
    if "strings" in families:
        if quick:
            workloads += W.string_workloads(
                big_strings=W.SMALL_BIG_STRINGS, twisted_on_largest=twisted_all
            )
        else:
            workloads += W.string_workloads(twisted_on_largest=twisted_all)
    encode_wls: list[W.EncodeWorkload] = []
    roundtrip_wl: W.RoundTripWorkload | None = None
    if "amp" in families:
        workloads += W.amp_decode_workloads()
        encode_wls = W.amp_encode_workloads()
        if rt_rounds > 0:
            roundtrip_wl = W.amp_roundtrip_workload(rt_calls, W.ROUNDTRIP_WINDOW, rt_warmup)
    for wl in workloads:
        wl.chunks  # noqa: B018  (cut the chunks now, before any timing)

    log(f"verifying {len(workloads) + len(encode_wls)} workloads on {', '.join(impls)} ...")
    verify(workloads, impls)
    verify_encoding(encode_wls, impls)
    log(f"timing (best of up to {repeat}, ≤ {budget:g} s per cell) ...")
    samples = run_throughput(workloads, impls, repeat, budget)
    if encode_wls:
        samples.update(run_encoding(encode_wls, impls, repeat, budget))
    roundtrip_runs: dict[str, list[dict[str, Any]]] = {}
    if roundtrip_wl is not None:
        log(
            f"AMP round trips: {rt_rounds} rounds of one process per implementation, "
            f"{rt_calls:,} calls each ..."
        )
        rt_samples, roundtrip_runs = run_roundtrips(roundtrip_wl, impls, rt_rounds)
        samples.update(rt_samples)
    every = workloads + encode_wls + ([roundtrip_wl] if roundtrip_wl is not None else [])
    results = analyse(every, samples)
    lin = linearity(workloads, results, "big-line")
    lin_strings = linearity(workloads, results, "big-string")
    memory: dict[str, dict[str, float]] = {}
    if connections > 0:
        log(f"measuring memory ({connections:,} connections per class and implementation) ...")
        memory = run_memory(impls, connections)
    cpu_per_call = roundtrip_cpu(roundtrip_runs)
    targets = check_targets(every, results, lin, memory, lin_strings)
    shown_targets = targets if args.check_targets else None
    print(
        report(
            env, settings, every, results, lin, memory, shown_targets, lin_strings, cpu_per_call
        ),
        end="",
    )
    maps_raw = None
    if run_maps:
        import maps

        log("Postfix map servers (maps.py) ...")
        maps_text, maps_raw = maps.run(quick=quick, check=args.check_targets)
        print("\n" + maps_text, end="")
    ftp_raw = None
    if run_ftp:
        import ftp_bench

        log("FTP data channel (ftp_bench.py) ...")
        ftp_text, ftp_raw = ftp_bench.run(quick=quick, check=args.check_targets)
        print("\n" + ftp_text, end="")
    elapsed = time.perf_counter() - started
    log(f"done in {elapsed:.1f} s")

    if args.json:
        raw = {
            "environment": env,
            "settings": settings,
            "elapsed_seconds": elapsed,
            "workloads": [
                {
                    "name": wl.name,
                    "title": wl.title,
                    "kind": wl.kind,
                    "group": wl.group,
                    "bytes": len(wl.data),
                    "chunk_size": wl.chunk_size,
                    "chunks": len(wl.chunks),
                    "family": wl.family,
                    "frames": wl.count,
                    "frame_length": wl.length,
                    "max_length": wl.max_length,
                    "unit": wl.unit,
                    "skipped": {impl: wl.skip_reason for impl in sorted(wl.skip)},
                    "results": results[wl.name],
                }
                for wl in workloads
            ],
            "amp_encode": [
                {
                    "name": wl.name,
                    "title": wl.title,
                    "encoder": wl.encoder,
                    "boxes": wl.count,
                    "bytes": sum(map(len, wl.expected)),
                    "skipped": {impl: wl.skip_reason for impl in sorted(wl.skip)},
                    "results": results[wl.name],
                }
                for wl in encode_wls
            ],
            "amp_roundtrip": None
            if roundtrip_wl is None
            else {
                "name": roundtrip_wl.name,
                "title": roundtrip_wl.title,
                "calls": roundtrip_wl.count,
                "window": roundtrip_wl.window,
                "warmup": roundtrip_wl.warmup,
                "results": results[roundtrip_wl.name],
                "cpu_us_per_call": cpu_per_call,
                "runs": roundtrip_runs,
            },
            "linearity": lin,
            "linearity_strings": lin_strings,
            "memory_bytes_per_connection": memory,
            "targets": targets,
            "maps": maps_raw,
            "ftp": ftp_raw,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(raw, f, indent=2, ensure_ascii=False)
            f.write("\n")
        log(f"raw results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
