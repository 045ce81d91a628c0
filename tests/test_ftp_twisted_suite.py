"""Twisted's own FTP server tests (``twisted/test/test_ftp.py``) run against txframe.ftp.

Nothing of the suite is copied here: its module is loaded from the installed Twisted
at run time, under another name, while ``twisted.protocols.ftp`` is a module whose
``DTP``, ``DTPFactory``, ``FTP`` and ``FTPFactory`` are txframe's (bound to one LIST
formatter, as tests/ftp_classes.py binds them) and whose every other name is Twisted's.
So the suite's servers are txframe's ``FTPFactory`` -> ``FTP`` -> ``DTPFactory`` ->
``DTP``, over real loopback TCP, and its DTP and DTPFactory unit tests test txframe's.

Only the suite's server-side test cases run: those that subclass its
``FTPServerTestCase`` or name one of those four classes (its client, shell, realm and
path tests do not touch them). Once per formatter: ``Compiled_*`` (marked
``compiled``; skipped without the extension unless ``TXFRAME_REQUIRE_EXTENSIONS=1``,
then an error) and ``Pure_*``.

Tests that fail because of a deliberate, documented difference from Twisted would be
listed in ``EXPECTED_DIFFERENCES`` and marked ``xfail(strict=True)``; there are none.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import types
import unittest
from typing import Any

import pytest
import twisted.internet.testing  # noqa: F401  the suite's imports, made before the
import twisted.protocols  # substitution in _load_suite so that only the suite binds it
import twisted.test.proto_helpers  # noqa: F401
from twisted.protocols import ftp as twisted_ftp

import txframe.ftp
from ftp_classes import bind_ftp
from twisted_suite import in_a_temporary_directory, load_suite  # noqa: F401 (a fixture)

SUITE = "twisted.test.test_ftp"
REQUIRED = os.environ.get("TXFRAME_REQUIRE_EXTENSIONS", "") not in ("", "0")
BOUND_NAMES = ("DTP", "DTPFactory", "FTP", "FTPFactory")

#: Twisted's test (class.method) -> (why txframe deliberately differs, what it raises).
EXPECTED_DIFFERENCES: dict[str, tuple[str, type[BaseException]]] = {}


def _listing(suffix: str) -> tuple[Any, BaseException | None]:
    try:
        return importlib.import_module(f"txframe._listing_{suffix}"), None
    except ImportError as error:
        if suffix == "c" and REQUIRED:
            return None, error
        if suffix == "c":
            return None, None
        raise


COMPILED, COMPILED_ERROR = _listing("c")
PURE, _ = _listing("py")


class _FtpAsSeenBySuite(types.ModuleType):
    """``twisted.protocols.ftp`` as the suite sees it: the bound classes, then
    txframe.ftp (which falls back to Twisted's module for the rest)."""

    def __init__(self, bound: types.SimpleNamespace) -> None:
        super().__init__(twisted_ftp.__name__, txframe.ftp.__doc__)
        vars(self).update({name: getattr(bound, name) for name in BOUND_NAMES})

    def __getattr__(self, name: str) -> Any:
        return getattr(txframe.ftp, name)


def _load_suite(kind: str, seen: types.ModuleType) -> types.ModuleType:
    """A fresh copy of Twisted's test_ftp whose ``ftp`` is *seen*."""
    return load_suite(SUITE, f"txframe_twisted_ftp_suite_{kind}", "ftp", seen)


def _server_side(module: types.ModuleType, cls: type) -> bool:
    """Whether a TestCase of the suite exercises the server classes."""
    if issubclass(cls, module.FTPServerTestCase):
        return True
    source = inspect.getsource(cls)
    return re.search(r"\bftp\.(%s)\b" % "|".join(BOUND_NAMES), source) is not None


def _expect_difference(cls: type, method: str, reason: str, raises: Any) -> None:
    test = getattr(cls, method)

    def expected(self: Any) -> Any:
        return test(self)

    expected.__name__ = method
    expected.pytestmark = [pytest.mark.xfail(reason=reason, raises=raises, strict=True)]
    setattr(cls, method, expected)


def _expose(kind: str, module: types.ModuleType, marks: list[Any]) -> list[str]:
    exposed = []
    for name, obj in sorted(vars(module).items()):
        if not (
            isinstance(obj, type)
            and issubclass(obj, unittest.TestCase)
            and obj.__module__ == module.__name__
            and _server_side(module, obj)
        ):
            continue
        obj.pytestmark = list(marks)
        for method in dir(obj):
            entry = EXPECTED_DIFFERENCES.get(f"{name}.{method}")
            if entry is not None:
                _expect_difference(obj, method, *entry)
        exposed.append(f"{kind.capitalize()}_{name}")
        globals()[exposed[-1]] = obj
    return exposed


@pytest.fixture
def compiled_listing() -> Any:
    """The compiled LIST formatter (skip without it; an error if it is required)."""
    if COMPILED_ERROR is not None:
        raise ImportError(f"the compiled LIST formatter is required: {COMPILED_ERROR}")
    if COMPILED is None:
        pytest.skip("txframe was installed without its compiled extension")
    return COMPILED


SUITES: dict[str, tuple[Any, types.ModuleType, list[str]]] = {}

for _kind, _listing_module, _marks in (
    ("compiled", COMPILED, [pytest.mark.compiled, pytest.mark.usefixtures("compiled_listing")]),
    ("pure", PURE, []),
):
    # Without the extension the compiled copy is bound to the pure formatter; its
    # tests skip (or error) in their fixture.
    _seen = _FtpAsSeenBySuite(bind_ftp(_listing_module or PURE))
    _suite = _load_suite(_kind, _seen)
    SUITES[_kind] = (_listing_module, _suite, _expose(_kind, _suite, _marks))


# -- guards ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", [pytest.param("compiled", marks=pytest.mark.compiled), "pure"]
)
def test_suite_is_bound_to_its_formatter(kind, request):
    """Each copy of the suite runs txframe's server classes, on the formatter it is
    named after, and the server classes reach the DTP through each other."""
    if kind == "compiled":
        request.getfixturevalue("compiled_listing")
    listing, suite, exposed = SUITES[kind]
    seen = suite.ftp
    assert isinstance(seen.DTP._formatter, listing.ListFormatter)
    assert issubclass(seen.DTP, txframe.ftp.DTP) and seen.DTP is not txframe.ftp.DTP
    assert seen.DTPFactory.protocol is seen.DTP
    assert seen.FTP.dtpFactoryClass is seen.DTPFactory
    assert seen.FTPFactory.protocol is seen.FTP
    assert seen.FTPRealm is twisted_ftp.FTPRealm  # the rest is Twisted's
    # the suite's servers, its DTP tests and its STOR close test are among those run
    for name in ("BasicFTPServerTests", "FTPServerPasvDataConnectionTests",
                 "FTPServerPortDataConnectionTests", "DTPFactoryTests", "DTPTests",
                 "FTPCloseTests"):
        assert f"{kind.capitalize()}_{name}" in exposed
    assert f"{kind.capitalize()}_FTPClientTests" not in exposed


def test_expected_differences_name_tests_of_the_suite():
    """Each entry of EXPECTED_DIFFERENCES marks a test that exists (a typo marks none)."""
    suite = SUITES["pure"][1]
    for entry in EXPECTED_DIFFERENCES:
        cls, _, method = entry.partition(".")
        assert method.startswith("test") and callable(getattr(getattr(suite, cls), method)), entry
