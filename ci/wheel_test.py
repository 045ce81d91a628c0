#!/usr/bin/env python3
"""Run txframe's test suite against an *installed* txframe, from outside the checkout.

cibuildwheel's test-command (pyproject.toml) and ci/dist.sh both call this, with the
interpreter of the virtual environment the wheel (or sdist) was installed into:

    python ci/wheel_test.py --source DIR [--kind compiled|pure] [--require-peers]
                            [-- PYTEST ARGS]

It copies DIR/tests, DIR/examples (which tests read), DIR/pyproject.toml (pytest's
settings and markers) and DIR/README.md (tests check what it lists) into a new
temporary folder, outside any checkout, and runs pytest there. Nothing on sys.path
then holds a txframe package but the installation, and tests/test_installed.py proves
it: it checks where every txframe module was loaded from and, for ``--kind compiled``,
that each compiled module named by DIR's .pyx sources was built into the installation
and loaded, with its .pyi stub beside it.

--kind compiled  the installation must carry the compiled framers:
                 TXFRAME_REQUIRE_EXTENSIONS=1, so a missing one fails, never skips.
--kind pure      a pure-Python installation (TXFRAME_NO_EXTENSIONS=1 wheel): nothing
                 compiled may be installed; the compiled half of the suite skips.
--skip-pure-half with --kind compiled: leave out the tests of the pure implementation
                 (parametrized "pure", or in the generated Pure_* suites), which
                 a run against the pure wheel covers (ci/dist.sh runs both).

Real peers: the suite fails on a missing peer (postmap, oidentd, curl, lftp) when
CI=true and skips its tests otherwise. GitHub Actions sets CI=true on every runner,
including the ones where cibuildwheel tests wheels, which have none of those programs;
so the tests run with CI removed from their environment, unless --require-peers is
given, which sets CI=true (ci/dist.sh gives it under CI=true, where ci/test.sh has
installed the peers).

PYTEST ARGS replace the default selection (``tests``); paths are relative to the copy,
e.g. ``-- tests/test_installed.py -x``. The exit status is pytest's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


# The root conftest.py of the copy, with --skip-pure-half.
SKIP_PURE_HALF = '''"""Written by ci/wheel_test.py --skip-pure-half: deselect the pure half."""


def pure_half(item):
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "pure" in callspec.params.values():
        return True
    cls = getattr(item, "cls", None)
    return cls is not None and cls.__name__.startswith("Pure_")


def pytest_collection_modifyitems(config, items):
    chosen = [item for item in items if not pure_half(item)]
    if len(chosen) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if pure_half(i)])
        items[:] = chosen
'''


def compiled_modules(source: Path) -> list[str]:
    """The modules the build compiles: one per .pyx file under DIR/src."""
    root = source / "src"
    return sorted(
        ".".join(path.relative_to(root).with_suffix("").parts) for path in root.rglob("*.pyx")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="the txframe checkout or unpacked sdist")
    parser.add_argument("--kind", choices=["compiled", "pure"], default="compiled")
    parser.add_argument("--require-peers", action="store_true", help="run with CI=true: a missing peer fails")
    parser.add_argument("--skip-pure-half", action="store_true", help="only the compiled half")
    parser.add_argument("--keep", action="store_true", help="keep the temporary test folder")
    parser.add_argument("pytest_args", nargs="*", help="after --: pytest arguments (default: tests)")
    args = parser.parse_args(argv)

    source = args.source.resolve()
    if not (source / "tests").is_dir():
        parser.error(f"{source} has no tests/ folder")
    workdir = Path(tempfile.mkdtemp(prefix="txframe-wheel-test-"))
    workdir.chmod(0o755)  # readable by the processes some tests run as another user
    try:
        for folder in ("tests", "examples"):
            if (source / folder).is_dir():
                shutil.copytree(
                    source / folder,
                    workdir / folder,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis"),
                )
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(source / name, workdir / name)
        if args.skip_pure_half:
            if args.kind != "compiled":
                parser.error("--skip-pure-half needs --kind compiled")
            (workdir / "conftest.py").write_text(SKIP_PURE_HALF)

        env = {
            key: value
            for key, value in os.environ.items()
            # The test's own switches come from --kind; PYTHONPATH could reach the checkout.
            if not key.startswith("TXFRAME_") and key != "PYTHONPATH"
        }
        if args.require_peers:
            env["CI"] = "true"
        else:
            env.pop("CI", None)
        env["TXFRAME_TEST_INSTALLED"] = args.kind
        env["TXFRAME_TEST_SOURCE"] = str(source)
        env["TXFRAME_TEST_EXTENSIONS"] = ",".join(compiled_modules(source))
        if args.kind == "compiled":
            env["TXFRAME_REQUIRE_EXTENSIONS"] = "1"

        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        command += args.pytest_args or ["tests"]
        print(f"wheel_test: {' '.join(command)}  (in {workdir}, kind={args.kind}, "
              f"peers {'required' if args.require_peers else 'optional'})", flush=True)
        return subprocess.call(command, cwd=workdir, env=env)
    finally:
        if args.keep:
            print(f"wheel_test: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
