"""The build: compiled when it can be, pure with a loud warning when it cannot,
a hard failure when extensions are required but cannot be built, and a clear error
naming the minimum when the Cython found is too old.

(The artifacts themselves — sdist, wheels, their contents and the suite run against
them installed — are checked by ci/dist.sh.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (SOURCE / "setup.py").exists(), reason="needs the source checkout"
)


def build_wheel(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TXFRAME_")}
    environ.update(env)
    # A copy, so no build leftovers land in the checkout: the files git tracks and the
    # new ones it does not ignore (what the next commit can hold), as ci/dist.sh copies.
    source = tmp_path / "src"
    files = subprocess.run(
        ["git", "-C", str(SOURCE), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, files):
        if not (SOURCE / name).is_file():  # deleted, not yet committed
            continue
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((SOURCE / name).read_bytes())
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(source)],
        env=environ, capture_output=True, text=True, timeout=600,
    )


def wheel_names(tmp_path: Path) -> list[str]:
    (wheel,) = (tmp_path / "dist").glob("txframe-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_no_compiler_installs_pure_with_a_loud_warning(tmp_path):
    result = build_wheel(tmp_path, CC="false", LDSHARED="false", PIP_VERBOSE="1")
    assert result.returncode == 0, result.stderr
    assert "PURE-PYTHON" in result.stdout + result.stderr
    names = wheel_names(tmp_path)
    assert "txframe/_lines_py.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd"))]


def test_no_compiler_with_extensions_required_fails(tmp_path):
    result = build_wheel(tmp_path, CC="false", LDSHARED="false", TXFRAME_REQUIRE_EXTENSIONS="1")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "PURE-PYTHON" not in output
    assert "txframe: compiling the Cython extensions failed" in output
    assert "TXFRAME_REQUIRE_EXTENSIONS=1 forbids the pure-Python fallback" in output


def test_no_extensions_builds_pure_without_compiling(tmp_path):
    result = build_wheel(tmp_path, CC="false", TXFRAME_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    names = wheel_names(tmp_path)
    assert "txframe/basic.py" in names and "txframe/py.typed" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".pyx", ".c"))]


def minimum_cython() -> str:
    """The Cython version build-system.requires asks for."""
    pyproject = (SOURCE / "pyproject.toml").read_text()
    requires = re.search(r"^requires = \[(.*)\]", pyproject, re.M).group(1)
    return re.search(r'"Cython>=([0-9.]+)"', requires).group(1)


@pytest.mark.parametrize("version", ["0.29.37", "3.0.12"])
@pytest.mark.parametrize("required", [False, True], ids=["optional", "required"])
def test_old_cython_fails_naming_the_minimum(tmp_path, version, required):
    """An isolated build installs a good Cython (build-system.requires); one without
    isolation uses the Cython it finds, and an old one stops the build with an error
    that names the minimum, extensions required or not (never a pure fallback, never
    Cython's own errors about directives it does not know)."""
    fake = tmp_path / "old-cython"  # an old Cython, first on the path
    (fake / "Cython" / "Build").mkdir(parents=True)
    (fake / "Cython" / "__init__.py").write_text(f"__version__ = {version!r}\n")
    (fake / "Cython" / "Build" / "__init__.py").write_text(
        "def cythonize(*args, **kwargs):\n    raise AssertionError('used an old Cython')\n"
    )
    env = {"PYTHONPATH": str(fake)}
    if required:
        env["TXFRAME_REQUIRE_EXTENSIONS"] = "1"
    result = build_wheel(tmp_path, **env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"txframe needs Cython>={minimum_cython()} to build, found Cython {version}" in output
    assert "PURE-PYTHON" not in output and "used an old Cython" not in output


def test_the_wheels_workflow_is_where_github_runs_it():
    """GitHub runs only .github/workflows/; the wheels are built there by cibuildwheel
    (its configuration is pyproject.toml's), and every script the workflow names
    exists."""
    workflow = SOURCE / ".github" / "workflows" / "wheels.yml"
    text = workflow.read_text(encoding="utf-8")
    assert re.search(r"uses: pypa/cibuildwheel@", text)
    assert "[tool.cibuildwheel]" in (SOURCE / "pyproject.toml").read_text(encoding="utf-8")
    scripts = set(re.findall(r"\bci/[\w./-]+\.(?:sh|py)\b", text))
    assert "ci/dist.sh" in scripts
    assert [name for name in sorted(scripts) if not (SOURCE / name).is_file()] == []
    assert not (SOURCE / "ci" / "workflows").exists()
