"""Twisted's own AMP test suite (``twisted/test/test_amp.py``) run against txframe.amp.

Nothing of the suite is copied here: its module is loaded from the installed Twisted
at run time, under another name, while ``twisted.protocols.amp`` is txframe's module.
So its ``from twisted.protocols import amp`` binds txframe.amp, and every protocol,
box and parser it tests is txframe's (its AMP subclasses subclass ours).

It is loaded once per implementation of the box codec, as the ``impl`` fixture of
conftest.py covers both:

- ``Compiled_*``: txframe.amp bound to ``txframe._boxes_c`` (txframe.amp itself when
  txframe.framing chose it). Skipped when the extension was not built, unless
  ``TXFRAME_REQUIRE_EXTENSIONS=1``: then every one of them errors. Marked ``compiled``,
  so ``--no-compiled`` deselects them.
- ``Pure_*``: txframe.amp bound to ``txframe._boxes_py`` (txframe.amp itself when
  txframe.framing chose it, else txframe/amp.py run again with txframe.framing's box
  codec names bound to the pure one, so AmpBox.serialize, parse and parseString are pure
  too).

The suite also reaches for a few private names of Twisted's module that txframe.amp
does not have (``_FixedOffsetTZInfo``, ``_SwitchBox``, ``_TLSBox``, ``ssl``): those
are Twisted's, and ``ssl`` is set on Twisted's module (its StartTLS code reads it).
``test_suite_borrows_only_private_names`` fails if the suite needed any other name.

The tests whose failure is a deliberate, documented difference from Twisted are listed
in ``EXPECTED_DIFFERENCES``, each with its reason, and marked ``xfail(strict=True)``: if
one starts passing the run fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
import unittest
from typing import Any

import pytest
import twisted.internet.testing  # noqa: F401  the suite's imports, made before the
import twisted.protocols  # substitution in _load_suite so that only the suite binds it
import twisted.test.iosim  # noqa: F401
from twisted.internet import defer, reactor
from twisted.protocols import amp as twisted_amp
from twisted.trial.unittest import TestCase as TrialTestCase

import txframe.amp
from txframe import framing

from twisted_suite import (  # noqa: F401 (in_a_temporary_directory: a fixture)
    expose,
    in_a_temporary_directory,
    load_suite,
    require_compiled,
    twins,
)

SUITE = "twisted.test.test_amp"
#: Private names of Twisted's amp module that the suite uses and txframe.amp need not
#: have (they are Twisted's helpers; txframe's classes use Twisted's).
PRIVATE_NAMES = frozenset({"_FixedOffsetTZInfo", "_SwitchBox", "_TLSBox", "ssl"})

#: Twisted's test (class.method) -> (the README section that documents the difference,
#: why txframe deliberately differs, what it raises
#: instead of passing). Both implementations.
EXPECTED_DIFFERENCES: dict[str, tuple[str, str, type[BaseException]]] = {}


# -- the codecs ------------------------------------------------------------------------


COMPILED, COMPILED_ERROR, PURE = twins("boxes")

_CODEC_NAMES = ("BoxFramer", "Schema", "decode_boxes", "encode_box")


def _amp_bound_to(codec: Any) -> types.ModuleType:
    """txframe.amp with its box codec *codec*: the module itself if txframe.framing
    chose that codec, else a second copy of it (txframe/amp.py run again while
    ``txframe.framing`` offers *codec*'s names)."""
    if framing.BoxFramer is codec.BoxFramer:
        return txframe.amp
    bound = types.ModuleType(framing.__name__, framing.__doc__)
    vars(bound).update(vars(framing))
    for name in _CODEC_NAMES:
        setattr(bound, name, getattr(codec, name))
    name = f"txframe._amp_for_twisted_suite{codec.__name__.rpartition('_boxes')[2]}"
    spec = importlib.util.spec_from_file_location(name, txframe.amp.__file__)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules[framing.__name__]
    sys.modules[name] = module
    sys.modules[framing.__name__] = bound
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules[framing.__name__] = saved
    return module


# -- the suite -------------------------------------------------------------------------


class _AmpAsSeenBySuite(types.ModuleType):
    """``twisted.protocols.amp`` as the suite sees it: *target* (a txframe.amp), and for
    a name *target* lacks, Twisted's module (recorded in ``borrowed``; assigning a name
    *target* does not define itself assigns it in Twisted's module, where Twisted's
    code reads it)."""

    def __init__(self, target: types.ModuleType) -> None:
        super().__init__(twisted_amp.__name__, target.__doc__)
        vars(self).update(_target=target, borrowed=set())

    def __getattr__(self, name: str) -> Any:
        target = vars(self)["_target"]
        try:
            return getattr(target, name)
        except AttributeError:
            value = getattr(twisted_amp, name)  # AttributeError if neither has it
            vars(self)["borrowed"].add(name)
            return value

    def __setattr__(self, name: str, value: Any) -> None:
        target = vars(self)["_target"]
        if name in vars(target) or not hasattr(twisted_amp, name):
            setattr(target, name, value)
        else:
            vars(self)["borrowed"].add(name)
            setattr(twisted_amp, name, value)


def _load_suite(kind: str, target: types.ModuleType) -> tuple[types.ModuleType, Any]:
    """A fresh copy of Twisted's test_amp whose ``amp`` is *target*."""
    seen = _AmpAsSeenBySuite(target)
    return load_suite(SUITE, f"txframe_twisted_amp_suite_{kind}", "amp", seen), seen


@pytest.fixture
def compiled_codec() -> Any:
    """The compiled box codec (skip without it; an error if it is required)."""
    return require_compiled(COMPILED, COMPILED_ERROR, "box codec")


SUITES: dict[str, tuple[Any, types.ModuleType, _AmpAsSeenBySuite]] = {}

for _kind, _codec_module, _marks in (
    ("compiled", COMPILED, [pytest.mark.compiled, pytest.mark.usefixtures("compiled_codec")]),
    ("pure", PURE, []),
):
    # Without the extension the compiled suite is bound to the pure codec; its tests
    # skip (or error) in their fixture.
    _target = _amp_bound_to(_codec_module or PURE)
    _suite, _seen = _load_suite(_kind, _target)
    SUITES[_kind] = (_codec_module, _target, _seen)
    expose(_suite, _kind.capitalize(), _marks, globals(), EXPECTED_DIFFERENCES)


# -- guards ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", [pytest.param("compiled", marks=pytest.mark.compiled), "pure"]
)
def test_suite_is_bound_to_its_codec(kind, request):
    """Each copy of the suite runs on txframe.amp with the codec it is named after."""
    if kind == "compiled":
        request.getfixturevalue("compiled_codec")
    codec, target, seen = SUITES[kind]
    suite = sys.modules[f"txframe_twisted_amp_suite_{kind}"]
    assert suite.amp is seen
    assert target.__file__ == txframe.amp.__file__
    for name in ("AMP", "BinaryBoxProtocol", "AmpBox", "parseString"):
        assert getattr(seen, name) is getattr(target, name)
    assert target.BinaryBoxProtocol._boxFramer is codec.BoxFramer
    assert target.AMP._boxFramer is codec.BoxFramer
    assert target.AMP._encodeBox is codec.encode_box
    assert target.AMP._schemaType is codec.Schema
    assert target.AmpBox.serialize.__globals__["encode_box"] is codec.encode_box
    assert target.parseString.__globals__["decode_boxes"] is codec.decode_boxes
    assert issubclass(suite.SimpleSymmetricProtocol, target.AMP)
    assert target.AMP is not twisted_amp.AMP


