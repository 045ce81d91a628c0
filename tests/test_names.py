"""Every public name of a Twisted module is in the txframe module that replaces it.

The README's promise, name by name: after ``from twisted.protocols import amp`` ->
``from txframe import amp``, ``amp.X`` is Twisted's own object (or a subclass of
Twisted's class, so ``except`` and ``isinstance`` work across both), unless the
README lists ``amp.X`` as one of txframe's own replacements; and ``from txframe.amp
import *`` binds every name ``from twisted.protocols.amp import *`` binds.

Public means what code can reach as ``module.X``: every attribute without a leading
underscore, whether Twisted's module defined it or imported it (``amp.ConnectionClosed``
comes from ``twisted.internet.error``, but code written against ``amp`` uses it as
``amp.ConnectionClosed``), and everything a star import binds. Modules are left out: an
imported module is not part of a module's API.
"""

from __future__ import annotations

import importlib
import pathlib
import re
import types

import pytest

#: txframe's drop-in module -> the Twisted module it replaces
DROP_INS = {
    "txframe.basic": "twisted.protocols.basic",
    "txframe.amp": "twisted.protocols.amp",
    "txframe.postfix": "twisted.protocols.postfix",
    "txframe.ident": "twisted.protocols.ident",
    "txframe.ftp": "twisted.protocols.ftp",
    "txframe.testing": "twisted.internet.testing",
}

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
#: The README paragraph that lists txframe's own replacements.
REPLACEMENTS_HEADING = "**Not Twisted's objects.**"


def _replacements() -> dict[str, set[str]]:
    """The README's list of replacements: {"txframe.amp": {"parse", ...}, ...}."""
    text = README.read_text(encoding="utf-8")
    start = text.find(REPLACEMENTS_HEADING)
    if start < 0:
        return {}
    paragraph = text[start : text.find("\n\n", start)]
    listed: dict[str, set[str]] = {}
    for module, name in re.findall(r"`(\w+)\.(\w+)`", paragraph):
        listed.setdefault(f"txframe.{module}", set()).add(name)
    return listed


REPLACEMENTS = _replacements()


def _star_names(module: types.ModuleType) -> set[str]:
    namespace: dict[str, object] = {}
    exec(f"from {module.__name__} import *", namespace)  # noqa: S102
    del namespace["__builtins__"]
    return {name for name, value in namespace.items() if not isinstance(value, types.ModuleType)}


def _public_names(module: types.ModuleType) -> set[str]:
    attributes = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    return attributes | _star_names(module)


def _modules(txframe_name: str) -> tuple[types.ModuleType, types.ModuleType]:
    return importlib.import_module(txframe_name), importlib.import_module(DROP_INS[txframe_name])


@pytest.mark.parametrize("txframe_name", DROP_INS)
def test_every_public_name_of_twisteds_module(txframe_name):
    """Present, and Twisted's object, a subclass of Twisted's class, or a replacement
    the README lists."""
    ours, twisted = _modules(txframe_name)
    listed = REPLACEMENTS.get(txframe_name, set())
    wrong = []
    for name in sorted(_public_names(twisted)):
        theirs = getattr(twisted, name)
        try:
            mine = getattr(ours, name)
        except AttributeError:
            wrong.append(f"{name}: missing")
            continue
        if mine is theirs or name in listed:
            continue
        if isinstance(theirs, type) and isinstance(mine, type) and issubclass(mine, theirs):
            continue
        wrong.append(f"{name}: {mine!r} is not Twisted's {theirs!r}")
    assert wrong == [], f"{txframe_name} vs {twisted.__name__}"


@pytest.mark.parametrize("txframe_name", DROP_INS)
def test_star_import_binds_what_twisteds_binds(txframe_name):
    ours, twisted = _modules(txframe_name)
    mine = _star_names(ours)
    assert sorted(_star_names(twisted) - mine) == []
    # and nothing private of txframe's own
    assert sorted(name for name in mine - _star_names(twisted) if name.startswith("_")) == []


def test_ftp_connection_lost_is_twisteds_ftp_one():
    """The name that was shadowed (by twisted.internet.error's ConnectionLost)."""
    import twisted.internet.error
    import twisted.protocols.ftp

    import txframe.ftp

    assert txframe.ftp.ConnectionLost is twisted.protocols.ftp.ConnectionLost
    assert txframe.ftp.ConnectionLost is not twisted.internet.error.ConnectionLost
    namespace: dict[str, object] = {}
    exec("from txframe.ftp import *", namespace)  # noqa: S102
    assert namespace["ConnectionLost"] is twisted.protocols.ftp.ConnectionLost
    assert namespace["FTPClient"] is twisted.protocols.ftp.FTPClient
    assert issubclass(namespace["DTP"], twisted.protocols.ftp.DTP)


def test_the_readme_lists_only_replacements():
    """Each name the README lists is txframe's own class or function, where Twisted's
    module has that name too (a stale entry would hide a shadowing)."""
    assert set(REPLACEMENTS) <= set(DROP_INS), REPLACEMENTS
    assert sum(map(len, REPLACEMENTS.values())) >= 4  # the list was found and parsed
    for txframe_name, names in REPLACEMENTS.items():
        ours, twisted = _modules(txframe_name)
        for name in sorted(names):
            mine, theirs = getattr(ours, name), getattr(twisted, name)
            assert callable(mine) and mine is not theirs, f"{txframe_name}.{name}"
            assert mine.__module__ == txframe_name or mine.__module__.startswith("txframe."), name
            if isinstance(theirs, type):  # a subclass needs no listing
                assert not (isinstance(mine, type) and issubclass(mine, theirs)), name


def test_unknown_and_private_names_are_not_borrowed():
    import txframe.ftp

    with pytest.raises(AttributeError, match="txframe.ftp.*no_such_name"):
        txframe.ftp.no_such_name  # noqa: B018
    with pytest.raises(AttributeError):
        txframe.ftp._FileWriter  # noqa: B018  Twisted's private name
    with pytest.raises(AttributeError):
        txframe.ftp.os  # noqa: B018  a module Twisted's imported
