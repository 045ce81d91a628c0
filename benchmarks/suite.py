"""What the pytest-benchmark suites share: their parameters and the timed body.

Each case feeds one workload to a fresh protocol of one implementation and asserts
that exactly the expected frames arrived (their number, the last one byte for byte,
nothing left buffered), or (:func:`run_encode`) encodes boxes one by one and asserts
that every box comes out as Twisted writes it, so the suites are also tests: under
``--benchmark-disable`` (as CI runs the tree) each body runs once. Rounds are
calibrated on one untimed run so a case takes about ``--benchmark-max-time`` (at least
``--benchmark-min-rounds``). Unlike compare.py, the callbacks count frames (for the
assertion), which adds the same small cost to every implementation.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import workloads as W


def cases(workloads: list[Any]) -> list[Any]:
    """pytest params: every workload on every implementation it runs on (ids
    ``<workload>-<impl>``)."""
    return [
        pytest.param(
            workload,
            impl,
            id=f"{workload.name}-{impl}",
            marks=[pytest.mark.compiled] if impl == "compiled" else [],
        )
        for workload in workloads
        for impl in W.IMPLEMENTATIONS
        if workload.runs_on(impl)
    ]


def _rounds(request: Any, cls: type, workload: W.Workload) -> int:
    max_time = float(request.config.getoption("benchmark_max_time", 1.0) or 1.0)
    min_rounds = int(request.config.getoption("benchmark_min_rounds", 5) or 5)
    proto = W.connect(cls, workload)
    started = time.perf_counter()
    W.feed(proto, workload.chunks)
    elapsed = time.perf_counter() - started
    W.check(proto, workload)
    return max(min_rounds, min(10_000, int(max_time / max(elapsed, 1e-6))))


def _require(workload: Any, impl: str) -> None:
    """Skip the case if *workload* is not run on *impl*, or *impl* is not built."""
    if not workload.runs_on(impl):
        pytest.skip(workload.skip_reason or f"{workload.name} is not run on {impl}")
    if not W.available(impl, workload.family):
        what = "box codec" if workload.family == "amp" else "framers"
        pytest.skip(f"txframe's {impl} {what} are not available")


def run(benchmark: Any, request: Any, workload: W.Workload, impl: str, **info: Any) -> None:
    """Time *workload* on *impl* with pytest-benchmark, checking every round."""
    _require(workload, impl)
    cls = W.protocol_class(impl, workload.kind, counting=True)
    chunks = workload.chunks  # cut once, outside the timing
    benchmark.group = workload.name
    benchmark.extra_info.update(
        implementation=impl,
        kind=workload.kind,
        bytes=len(workload.data),
        chunk_size=workload.chunk_size,
        **info,
    )

    def setup() -> Any:
        return (W.connect(cls, workload), chunks), {}

    def teardown(proto: Any, _chunks: Any) -> None:
        W.check(proto, workload)

    rounds = 1 if benchmark.disabled else _rounds(request, cls, workload)
    proto = benchmark.pedantic(W.feed, setup=setup, teardown=teardown, rounds=rounds)
    W.check(proto, workload)


def run_encode(
    benchmark: Any, request: Any, workload: W.EncodeWorkload, impl: str, **info: Any
) -> None:
    """Time encoding *workload*'s boxes one by one on *impl* (``W.encoder``), after
    checking that every box comes out as Twisted writes it."""
    _require(workload, impl)
    encode, boxes = W.encoder(impl, workload)
    W.check_encoding(impl, workload)
    benchmark.group = workload.name
    benchmark.extra_info.update(
        implementation=impl, encoder=workload.encoder, boxes=len(boxes), **info
    )
    if benchmark.disabled:
        rounds = 1
    else:
        max_time = float(request.config.getoption("benchmark_max_time", 1.0) or 1.0)
        min_rounds = int(request.config.getoption("benchmark_min_rounds", 5) or 5)
        started = time.perf_counter()
        W.encode_all(encode, boxes)
        elapsed = time.perf_counter() - started
        rounds = max(min_rounds, min(10_000, int(max_time / max(elapsed, 1e-6))))
    benchmark.pedantic(W.encode_all, args=(encode, boxes), rounds=rounds)
