#!/usr/bin/env python3
"""What ci/dist.sh checks inside the artifacts, and the lists it reads from pyproject.

    check_dist.py sdist SDIST --source DIR
        the sdist holds DIR's package, tests, examples and build files: the .pyx/.pxd sources,
        never Cython's generated .c, nor any build or test leftover.
    check_dist.py wheel WHEEL --kind compiled|pure --sdist SDIST
        the wheel holds every module of the sdist's package; compiled: one extension
        module per .pyx of the sdist, each with its .pyi stub; pure: a py3-none-any
        wheel with nothing compiled; both: py.typed, the metadata, and no sources of
        the build (.pyx, .pxd, .c), tests or leftovers.
    check_dist.py requires test|mypy
        test: [tool.cibuildwheel] test-requires, one a line (what the installed-wheel
        tests need, the same list cibuildwheel installs); mypy: the test extra's mypy
        requirements (mypy and its zope plugin).

Exits 1 with a list of what is wrong.
"""

from __future__ import annotations

import argparse
import re
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

try:
    import tomllib
except ImportError:  # Python 3.10: ci/dist.sh installs tomli
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
LEFTOVER_SUFFIXES = {".c", ".h", ".o", ".obj", ".so", ".pyd", ".dylib", ".html", ".pyc", ".pyo"}
LEFTOVER_PARTS = {"__pycache__", "build", "dist", ".venv", ".hypothesis", ".benchmarks",
                  ".pytest_cache", ".mypy_cache", ".git"}
EXTENSION = re.compile(r"^(?P<stem>[^.]+)\.(?:cpython-[^.]+|cp\d+-[^.]+|abi3)\.(?:so|pyd)$|^(?P<plain>[^.]+)\.pyd$")


class Problems(list[str]):
    def check(self, ok: object, message: str) -> None:
        if not ok:
            self.append(message)


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)


def leftovers(names: list[PurePosixPath]) -> list[str]:
    return sorted(
        str(name) for name in names
        if name.suffix in LEFTOVER_SUFFIXES or LEFTOVER_PARTS.intersection(name.parts)
    )


def sdist_names(path: Path) -> tuple[str, list[PurePosixPath]]:
    """The sdist's top folder and its files, relative to that folder."""
    with tarfile.open(path) as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
    (top,) = {PurePosixPath(m.name).parts[0] for m in members}
    return top, [PurePosixPath(*PurePosixPath(m.name).parts[1:]) for m in members]


def check_sdist(path: Path, source: Path) -> Problems:
    problems = Problems()
    top, names = sdist_names(path)
    have = set(map(str, names))
    problems.check(path.name == f"{top}.tar.gz", f"sdist {path.name} does not unpack to {top}/")
    for required in ("PKG-INFO", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md",
                     "LICENSE", "CHANGELOG.md", "ci/wheel_test.py", "src/txframe/py.typed",
                     "tests/conftest.py"):
        problems.check(required in have, f"sdist lacks {required}")
    # Everything the checkout has in the package and the tests (tracked or new).
    for folder in ("src/txframe", "tests", "examples"):
        for file in sorted((source / folder).rglob("*")):
            relative = file.relative_to(source).as_posix()
            if file.is_file() and not leftovers([PurePosixPath(relative)]):
                problems.check(relative in have, f"sdist lacks {relative}")
    pyx = [n for n in names if n.suffix == ".pyx"]
    problems.check(pyx, "sdist holds no .pyx source")
    for name in pyx:
        problems.check(str(name.with_suffix(".pyi")) in have, f"no stub {name.with_suffix('.pyi')}")
    problems.check(not leftovers(names), f"sdist holds build leftovers: {leftovers(names)}")
    return problems


