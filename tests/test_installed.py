"""The guard of the installed-package runs: the tests import the installed txframe.

ci/wheel_test.py (called by ci/dist.sh and by cibuildwheel's test-command) copies the
tests out of the checkout and runs them against a wheel or sdist installed in a fresh
virtual environment. It sets:

- ``TXFRAME_TEST_INSTALLED``: ``compiled`` or ``pure``, what was installed;
- ``TXFRAME_TEST_SOURCE``: the checkout, which nothing may be imported from;
- ``TXFRAME_TEST_EXTENSIONS``: the modules the checkout's .pyx files compile to.

Without them (an ordinary run from the checkout) these tests skip.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import pkgutil
import sys
import sysconfig
from pathlib import Path

import pytest

import txframe

KIND = os.environ.get("TXFRAME_TEST_INSTALLED", "")
SOURCE = os.environ.get("TXFRAME_TEST_SOURCE", "")
EXPECTED = sorted(filter(None, os.environ.get("TXFRAME_TEST_EXTENSIONS", "").split(",")))

pytestmark = pytest.mark.skipif(
    not KIND, reason="run by ci/wheel_test.py against an installed txframe"
)

PACKAGE = Path(txframe.__file__).resolve().parent
EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def is_within(path: Path, folder: str | Path) -> bool:
    try:
        path.resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


# Standard modules that exist on POSIX only: a txframe module needing one (at import)
# is not importable on Windows, and is skipped there.
POSIX_ONLY = {"pwd", "grp", "fcntl", "termios", "resource"}


def import_everything() -> None:
    """Import each module of the package, as users' code may (not the command)."""
    for info in pkgutil.walk_packages(txframe.__path__, "txframe."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as error:
            if os.name == "posix" or error.name not in POSIX_ONLY:
                raise


def installed_extensions() -> dict[str, Path]:
    """Compiled modules present in the installed package, by module name."""
    found = {}
    for path in PACKAGE.rglob("*"):
        for suffix in EXTENSION_SUFFIXES:
            if path.name.endswith(suffix):
                parts = path.relative_to(PACKAGE.parent).parts
                found[".".join(parts[:-1] + (path.name[: -len(suffix)],))] = path
                break
    return found


def test_txframe_is_the_installed_package():
    site = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    assert any(is_within(PACKAGE, folder) for folder in site), (
        f"txframe imported from {PACKAGE}, not from this environment's site-packages {site}"
    )
    assert sys.prefix != sys.base_prefix, "not running in a virtual environment"
    if SOURCE:
        assert not is_within(PACKAGE, SOURCE), f"txframe imported from the checkout {SOURCE}"
        assert not is_within(Path(__file__), SOURCE), "tests run from inside the checkout"


def test_every_loaded_txframe_module_comes_from_the_installation():
    import_everything()
    loaded = {
        name: getattr(module, "__file__", None)
        for name, module in sys.modules.items()
        if name == "txframe" or name.startswith("txframe.")
    }
    strays = {
        name: file for name, file in loaded.items() if not file or not is_within(Path(file), PACKAGE)
    }
    assert not strays, f"txframe modules from elsewhere than {PACKAGE}: {strays}"


def test_typing_files_are_installed():
    assert (PACKAGE / "py.typed").is_file()
    for name in installed_extensions():
        stub = PACKAGE.parent.joinpath(*name.split(".")).with_suffix(".pyi")
        assert stub.is_file(), f"no stub {stub.name} for the compiled module {name}"


def test_no_build_leftovers_are_installed():
    leftovers = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*")
        if path.suffix in (".pyx", ".pxd", ".c", ".h", ".o", ".obj", ".html")
    ]
    assert not leftovers


@pytest.mark.skipif(KIND != "compiled", reason="a compiled installation")
def test_compiled_modules_are_installed_and_loaded():
    """The guard: each .pyx of the checkout is a compiled module of the installation,
    loaded from it as an extension module when txframe's modules are imported."""
    installed = installed_extensions()
    assert installed, f"no compiled modules in {PACKAGE}"
    if EXPECTED:
        assert sorted(installed) == EXPECTED, "compiled modules differ from the .pyx sources"
    assert txframe.implementation == "compiled"
    import_everything()
    for name, path in installed.items():
        module = sys.modules.get(name)
        assert module is not None, f"{name} is installed but no txframe module uses it"
        assert isinstance(module.__loader__, importlib.machinery.ExtensionFileLoader), name
        assert Path(module.__file__).resolve() == path.resolve()


@pytest.mark.skipif(KIND != "pure", reason="a pure-Python installation")
def test_pure_installation_has_nothing_compiled():
    assert installed_extensions() == {}
    assert txframe.implementation == "pure"
    for name in EXPECTED:
        with pytest.raises(ImportError):
            importlib.import_module(name)
