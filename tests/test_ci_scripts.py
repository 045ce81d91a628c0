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
