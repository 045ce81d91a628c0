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

    python -m pytest benchmarks --benchmark-only                # all of them
    python -m pytest benchmarks --benchmark-only -k 1024        # one chunk size
    python -m pytest benchmarks -q --benchmark-disable          # as a plain test
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import suite  # noqa: E402
import workloads as W  # noqa: E402

WORKLOADS = W.standard_workloads(one_chunk=W.SMALL_ONE_CHUNK, big_lines=W.SMALL_BIG_LINES)


@pytest.mark.parametrize(("workload", "impl"), suite.cases(WORKLOADS))
def test_lines(benchmark, request, workload, impl):
    suite.run(benchmark, request, workload, impl, lines=workload.lines)
