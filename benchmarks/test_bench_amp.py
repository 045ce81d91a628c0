"""pytest-benchmark suites: AMP box decoding and encoding on Twisted and on txframe.

Decoding: 10,000 five-key boxes (``_ask``, ``_command`` and the three arguments of
``workloads.Sum``, about 60 bytes each on the wire) in 64 KiB chunks to a fresh
``BinaryBoxProtocol`` of one implementation (ids like ``AMP-decode-65536-compiled``),
asserting that every box arrived (their number, the last one exactly) and nothing is
left buffered. Encoding: the same boxes one by one through Twisted's
``AmpBox.serialize`` or the implementation's ``encode_box`` (``AMP-encode_box-pure``),
and through txframe.amp's ``AmpBox.serialize`` (``AMP-AmpBox.serialize-*``: txframe's
only for the implementation txframe.framing selected), each
encoder first checked to write Twisted's bytes for every box. So the suite is also a
test: under ``--benchmark-disable`` (as CI runs the tree) each body runs once.

``callRemote`` round trips over TCP need a reactor per measurement: they are in
``benchmarks/compare.py`` (``amp_roundtrip.py``), not here.

    python -m pytest benchmarks/test_bench_amp.py --benchmark-only
    python -m pytest benchmarks --benchmark-only -k "AMP and compiled"
    python -m pytest benchmarks/test_bench_amp.py -q --benchmark-disable   # as a test
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import suite  # noqa: E402
import workloads as W  # noqa: E402

DECODE = W.amp_decode_workloads()
ENCODE = W.amp_encode_workloads()


@pytest.mark.parametrize(("workload", "impl"), suite.cases(DECODE))
def test_amp_decode(benchmark, request, workload, impl):
    suite.run(benchmark, request, workload, impl, boxes=workload.count)


@pytest.mark.parametrize(("workload", "impl"), suite.cases(ENCODE))
def test_amp_encode(benchmark, request, workload, impl):
    suite.run_encode(benchmark, request, workload, impl)
