"""pytest-benchmark suite: LIST lines through an FTP DTP, Twisted's against txframe's.

10,000 directory entries (``ftp_servers.synthetic_entries``) sent as LIST sends them,
through a DTP on a transport that keeps what it is given (``ftp_bench.list_runner``):
Twisted's ``sendListResponse`` per entry, txframe's ``sendListResponses`` (ids
``ftp-list-10000-compiled`` etc.). Each run's output is checked to be Twisted's bytes,
so the suite is also a test: under ``--benchmark-disable`` (as CI runs the tree) each
body runs once. ``benchmarks/ftp_bench.py`` (``compare.py --only ftp``) measures
100,000 entries, and LIST, RETR and STOR over loopback.

    python -m pytest benchmarks/test_bench_ftp.py --benchmark-only
"""

from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ftp_bench  # noqa: E402
import ftp_servers  # noqa: E402

ENTRIES = ftp_servers.synthetic_entries(10_000, time.time())
EXPECTED = ftp_bench.list_runner("twisted", ENTRIES)()


@pytest.mark.parametrize(
    "impl",
    ["twisted", pytest.param("compiled", marks=pytest.mark.compiled), "pure"],
    ids=lambda impl: f"ftp-list-10000-{impl}",
)
def test_ftp_list(benchmark, impl):
    if not ftp_bench.available(impl):
        pytest.skip("txframe's compiled LIST formatter is not available")
    run = ftp_bench.list_runner(impl, ENTRIES)
    output = benchmark(run)
    assert output == EXPECTED
    assert output.count(b"\r\n") == len(ENTRIES)
