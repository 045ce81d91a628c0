"""Map files in the text format postmap(1) reads, for ``txframe serve-map``.

A logical line starts with non-whitespace text; a line that starts with whitespace
continues it. Empty lines, whitespace-only lines and lines whose first non-whitespace
character is ``#`` are ignored. A logical line is ``key whitespace value``: the key up
to the first whitespace, the value the rest with surrounding whitespace removed. Like
postmap, a line without a value is reported and skipped, and of duplicate keys the
first is kept (the others reported). Keys and values are bytes, as in the file.
"""

from __future__ import annotations

import os
from typing import Iterable, NamedTuple


class MapFileError(ValueError):
    """A map file that cannot be read at all (missing, unreadable, a directory...)."""


class Problem(NamedTuple):
    """A line skipped while loading (``line`` is 1-based)."""

    line: int
    message: str


class LoadedMap(NamedTuple):
    entries: dict[bytes, bytes]
    problems: list[Problem]


def parse_map(lines: Iterable[bytes], fold_case: bool = False) -> LoadedMap:
    """The entries of a map file's *lines* (with or without their newlines); keys
    lowercased (ASCII) if *fold_case*."""
    entries: dict[bytes, bytes] = {}
    problems: list[Problem] = []
    logical: list[bytes] = []
    start = 0

    def finish() -> None:
        if not logical:
            return
        parts = b" ".join(logical).split(None, 1)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else b""
        if not value:
            problems.append(Problem(start, "expected format: key whitespace value"))
        else:
            if fold_case:
                key = key.lower()
            if key in entries:
                problems.append(Problem(start, f"duplicate entry: {key!r} (the first is kept)"))
            else:
                entries[key] = value
        logical.clear()

    number = 0
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        if line[:1].isspace():
            if logical:
                logical.append(stripped)
            else:
                problems.append(Problem(number, "continuation line without a line to continue"))
            continue
        finish()
        start = number
        logical.append(stripped)
    finish()
    return LoadedMap(entries, problems)


def load_map(path: str | os.PathLike[str], fold_case: bool = False) -> LoadedMap:
    """Read and parse the map file at *path*.

    :raises MapFileError: if it cannot be read.
    """
    try:
        with open(path, "rb") as handle:
            return parse_map(handle, fold_case)
    except OSError as error:
        raise MapFileError(f"cannot read map file {os.fspath(path)!r}: {error.strerror}") from error


def map_name(path: str | os.PathLike[str]) -> str:
    """The name a map file is served under: its file name without extension."""
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]
