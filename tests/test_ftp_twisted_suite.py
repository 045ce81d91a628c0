"""Twisted's own FTP tests (``twisted/test/test_ftp.py``) run against txframe.ftp.

Nothing of the suite is copied here: its module is loaded from the installed Twisted
at run time, under another name, while ``twisted.protocols.ftp`` is a module whose
``DTP``, ``DTPFactory``, ``FTP`` and ``FTPFactory`` are txframe's (bound to one LIST
formatter, as tests/ftp_classes.py binds them) and whose every other name is
txframe.ftp's, that is Twisted's (the suite's private helpers, ``ftp._FileWriter``
and the like, are borrowed from Twisted's module). So the suite's servers are txframe's
``FTPFactory`` -> ``FTP`` -> ``DTPFactory`` -> ``DTP``, over real loopback TCP, its
DTP and DTPFactory unit tests test txframe's, and its client tests (``FTPClient``,
``ftp.ConnectionLost``, ...) run with the names a changed import gives them.

The server-side test cases (those that subclass its ``FTPServerTestCase`` or name one
of those four classes) run once per formatter: ``Compiled_*`` (marked ``compiled``;
skipped without the extension unless ``TXFRAME_REQUIRE_EXTENSIONS=1``, then an error)
and ``Pure_*``. The others (client, shell, realm, path) do not touch the formatter and
run once, as ``Pure_*``.

Tests that fail because of a deliberate, documented difference from Twisted would be
listed in ``EXPECTED_DIFFERENCES`` with the README section that documents it, and
marked ``xfail(strict=True)``; there are none.
"""

from __future__ import annotations

import inspect
import re
import types
from typing import Any

import pytest
import twisted.internet.testing  # noqa: F401  the suite's imports, made before the
import twisted.protocols  # substitution in _load_suite so that only the suite binds it
import twisted.test.proto_helpers  # noqa: F401
from twisted.protocols import ftp as twisted_ftp

import txframe.ftp
from ftp_classes import bind_ftp
from twisted_suite import (  # noqa: F401 (in_a_temporary_directory: a fixture)
    expose,
    in_a_temporary_directory,
    load_suite,
    require_compiled,
    twins,
)

SUITE = "twisted.test.test_ftp"
BOUND_NAMES = ("DTP", "DTPFactory", "FTP", "FTPFactory")

#: Twisted's test (class.method) -> (the README section that documents the difference,
#: why txframe deliberately differs, what it raises).
EXPECTED_DIFFERENCES: dict[str, tuple[str, str, type[BaseException]]] = {}


COMPILED, COMPILED_ERROR, PURE = twins("listing")


class _FtpAsSeenBySuite(types.ModuleType):
    """``twisted.protocols.ftp`` as the suite sees it: the bound classes, then
    txframe.ftp (which falls back to Twisted's module for the rest)."""

    def __init__(self, bound: types.SimpleNamespace) -> None:
        super().__init__(twisted_ftp.__name__, txframe.ftp.__doc__)
        vars(self).update({name: getattr(bound, name) for name in BOUND_NAMES})

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(txframe.ftp, name)
        except AttributeError:
            if not name.startswith("_"):
                raise
        # a private helper of Twisted's module (the suite uses _FileWriter)
        value = getattr(twisted_ftp, name)
        vars(self).setdefault("borrowed", set()).add(name)
        return value


def _load_suite(kind: str, seen: types.ModuleType) -> types.ModuleType:
    """A fresh copy of Twisted's test_ftp whose ``ftp`` is *seen*."""
    return load_suite(SUITE, f"txframe_twisted_ftp_suite_{kind}", "ftp", seen)


def _server_side(module: types.ModuleType, cls: type) -> bool:
    """Whether a TestCase of the suite exercises the server classes."""
    if issubclass(cls, module.FTPServerTestCase):
        return True
    source = inspect.getsource(cls)
    return re.search(r"\bftp\.(%s)\b" % "|".join(BOUND_NAMES), source) is not None


def _keep(kind: str, module: types.ModuleType) -> Any:
    """Which of the suite's TestCases a copy runs: the compiled copy its server-side
    ones (the only ones the formatter matters to), the pure copy all of them."""
    if kind == "pure":
        return lambda cls: True
    return lambda cls: _server_side(module, cls)


@pytest.fixture
def compiled_listing() -> Any:
    """The compiled LIST formatter (skip without it; an error if it is required)."""
    return require_compiled(COMPILED, COMPILED_ERROR, "LIST formatter")


SUITES: dict[str, tuple[Any, types.ModuleType, list[str]]] = {}

for _kind, _listing_module, _marks in (
    ("compiled", COMPILED, [pytest.mark.compiled, pytest.mark.usefixtures("compiled_listing")]),
    ("pure", PURE, []),
):
    # Without the extension the compiled copy is bound to the pure formatter; its
    # tests skip (or error) in their fixture.
    _seen = _FtpAsSeenBySuite(bind_ftp(_listing_module or PURE))
    _suite = _load_suite(_kind, _seen)
    SUITES[_kind] = (
        _listing_module,
        _suite,
        expose(_suite, _kind.capitalize(), _marks, globals(), EXPECTED_DIFFERENCES,
               keep=_keep(_kind, _suite)),
    )


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
    # the client-side tests (and the shell, realm and path tests) run once, in the
    # pure copy: they bind ftp.ConnectionLost and the other names txframe.ftp re-exports
    client = ("FTPClientTests", "FTPClientBasicTests",
              "FTPClientFailedRETRAndErrbacksUponDisconnectTests", "FTPFileListingTests")
    for name in client:
        assert (f"{kind.capitalize()}_{name}" in exposed) == (kind == "pure"), name
    assert seen.ConnectionLost is twisted_ftp.ConnectionLost
    assert all(name.startswith("_") for name in vars(seen).get("borrowed", ()))
