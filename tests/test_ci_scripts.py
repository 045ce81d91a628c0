"""ci/test.sh passes the caller's pytest arguments, unchanged, to both of its passes.

The script runs here on a copy of ci/ whose ``.venv/bin/python`` is a stand-in that
records how it was called, so what the two passes would run is visible without
running them (nor reinstalling the package this suite is running from).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (SOURCE / "ci" / "test.sh").exists(), reason="needs the source checkout"
)

RECORDER = """#!/bin/sh
printf '%s|%s\\n' "${TXFRAME_NO_EXTENSIONS:-}" "$*" >> "$(dirname "$0")/../../calls"
"""


def pytest_passes(tmp_path: Path, *args: str) -> list[tuple[str, str]]:
    """(TXFRAME_NO_EXTENSIONS, arguments) of each pytest that ci/test.sh *args* runs."""
    root = tmp_path / "checkout"
    shutil.copytree(SOURCE / "ci", root / "ci")
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(RECORDER)
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TXFRAME_NO_EXTENSIONS")}
    subprocess.run(["bash", str(root / "ci" / "test.sh"), *args], env=env, check=True,
                   capture_output=True, timeout=120)
    calls = (root / "calls").read_text().splitlines()
    passes = [tuple(call.split("|", 1)) for call in calls if "-m pytest" in call]
    return passes  # type: ignore[return-value]


@pytest.mark.parametrize("args", [
    ("-k", "LineOnly"),
    ("tests/test_mapfile.py::test_parse_simple",),
    ("tests/test_mapfile.py", "-x", "-q"),
])
def test_both_passes_are_narrowed_alike(tmp_path, args):
    passes = pytest_passes(tmp_path, *args)
    assert [no_extensions for no_extensions, _ in passes] == ["", "1"]
    (first, second) = (arguments for _, arguments in passes)
    assert first == second
    # the caller's arguments end the command line, and no test path was added before
    # them (pass 2 used to put `tests` in front, running the whole suite)
    assert first.endswith(" ".join(args))
    assert first.split()[:2] == ["-m", "pytest"]
    assert not any(word == "tests" or word.startswith(("tests/", "benchmarks"))
                   for word in first[: -len(" ".join(args))].split())


def serve_checkout(tmp_path: Path) -> Path:
    """A copy of what ci/serve.sh needs, with a recording .venv (python and txframe)."""
    root = tmp_path / "checkout"
    shutil.copytree(SOURCE / "ci", root / "ci")
    shutil.copytree(SOURCE / "src", root / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c", "*.egg-info"))
    for name in ("setup.py", "pyproject.toml", "MANIFEST.in"):
        shutil.copy(SOURCE / name, root / name)
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for program in ("python", "txframe"):
        (bin_dir / program).write_text(RECORDER)
        (bin_dir / program).chmod(0o755)
    return root


def serve(root: Path) -> list[str]:
    """Run ci/serve.sh in *root*; the calls its .venv recorded (then forgotten)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TXFRAME_NO_EXTENSIONS")}
    subprocess.run(["bash", str(root / "ci" / "serve.sh"), "--workers", "2"], env=env,
                   check=True, capture_output=True, timeout=120)
    calls = root / "calls"
    recorded = calls.read_text().splitlines()
    calls.unlink()
    return [call.split("|", 1)[1] for call in recorded]


@pytest.mark.parametrize("git", [False, True], ids=["files", "git"])
def test_serve_installs_only_when_the_sources_changed(tmp_path, git):
    root = serve_checkout(tmp_path)
    if git:
        if shutil.which("git") is None:
            pytest.skip("no git")
        subprocess.run(["git", "init", "-q", str(root)], check=True)
    first = serve(root)
    installs = [call for call in first if "pip install" in call and "--upgrade pip" not in call]
    assert installs == [f"-m pip install --quiet {root}"]  # no test extra
    assert first[-1].endswith("--workers 2 examples/example.map")  # serve-map, as before
    # unchanged: straight to serve-map
    assert [call for call in serve(root) if "pip" in call] == []
    # a source changed: built and installed again
    (root / "src" / "txframe" / "basic.py").write_text(
        (root / "src" / "txframe" / "basic.py").read_text() + "\n# changed\n")
    assert [call for call in serve(root) if "pip install --quiet" in call] != []
    assert [call for call in serve(root) if "pip" in call] == []
    # a new source file counts too
    (root / "src" / "txframe" / "new_module.py").write_text("")
    assert [call for call in serve(root) if "pip install --quiet" in call] != []