def test_suite_borrows_only_private_names():
    """Every name of ``amp`` the suite uses is txframe.amp's own, but for Twisted's
    private helpers (read from the suite's source, so it does not depend on which tests
    ran first)."""
    with open(importlib.util.find_spec(SUITE).origin, encoding="utf-8") as source:
        used = set(re.findall(r"\bamp\.([A-Za-z_]\w*)", source.read()))
    assert used >= PRIVATE_NAMES  # the list is still a faithful one
    assert sorted(name for name in used - PRIVATE_NAMES if not hasattr(txframe.amp, name)) == []
    for kind, (_, _, seen) in SUITES.items():
        assert seen.borrowed <= PRIVATE_NAMES, kind


class _LateFailure(TrialTestCase):
    __test__ = False  # run by the guard below, not collected

    def test_late_failure(self):
        d = defer.Deferred()
        reactor.callLater(0.01, d.callback, None)

        def check(_):
            self.fail("reached only if the Deferred is awaited")

        return d.addCallback(check)


def test_trial_waits_for_returned_deferreds():
    """A guard of the harness: a trial TestCase run here waits for the Deferred a test
    returns, so the suite's asynchronous tests do not pass vacuously."""
    result = unittest.TestResult()
    _LateFailure("test_late_failure").run(result)
    assert result.testsRun == 1
    assert len(result.failures) == 1, result.errors
    assert "reached only if the Deferred is awaited" in result.failures[0][1]
