"""pytest-benchmark suites: the string workloads of ``workloads.py`` on Twisted and txframe.

Each test feeds one workload to a fresh protocol of one implementation (ids like
``Int32-4096-compiled``, ``Netstring-65536-pure``, ``Int32-string-1MiB-twisted``;
``-k compiled``, ``-k Netstring`` etc. select) and asserts that exactly the expected
strings arrived (their number, and the last one byte for byte) with nothing left
buffered, so the suite is also a test: under ``--benchmark-disable`` (as CI runs the
tree) each body runs once.

Workloads: 10,000 strings of 30 payload bytes to ``Int32StringReceiver``,
``Int16StringReceiver``, ``Int8StringReceiver`` and ``NetstringReceiver`` in 4 KiB and
64 KiB chunks, and one big string to ``Int32StringReceiver`` in 1 KiB chunks.

Sizes: the big strings are scaled down from compare.py's (512 KiB and 1 MiB instead of
10 and 20 MiB, see ``workloads.SMALL_BIG_STRINGS``), because Twisted re-copies its whole
buffer for every chunk: the 10 MiB string costs it ~20 s on a 2.5 GHz Xeon. With these
sizes Twisted's slowest body (a 10,000-netstring run, or the 1 MiB string) takes
~0.1 s. ``benchmarks/compare.py`` measures the full sizes.

Unlike compare.py, ``stringReceived`` here counts the strings (for the assertion), which
adds the same small cost to every implementation. Rounds are calibrated on one run so
a test takes about ``--benchmark-max-time`` (at least ``--benchmark-min-rounds``); each
round gets a fresh protocol and is checked.

    python -m pytest benchmarks/test_bench_strings.py --benchmark-only
    python -m pytest benchmarks --benchmark-only -k "Int32 and compiled"
    python -m pytest benchmarks -q --benchmark-disable          # as a plain test
"""

from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads as W  # noqa: E402

WORKLOADS = W.string_workloads(big_strings=W.SMALL_BIG_STRINGS)

CASES = [
    pytest.param(
        workload,
        impl,
        id=f"{workload.name}-{impl}",
        marks=[pytest.mark.compiled] if impl == "compiled" else [],
    )
    for workload in WORKLOADS
    for impl in W.IMPLEMENTATIONS
]


def _rounds(request, cls, workload) -> int:
    """Rounds for about --benchmark-max-time of runs, from one untimed calibration run."""
    max_time = float(request.config.getoption("benchmark_max_time", 1.0) or 1.0)
    min_rounds = int(request.config.getoption("benchmark_min_rounds", 5) or 5)
    proto = W.connect(cls, workload)
    started = time.perf_counter()
    W.feed(proto, workload.chunks)
    elapsed = time.perf_counter() - started
    W.check(proto, workload)
    return max(min_rounds, min(10_000, int(max_time / max(elapsed, 1e-6))))


@pytest.mark.parametrize(("workload", "impl"), CASES)
def test_strings(benchmark, request, workload, impl):
    if not W.available(impl):
        pytest.skip(f"txframe's {impl} framers are not available")
    cls = W.protocol_class(impl, workload.kind, counting=True)
    chunks = workload.chunks  # cut once, outside the timing

    benchmark.group = workload.name
    benchmark.extra_info.update(
        implementation=impl,
        kind=workload.kind,
        bytes=len(workload.data),
        chunk_size=workload.chunk_size,
        strings=workload.count,
        string_length=workload.length,
    )

    def setup():
        return (W.connect(cls, workload), chunks), {}

    def teardown(proto, _chunks):
        W.check(proto, workload)

    rounds = 1 if benchmark.disabled else _rounds(request, cls, workload)
    proto = benchmark.pedantic(W.feed, setup=setup, teardown=teardown, rounds=rounds)
    W.check(proto, workload)
