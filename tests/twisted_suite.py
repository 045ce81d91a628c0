"""Running one of Twisted's own test modules against a txframe module, on the
compiled and on the pure twin of its framer.

``load_suite("twisted.test.test_ftp", "txframe_twisted_ftp_suite_pure", "ftp", seen)``
runs a fresh copy of Twisted's test module, under another name, while
``twisted.protocols.ftp`` (the package attribute and ``sys.modules``) is *seen*, so
that its ``from twisted.protocols import ftp`` binds *seen*; both are restored after.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pathlib
import sys
import types
import unittest
from typing import Any, Callable

import pytest
import twisted.protocols
from twisted.internet import reactor

from peer_rule import EXTENSIONS_REQUIRED

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


# -- the compiled and pure twins ---------------------------------------------------------


def twins(family: str) -> tuple[Any, BaseException | None, Any]:
    """txframe's compiled and pure modules of *family* (``boxes`` for ``_boxes_c`` and
    ``_boxes_py``): (the compiled one or None, why it is missing if it is required,
    the pure one)."""
    pure = importlib.import_module(f"txframe._{family}_py")
    try:
        return importlib.import_module(f"txframe._{family}_c"), None, pure
    except ImportError as error:
        return None, (error if EXTENSIONS_REQUIRED else None), pure


def require_compiled(compiled: Any, error: BaseException | None, what: str) -> Any:
    """*compiled*, for a fixture of the compiled copy of a suite: skip its tests when
    the extension was not built; an error if it is required."""
    if error is not None:  # a new error each time: re-raising one grows its traceback
        raise ImportError(f"the compiled {what} is required: {error}")
    if compiled is None:
        pytest.skip("txframe was installed without its compiled extension")
    return compiled


# -- collecting a suite ------------------------------------------------------------------


def expose(
    suite: types.ModuleType,
    prefix: str,
    marks: list[Any],
    namespace: dict[str, Any],
    expected: dict[str, tuple[str, str, type[BaseException]]],
    keep: Callable[[type], bool] = lambda cls: True,
) -> list[str]:
    """Make *suite*'s own TestCases (those *keep* accepts) globals of a test module
    (*namespace*), named ``<prefix>_<name>`` and marked with *marks*; return the names.

    *expected* maps a test (``Class.method``) to (the README section that documents
    the difference, why txframe deliberately differs, the exception it fails with):
    that test is marked ``xfail(strict=True)``, so the run fails if it starts passing.
    An entry that names no test, or a section the README does not have, is an error.
    """
    headings = readme_headings()
    for test, (section, _, _) in expected.items():
        if section not in headings:
            raise LookupError(f"{test}: the README has no section {section!r}")
    exposed = []
    unmatched = set(expected)
    for name, cls in sorted(vars(suite).items()):
        if not (
            isinstance(cls, type)
            and issubclass(cls, unittest.TestCase)
            and cls.__module__ == suite.__name__
            and keep(cls)
        ):
            continue
        cls.pytestmark = list(marks)
        for method in unittest.TestLoader().getTestCaseNames(cls):
            entry = expected.get(f"{name}.{method}")
            if entry is not None:
                unmatched.discard(f"{name}.{method}")
                section, reason, raises = entry
                _expect_difference(cls, method, f"{reason} (README: {section})", raises)
        exposed.append(f"{prefix}_{name}")
        namespace[exposed[-1]] = cls
    if unmatched:
        raise LookupError(f"expected differences that name no test of {suite.__name__}: "
                          f"{sorted(unmatched)}")
    return exposed


def readme_headings() -> set[str]:
    """The README's section headings: ``## Title`` lines and ``**Title**`` lines."""
    readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
    headings = set()
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            headings.add(line.lstrip("#").strip())
        elif line.startswith("**") and line.endswith("**"):
            headings.add(line.strip("*"))
    return headings


def _expect_difference(
    cls: type, method: str, reason: str, raises: type[BaseException]
) -> None:
    """Mark *cls*'s test *method* (its own copy, even if inherited) as failing. Its
    outcome is its own assertions': the calls it leaves scheduled in the reactor by
    stopping part-way are cancelled (trial would report them as a second error)."""
    test = getattr(cls, method)

    @functools.wraps(test)
    def expected(self: Any) -> Any:
        before = set(reactor.getDelayedCalls())
        self.addCleanup(_cancel_delayed_calls_since, before)
        return test(self)

    expected.pytestmark = [  # type: ignore[attr-defined]
        pytest.mark.xfail(reason=reason, raises=raises, strict=True)
    ]
    setattr(cls, method, expected)


def _cancel_delayed_calls_since(before: set[Any]) -> None:
    for call in reactor.getDelayedCalls():
        if call not in before and call.active():
            call.cancel()