def check_wheel(path: Path, kind: str, sdist: Path) -> Problems:
    problems = Problems()
    _, sdist_files = sdist_names(sdist)
    package = PurePosixPath("src")
    modules = {n.relative_to(package) for n in sdist_files
               if n.suffix == ".py" and package in n.parents and n.parts[1] == "txframe"}
    pyx = {n.relative_to(package).with_suffix("") for n in sdist_files
           if n.suffix == ".pyx" and package in n.parents}

    with zipfile.ZipFile(path) as archive:
        names = [PurePosixPath(n) for n in archive.namelist() if not n.endswith("/")]
        dist_info = next(n.parts[0] for n in names if n.parts[0].endswith(".dist-info"))
        metadata = HeaderParser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        wheel_info = HeaderParser().parsestr(archive.read(f"{dist_info}/WHEEL").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    have = set(map(str, names))
    tops = {n.parts[0] for n in names}

    problems.check(tops <= {"txframe", dist_info, "txframe.libs"}, f"unexpected top-level entries: {sorted(tops)}")
    for module in sorted(modules):
        problems.check(str(module) in have, f"wheel lacks {module}")
    problems.check("txframe/py.typed" in have, "wheel lacks txframe/py.typed")

    extensions = {}
    for name in names:
        match = EXTENSION.match(name.name)
        if match:
            extensions[name.parent / (match["stem"] or match["plain"])] = name
    if kind == "compiled":
        problems.check(re.search(r"-cp\d+-cp\d+t?-", path.name), f"{path.name} is not a CPython wheel")
        problems.check(wheel_info["Root-Is-Purelib"] == "false", "a compiled wheel marked purelib")
        problems.check(set(extensions) == pyx,
                       f"compiled modules {sorted(map(str, extensions))} != .pyx sources {sorted(map(str, pyx))}")
        for stem in sorted(pyx):
            problems.check(f"{stem}.pyi" in have, f"wheel lacks the stub {stem}.pyi")
    else:
        problems.check(path.name.endswith("-py3-none-any.whl"), f"{path.name} is not py3-none-any")
        problems.check(wheel_info["Root-Is-Purelib"] == "true", "a pure wheel not marked purelib")
        problems.check(not extensions, f"pure wheel holds compiled modules: {sorted(map(str, extensions))}")

    allowed = {".py", ".pyi", ".typed"}
    for name in names:
        if name.parts[0] == "txframe" and name not in extensions.values():
            problems.check(name.suffix in allowed, f"wheel holds {name}")
    bad = leftovers([n for n in names if n not in extensions.values()])
    problems.check(not bad, f"wheel holds build leftovers: {bad}")

    project = pyproject()["project"]
    for field, expected in (("Name", "txframe"), ("Version", project["version"]),
                            ("License-Expression", project["license"]),
                            ("Requires-Python", project["requires-python"])):
        problems.check(metadata[field] == expected, f"METADATA {field}: {metadata[field]!r} != {expected!r}")
    requires = metadata.get_all("Requires-Dist") or []
    problems.check(any(r.lower().startswith("twisted") for r in requires), "METADATA lacks Requires-Dist: twisted")
    problems.check(metadata.get_all("Project-URL"), "METADATA lacks Project-URL")
    problems.check("Typing :: Typed" in (metadata.get_all("Classifier") or []), "no Typing :: Typed classifier")
    problems.check(f"{dist_info}/licenses/LICENSE" in have, "wheel lacks the LICENSE file")
    problems.check("txframe = txframe.__main__:main" in entry_points, "no txframe console script")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sdist = commands.add_parser("sdist")
    sdist.add_argument("sdist", type=Path)
    sdist.add_argument("--source", type=Path, required=True)
    wheel = commands.add_parser("wheel")
    wheel.add_argument("wheel", type=Path)
    wheel.add_argument("--kind", choices=["compiled", "pure"], required=True)
    wheel.add_argument("--sdist", type=Path, required=True)
    requires = commands.add_parser("requires")
    requires.add_argument("what", choices=["test", "mypy"])
    args = parser.parse_args()

    if args.command == "requires":
        config = pyproject()
        if args.what == "test":
            print("\n".join(config["tool"]["cibuildwheel"]["test-requires"]))
        else:
            specs = [r for r in config["project"]["optional-dependencies"]["test"]
                     if re.match(r"mypy\b", r)]
            print("\n".join(specs))
        return 0
    if args.command == "sdist":
        problems, what = check_sdist(args.sdist, args.source), args.sdist.name
    else:
        problems, what = check_wheel(args.wheel, args.kind, args.sdist), args.wheel.name
    for problem in problems:
        print(f"check_dist: {what}: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_dist: {what}: OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
