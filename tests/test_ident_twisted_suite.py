"""Twisted's own ident tests (``twisted/test/test_ident.py``) run against txframe.ident.

The suite's module is loaded from the installed Twisted under another name, with its
``ident`` bound to txframe's module: nothing of it is copied here. Its tests that
fail by design are listed in ``EXPECTED_DIFFERENCES`` and marked ``xfail(strict=True)``:
if one starts passing, the run fails.
"""

from __future__ import annotations

import unittest

import pytest

from twisted_suite import load_suite
from txframe import ident

EXPECTED_DIFFERENCES = {
    # Twisted's server takes and sends str, which is why it fails on every real
    # connection (#11868); txframe's takes and sends bytes.
    "ServerParserTests.testErrors": "str lines in and out; txframe's server speaks bytes",
    "ServerParserTests.testSuccess": "str lines in and out; txframe's server speaks bytes",
    # It asserts that /proc/net/tcp is the only file opened; txframe's reads tcp6 too.
    "ProcMixinTests.testLookupProcNetTcp": "txframe also reads /proc/net/tcp6 (IPv6)",
}


def _suite_module():
    module = load_suite("twisted.test.test_ident", "txframe_twisted_ident_suite", "ident", ident)
    assert issubclass(module.TestIdentServer, ident.IdentServer)
    return module


SUITE = _suite_module()
CASES = [
    (cls.__name__, name)
    for cls in vars(SUITE).values()
    if isinstance(cls, type) and issubclass(cls, unittest.TestCase) and cls.__module__ == SUITE.__name__
    for name in unittest.TestLoader().getTestCaseNames(cls)
]


def test_the_suite_was_found():
    assert len(CASES) >= 12
    assert set(EXPECTED_DIFFERENCES) <= {f"{c}.{n}" for c, n in CASES}


@pytest.mark.parametrize(
    "case,name",
    [
        pytest.param(
            c,
            n,
            marks=[pytest.mark.xfail(reason=EXPECTED_DIFFERENCES[f"{c}.{n}"], strict=True)]
            if f"{c}.{n}" in EXPECTED_DIFFERENCES
            else [],
            id=f"{c}.{n}",
        )
        for c, n in CASES
    ],
)
def test_twisted_ident_suite(case, name):
    result = unittest.TestResult()
    getattr(SUITE, case)(name).run(result)
    problems = result.errors + result.failures
    assert result.testsRun == 1
    assert not problems, problems[0][1]
