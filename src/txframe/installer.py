"""``txframe.install()``: Twisted's own protocols, built on txframe's framing classes.

Twisted's HTTP server and client, SMTP, POP3, IMAP, IRC, DNS over TCP, memcache and
trial's ``-j`` workers subclass the framing classes of ``twisted.protocols.basic``
and ``twisted.protocols.amp``. :func:`install` puts txframe's classes under those
names, so every subclass defined afterwards — by Twisted or anyone else — is built on
txframe's. Call it before those protocols are imported, or run a program unchanged
with ``txframe run``, which calls it first (see :func:`run`).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

from .framing import implementation

__all__ = ["InstallError", "install", "installed", "run"]

_log = logging.getLogger("txframe.install")

#: The names replaced, module by module: everything of Twisted's that frames bytes.
#: (``StatefulStringProtocol`` frames nothing, and ``txframe.basic``'s is Twisted's own.)
REPLACED = {
    "twisted.protocols.basic": (
        "LineReceiver",
        "LineOnlyReceiver",
        "IntNStringReceiver",
        "Int32StringReceiver",
        "Int16StringReceiver",
        "Int8StringReceiver",
        "NetstringReceiver",
    ),
    "twisted.protocols.amp": ("BinaryBoxProtocol", "AMP"),
}

#: Set by the launcher for the Python processes it starts (trial's -j workers, ...):
#: ``sitecustomize`` in :data:`STARTUP_DIRECTORY` then installs before anything else.
ENVIRONMENT_VARIABLE = "TXFRAME_INSTALL"
STARTUP_DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_startup")

_originals: dict[str, type] = {}  # "module.Name" -> Twisted's class, once installed
# txframe's class -> (the Twisted name it replaced, the private names of Twisted's
# class that it has not: its parser's state and methods)
_private: dict[type, tuple[str, frozenset[str]]] = {}


class InstallError(RuntimeError):
    """install() was called after classes were already built on Twisted's."""


def installed() -> tuple[str, ...]:
    """The names :func:`install` replaced (``"twisted.protocols.basic.LineReceiver"``,
    ...), or ``()`` if it has not run."""
    return tuple(_originals)


def install(*, late: str = "raise") -> tuple[str, ...]:
    """Replace Twisted's framing classes by txframe's; return the names replaced.

    Afterwards ``twisted.protocols.basic.LineReceiver`` is ``txframe.basic``'s, and so
    on for LineOnlyReceiver, IntNStringReceiver, Int8/16/32StringReceiver,
    NetstringReceiver and ``twisted.protocols.amp``'s BinaryBoxProtocol and AMP
    (:data:`REPLACED`). Calling it again does nothing and returns ``()``.

    Classes defined before the call stay built on Twisted's. If some are — a module
    that subclassed one, or holds one of Twisted's classes to subclass it later —
    :class:`InstallError` names those modules and nothing is replaced; with
    ``late="warn"`` a :class:`RuntimeWarning` names them and the classes are replaced
    for what is defined afterwards.
    """
    if late not in ("raise", "warn"):
        raise ValueError(f"late must be 'raise' or 'warn', not {late!r}")
    if _originals:
        return ()
    # Twisted's AMP module first, on Twisted's basic classes, and txframe's on it:
    # Twisted's BinaryBoxProtocol built on txframe's Int16StringReceiver would make
    # txframe.amp's MRO inconsistent (txframe's classes come first in it).
    import twisted.protocols.amp
    import twisted.protocols.basic

    from . import amp, basic

    ours = {"twisted.protocols.basic": basic, "twisted.protocols.amp": amp}
    originals = {
        f"{module}.{name}": vars(sys.modules[module])[name]
        for module, names in REPLACED.items()
        for name in names
    }
    found = _built_on(tuple(originals.values()), exclude=set(REPLACED))
    if found:
        message = (
            "txframe.install() came too late: these modules already hold classes built "
            "on Twisted's framing classes, which stay Twisted's: "
            + "; ".join(f"{module} ({', '.join(names)})" for module, names in found)
            + ". Call txframe.install() before importing them, or start the program "
            "with `txframe run`."
        )
        if late == "raise":
            raise InstallError(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    for qualified, original in originals.items():
        module, _, name = qualified.rpartition(".")
        replacement = getattr(ours[module], name)
        setattr(sys.modules[module], name, replacement)
        _private[replacement] = (qualified, _private_names(original, replacement))
    _guard_private_names(basic._Framed)
    _originals.update(originals)
    _log.info("txframe.install(): %s now txframe's (%s)", ", ".join(originals), implementation)
    return tuple(originals)


def _private_names(original: type, replacement: type) -> frozenset[str]:
    """The private names Twisted's *original* (and its Twisted bases) define or use on
    ``self`` that *replacement* has not."""
    from twisted.internet.protocol import Protocol

    names: set[str] = set()
    for klass in original.__mro__:
        if klass in Protocol.__mro__ or klass in replacement.__mro__:
            continue
        for name, value in vars(klass).items():
            names.add(name)
            names.update(getattr(getattr(value, "__code__", None), "co_names", ()))
    return frozenset(
        name for name in names
        if name.startswith("_") and not name.startswith("__") and not hasattr(replacement, name)
    )


def _guard_private_names(framed: type) -> None:
    """From now on, check each subclass as it is defined: overriding a private method of
    Twisted's class that txframe's never calls is an InstallError; using parser state
    private to Twisted's class (``self._buffer``, ...) that the subclass does not set
    itself is a RuntimeWarning. Only class creation pays for this: a ``__getattr__``
    would slow every attribute read of every connection."""
    defined = vars(framed)["__init_subclass__"].__func__

    def __init_subclass__(cls: type, **kwargs: Any) -> None:
        defined(cls, **kwargs)
        for twisted, private in _private_for(cls):
            _check_subclass(cls, twisted, private)

    framed.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment,arg-type]


