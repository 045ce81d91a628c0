"""Build txframe: compile the Cython framers unless told not to.

TXFRAME_NO_EXTENSIONS=1       build and install the pure-Python package only.
TXFRAME_REQUIRE_EXTENSIONS=1  fail the build if the extensions cannot be compiled
                              (CI sets it); otherwise a failed compile falls back to
                              pure Python with a loud warning.

Compiling needs Cython >= MIN_CYTHON (build-system.requires asks for it; a build
without isolation that finds an older Cython stops with an error naming the minimum).
"""

import os
import platform
import re
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

EXTENSION_MODULES = [
    "txframe._framer_c",
    "txframe._lines_c",
    "txframe._strings_c",
    "txframe._boxes_c",
    "txframe._listing_c",
]


def env_flag(name):
    return os.environ.get(name, "") not in ("", "0")


NO_EXTENSIONS = env_flag("TXFRAME_NO_EXTENSIONS") or platform.python_implementation() != "CPython"
REQUIRE_EXTENSIONS = env_flag("TXFRAME_REQUIRE_EXTENSIONS")
# The oldest Cython that compiles txframe (3.0 lacks the freethreading_compatible
# directive). Keep in step with build-system.requires and the test extra.
MIN_CYTHON = (3, 1)


def warn_pure(reason):
    bar = "*" * 76
    sys.stderr.write(
        f"\n{bar}\n* txframe: compiling the Cython extensions failed:\n*   {reason}\n"
        "* Installing the PURE-PYTHON version: correct, but several times slower.\n"
        "* Install a C compiler and the Python headers, then reinstall, for speed.\n"
        f"* Set TXFRAME_REQUIRE_EXTENSIONS=1 to make this an error.\n{bar}\n\n"
    )


class OptionalBuildExt(build_ext):
    """build_ext that degrades to pure Python unless extensions are required."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing, headers missing, ...
            if REQUIRE_EXTENSIONS:
                fail_required(exc)
            warn_pure(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            if REQUIRE_EXTENSIONS:
                fail_required(exc)
            warn_pure(exc)


def fail_required(exc):
    raise SystemExit(
        f"error: txframe: compiling the Cython extensions failed: {exc}\n"
        "TXFRAME_REQUIRE_EXTENSIONS=1 forbids the pure-Python fallback: install a C "
        "compiler and the Python headers, or unset TXFRAME_REQUIRE_EXTENSIONS."
    ) from exc


def cython_version_tuple(version):
    """(3, 1) from "3.1.0", "3.1.0a1", "3.2"; (0, 29) from "0.29.37"."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def extensions():
    if NO_EXTENSIONS:
        return []
    minimum = ".".join(map(str, MIN_CYTHON))
    try:
        from Cython import __version__ as cython_version
    except ImportError as exc:
        if REQUIRE_EXTENSIONS:
            raise RuntimeError(
                f"TXFRAME_REQUIRE_EXTENSIONS=1 but Cython>={minimum} is not installed"
            ) from exc
        warn_pure(f"Cython is not installed ({exc})")
        return []
    # Checked before Cython.Build is imported: an old Cython fails later with errors
    # that do not say what is wrong (an unknown directive, syntax it cannot parse).
    if cython_version_tuple(cython_version) < MIN_CYTHON:
        raise RuntimeError(
            f"txframe needs Cython>={minimum} to build, found Cython {cython_version}: "
            f"pip install 'Cython>={minimum}' (or build with build isolation, which "
            "installs it), or set TXFRAME_NO_EXTENSIONS=1 for the pure-Python version"
        )
    from Cython.Build import cythonize
    modules = [
        Extension(name, [os.path.join("src", *name.split(".")) + ".pyx"])
        for name in EXTENSION_MODULES
    ]
    return cythonize(
        modules,
        include_path=["src"],
        compiler_directives={
            "language_level": 3,
            "freethreading_compatible": True,
            "embedsignature": True,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
