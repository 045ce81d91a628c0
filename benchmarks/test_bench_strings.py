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


    python -m pytest benchmarks/test_bench_strings.py --benchmark-only
    python -m pytest benchmarks --benchmark-only -k "Int32 and compiled"
    python -m pytest benchmarks -q --benchmark-disable          # as a plain test
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import suite  # noqa: E402
import workloads as W  # noqa: E402

WORKLOADS = W.string_workloads(big_strings=W.SMALL_BIG_STRINGS)


@pytest.mark.parametrize(("workload", "impl"), suite.cases(WORKLOADS))
def test_strings(benchmark, request, workload, impl):
    suite.run(benchmark, request, workload, impl, strings=workload.count, string_length=workload.length)