def _check_subclass(cls: type, twisted: str, private: frozenset[str]) -> None:
    name = f"{cls.__module__}.{cls.__qualname__}"
    functions = {a: v for a, v in vars(cls).items() if _code(v) is not None}
    for attribute, value in functions.items():
        if attribute in private:
            raise InstallError(
                f"{name} overrides {attribute}(), private to Twisted's {twisted}, which "
                "txframe.install() replaced: txframe's never calls it. Override the public "
                "callbacks instead."
            )
    # what the class reads and neither it nor its bases define or assign
    own = {n for klass in cls.__mro__ for n in vars(klass)}
    for value in functions.values():
        own.update(_attributes(value, "STORE_ATTR"))
    for attribute, value in functions.items():
        used = sorted((set(_attributes(value, "LOAD_ATTR")) & private) - own)
        if used:
            code = _code(value)
            warnings.warn_explicit(
                f"{name}.{attribute} reads {', '.join(used)}, private to Twisted's {twisted}, "
                "which txframe.install() replaced: txframe's has no such attribute.",
                RuntimeWarning,
                code.co_filename,
                code.co_firstlineno,
                module=cls.__module__,
            )


def _code(value: Any) -> Any:
    return getattr(getattr(value, "__func__", value), "__code__", None)


def _attributes(value: Any, operation: str) -> list[str]:
    """The attribute names a function's code (nested code too) loads or stores."""
    import dis

    names: list[str] = []
    stack = [_code(value)]
    while stack:
        code = stack.pop()
        names.extend(
            i.argval for i in dis.get_instructions(code)
            if i.opname == operation or operation == "LOAD_ATTR" and i.opname == "LOAD_METHOD"
        )
        stack.extend(c for c in code.co_consts if hasattr(c, "co_code"))
    return names


def _private_for(cls: type) -> list[tuple[str, frozenset[str]]]:
    return [_private[klass] for klass in cls.__mro__ if klass in _private]


def _built_on(originals: tuple[type, ...], exclude: set[str]) -> list[tuple[str, list[str]]]:
    """The modules (but *exclude* and txframe's) that define a class built on one of
    *originals* and not on txframe's, or hold one of *originals*; with those names."""
    from .basic import _Framed

    found = []
    for name, module in list(sys.modules.items()):
        if module is None or name in exclude or name.partition(".")[0] == "txframe":
            continue
        try:
            members = list(vars(module).items())
        except TypeError:  # not a module
            continue
        names = []
        for attribute, value in members:
            try:
                if value in originals or (
                    isinstance(value, type)
                    and issubclass(value, originals)
                    and not issubclass(value, _Framed)
                    and value.__module__ == name
                ):
                    names.append(attribute)
            except Exception:  # an object whose comparison or class check fails
                continue
        if names:
            found.append((name, sorted(names)))
    return sorted(found)


# -- the launcher: txframe run ------------------------------------------------------------

_USAGE = """\
usage: txframe run [-v] [--late-warn] (-m MODULE | SCRIPT | COMMAND) [ARGS ...]

Run a Python program with txframe.install() done first, as `python -m MODULE`,
`python SCRIPT` or an installed Python command (twistd, twist, trial, ...) would run.
Python processes it starts (trial's -j workers, ...) install too.

  -m MODULE    run a module as a script (python -m MODULE)
  -v           log what was replaced (to stderr)
  --late-warn  warn instead of failing if classes were already built on Twisted's
"""


def run(argv: list[str]) -> int:
    """``txframe run``: install, then run a module, script or Python command as
    ``__main__`` with ``sys.argv`` set as ``python`` would set it."""
    import runpy
    import shutil

    late = "raise"
    while argv and argv[0].startswith("-") and argv[0] != "-m":
        option, argv = argv[0], argv[1:]
        if option in ("-h", "--help"):
            sys.stdout.write(_USAGE)
            return 0
        if option == "-v":
            logging.basicConfig(format="%(message)s")
            _log.setLevel(logging.INFO)
        elif option == "--late-warn":
            late = "warn"
        else:
            sys.stderr.write(f"{_USAGE}txframe run: unknown option {option}\n")
            return 2
    if not argv or argv[0] == "-m" and len(argv) < 2:
        sys.stderr.write(_USAGE)
        return 2
    _export()
    install(late=late)
    if argv[0] == "-m":
        sys.argv = argv[1:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    path = argv[0]
    if not os.path.exists(path):
        found = shutil.which(path)
        if found is None:
            sys.stderr.write(f"txframe run: no script or command {path!r}\n")
            return 2
        path = found
    sys.argv = [path, *argv[1:]]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    runpy.run_path(path, run_name="__main__")
    return 0


def _export() -> None:
    """Make the Python processes this one starts install too: their ``sitecustomize``
    (in STARTUP_DIRECTORY, on PYTHONPATH and on sys.path, which trial hands its
    workers as their PYTHONPATH) installs when TXFRAME_INSTALL is set."""
    os.environ[ENVIRONMENT_VARIABLE] = "1"
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if STARTUP_DIRECTORY not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([STARTUP_DIRECTORY, *paths])
    if STARTUP_DIRECTORY not in sys.path:  # it holds only sitecustomize, imported by now
        sys.path.insert(0, STARTUP_DIRECTORY)
