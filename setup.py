"""Build txframe: compile the Cython framers unless told not to.

TXFRAME_NO_EXTENSIONS=1       build and install the pure-Python package only.
TXFRAME_REQUIRE_EXTENSIONS=1  fail the build if the extensions cannot be compiled
                              (CI sets it); otherwise a failed compile falls back to
                              pure Python with a loud warning.
"""

import os
import platform
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
                raise
            warn_pure(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            if REQUIRE_EXTENSIONS:
                raise
            warn_pure(exc)


def extensions():
    if NO_EXTENSIONS:
        return []
    try:
        from Cython import __version__ as cython_version
        from Cython.Build import cythonize
    except ImportError as exc:
        if REQUIRE_EXTENSIONS:
            raise RuntimeError("TXFRAME_REQUIRE_EXTENSIONS=1 but Cython>=3 is not installed") from exc
        warn_pure(f"Cython is not installed ({exc})")
        return []
    if int(cython_version.split(".")[0]) < 3:
        raise RuntimeError(f"txframe needs Cython>=3.0 to build, found {cython_version}")
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
