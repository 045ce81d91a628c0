"""Twisted's own ident tests (``twisted/test/test_ident.py``) run against txframe.ident.

The suite's module is loaded from the installed Twisted under another name, with its
``ident`` bound to txframe's module: nothing of it is copied here. Its tests that
fail by design are listed in ``EXPECTED_DIFFERENCES`` and marked ``xfail(strict=True)``:
if one starts passing, the run fails. (txframe.ident has no compiled twin: its lines
are split by txframe.basic's LineOnlyReceiver, on the framer txframe.framing chose.)
"""

from __future__ import annotations

import unittest

from twisted.trial.unittest import FailTest

from twisted_suite import expose, load_suite
from txframe import ident

#: Twisted's test (class.method) -> (the README section that documents the difference,
#: why txframe deliberately differs, what it raises).
_IDENT = "Ident (`txframe.ident`)"  # in "Differences from Twisted"
_PROC = "Ident (RFC 1413): `txframe.ident`"  # its ProcServerMixin
EXPECTED_DIFFERENCES: dict[str, tuple[str, str, type[BaseException]]] = {
    # Twisted's server takes and sends str, which is why it fails on every real
    # connection (#11868); txframe's takes and sends bytes.
    "ServerParserTests.testErrors": (_IDENT, "str lines in and out; txframe's server speaks bytes", TypeError),
    "ServerParserTests.testSuccess": (_IDENT, "str lines in and out; txframe's server speaks bytes", TypeError),
    # It asserts that /proc/net/tcp is the only file opened; txframe's reads tcp6 too.
    "ProcMixinTests.testLookupProcNetTcp": (_PROC, "txframe also reads /proc/net/tcp6 (IPv6)", FailTest),
}

SUITE = load_suite("twisted.test.test_ident", "txframe_twisted_ident_suite", "ident", ident)
EXPOSED = expose(SUITE, "Twisted", [], globals(), EXPECTED_DIFFERENCES)


def test_the_suite_is_txframes():
    """The suite's classes are bound to txframe.ident, and all of them run here."""
    assert SUITE.ident is ident
    assert issubclass(SUITE.TestIdentServer, ident.IdentServer)
    loader = unittest.TestLoader()
    tests = sum(len(loader.getTestCaseNames(globals()[name])) for name in EXPOSED)
    assert tests >= 13, EXPOSED
