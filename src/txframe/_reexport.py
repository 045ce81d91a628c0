"""The rest of a Twisted module, in the txframe module that replaces it.

A drop-in module (``txframe.amp`` for ``twisted.protocols.amp``, ...) defines what it
replaces and offers every other public name of Twisted's module as Twisted's own
object: a changed import (``from txframe import amp``) keeps ``amp.X`` working, and a
star import keeps binding what Twisted's did. Public means without a leading
underscore, whether Twisted defined the name or imported it, modules excepted (an
imported module is not part of a module's API). ``tests/test_names.py`` checks the
rule name by name.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


def star_names(module: ModuleType) -> list[str]:
    """What ``from module import *`` binds (its ``__all__``, else its names without a
    leading underscore), modules excepted."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name in vars(module) if not name.startswith("_")]
    return [name for name in names if not isinstance(getattr(module, name, None), ModuleType)]


def exported(module: ModuleType, own: list[str]) -> list[str]:
    """A drop-in module's ``__all__``: its *own* names, then those of Twisted's
    *module*'s star-import names it does not replace."""
    return [*own, *(name for name in star_names(module) if name not in own)]


def attribute(module: ModuleType, name: str, where: str) -> Any:
    """Twisted's *module*'s public attribute *name* (without a leading underscore, or
    in its ``__all__``), for the module ``__getattr__`` of the drop-in module *where*."""
    if not name.startswith("_") or name in getattr(module, "__all__", ()):
        try:
            value = getattr(module, name)
        except AttributeError:
            pass
        else:
            if not isinstance(value, ModuleType):
                return value
    raise AttributeError(f"module {where!r} has no attribute {name!r}")
