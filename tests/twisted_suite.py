"""Loading one of Twisted's own test modules against a txframe module.

``load_suite("twisted.test.test_ftp", "txframe_twisted_ftp_suite_pure", "ftp", seen)``
runs a fresh copy of Twisted's test module, under another name, while
``twisted.protocols.ftp`` (the package attribute and ``sys.modules``) is *seen*, so
that its ``from twisted.protocols import ftp`` binds *seen*; both are restored after.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

import pytest
import twisted.protocols

_MISSING = object()


@pytest.fixture(autouse=True)
def in_a_temporary_directory(tmp_path, monkeypatch):
    """Trial's ``mktemp`` makes its folders relative to the working directory: make
    them under pytest's temporary directory. (Autouse in the modules that import it.)"""
    monkeypatch.chdir(tmp_path)


def load_suite(suite: str, name: str, attribute: str, seen: Any) -> types.ModuleType:
    """A fresh copy of the test module *suite*, named *name*, whose
    ``twisted.protocols.<attribute>`` is *seen*."""
    origin = importlib.util.find_spec(suite).origin
    spec = importlib.util.spec_from_file_location(name, origin)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    package = twisted.protocols
    qualified = f"{package.__name__}.{attribute}"
    saved_attribute = vars(package).get(attribute, _MISSING)
    saved_module = sys.modules.get(qualified, _MISSING)
    sys.modules[name] = module
    setattr(package, attribute, seen)
    sys.modules[qualified] = seen
    try:
        spec.loader.exec_module(module)
    finally:
        if saved_attribute is _MISSING:
            delattr(package, attribute)
        else:
            setattr(package, attribute, saved_attribute)
        if saved_module is _MISSING:
            del sys.modules[qualified]
        else:
            sys.modules[qualified] = saved_module
    assert getattr(module, attribute) is seen
    return module
