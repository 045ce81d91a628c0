"""pytest-benchmark suites: the workloads of ``workloads.py`` on Twisted and on txframe.

Each test feeds one workload to a fresh protocol of one implementation (ids like
``LineReceiver-1024-compiled``; ``-k compiled``, ``-k LineOnlyReceiver`` etc. select)
and asserts that exactly the expected lines arrived, so the suite is also a test: under
``--benchmark-disable`` (as CI runs the tree) each body runs once.

Sizes: the big workloads are scaled down from compare.py's (one 256 KiB chunk instead of
1 MiB, lines of 256 and 512 KiB instead of 4 and 8 MiB, see ``workloads.SMALL_*``),
because Twisted is quadratic on them: one 1 MiB chunk costs its LineReceiver ~0.7 s and
one 8 MiB line ~48 s on a 2.5 GHz Xeon. With these sizes Twisted's slowest body takes
~0.2 s. ``benchmarks/compare.py`` measures the full sizes.

Unlike compare.py, ``lineReceived`` here counts the lines (for the assertion), which
adds the same small cost to every implementation. Rounds are calibrated on one run so
a test takes about ``--benchmark-max-time`` (at least ``--benchmark-min-rounds``); each
round gets a fresh protocol and is checked.

    python -m pytest benchmarks --benchmark-only                # all of them
    python -m pytest benchmarks --benchmark-only -k 1024        # one chunk size
    python -m pytest benchmarks -q --benchmark-disable          # as a plain test
"""

from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads as W  # noqa: E402

WORKLOADS = W.standard_workloads(one_chunk=W.SMALL_ONE_CHUNK, big_lines=W.SMALL_BIG_LINES)

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
def test_lines(benchmark, request, workload, impl):
    if not W.available(impl):
        pytest.skip(f"txframe's {impl} framer is not available")
    cls = W.protocol_class(impl, workload.kind, counting=True)
    chunks = workload.chunks  # cut once, outside the timing

    benchmark.group = workload.name
    benchmark.extra_info.update(
        implementation=impl,
        kind=workload.kind,
        bytes=len(workload.data),
        chunk_size=workload.chunk_size,
        lines=workload.lines,
    )

    def setup():
        return (W.connect(cls, workload), chunks), {}

    def teardown(proto, _chunks):
        W.check(proto, workload)

    rounds = 1 if benchmark.disabled else _rounds(request, cls, workload)
    proto = benchmark.pedantic(W.feed, setup=setup, teardown=teardown, rounds=rounds)
    W.check(proto, workload)
