"""The build: compiled when it can be, pure with a loud warning when it cannot,
and a hard failure when extensions are required but cannot be built."""

from __future__ import annotations

import os
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
    source = tmp_path / "src"  # a copy, so no build leftovers land in the checkout
    subprocess.run(
        ["git", "-C", str(SOURCE), "ls-files", "-z"], check=True, capture_output=True
    )
    files = subprocess.run(
        ["git", "-C", str(SOURCE), "ls-files", "-z"], check=True, capture_output=True
    ).stdout.decode().split("\0")
    for name in filter(None, files):
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
    assert "PURE-PYTHON" not in result.stdout + result.stderr


def test_no_extensions_builds_pure_without_compiling(tmp_path):
    result = build_wheel(tmp_path, CC="false", TXFRAME_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    names = wheel_names(tmp_path)
    assert "txframe/basic.py" in names and "txframe/py.typed" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".pyx", ".c"))]
