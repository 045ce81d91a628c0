"""Every framing test runs on both implementations.

The ``impl`` fixture is parametrized over ``compiled`` and ``pure``; the compiled half
carries the ``compiled`` marker and is skipped with ``--no-compiled`` (or when the
package was installed without extensions, unless TXFRAME_REQUIRE_EXTENSIONS=1, in
which case its absence is an error: see test_implementation.py).
"""

from __future__ import annotations

import importlib
import os
from types import SimpleNamespace

import pytest

from txframe import basic


def pytest_addoption(parser):
    parser.addoption(
        "--no-compiled",
        action="store_true",
        default=False,
        help="skip the tests of the compiled (Cython) implementation",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--no-compiled"):
        skip = pytest.mark.skip(reason="--no-compiled given")
        for item in items:
            if "compiled" in item.keywords:
                item.add_marker(skip)


def _framer_module(name):
    try:
        return importlib.import_module(f"txframe._lines_{name}")
    except ImportError:
        if name == "c" and os.environ.get("TXFRAME_REQUIRE_EXTENSIONS") not in (None, "", "0"):
            raise
        return None


def _implementation(kind):
    module = _framer_module("c" if kind == "compiled" else "py")
    if module is None:
        pytest.skip("txframe was installed without its compiled extension")

    class LineReceiver(basic.LineReceiver):
        _lineFramer = module.LineFramer
        dataReceived = module.data_received

    class LineOnlyReceiver(basic.LineOnlyReceiver):
        _lineFramer = module.LineFramer
        dataReceived = module.data_received

    return SimpleNamespace(
        name=kind,
        LineFramer=module.LineFramer,
        LineReceiver=LineReceiver,
        LineOnlyReceiver=LineOnlyReceiver,
    )


@pytest.fixture(
    scope="session",
    params=[pytest.param("compiled", marks=pytest.mark.compiled), "pure"],
)
def impl(request):
    """One implementation of txframe's framers, with protocol classes bound to it.

    Attributes: ``name``, ``LineFramer`` and the drop-in classes ``LineReceiver`` and
    ``LineOnlyReceiver`` (subclass them as you would Twisted's).
    """
    return _implementation(request.param)
