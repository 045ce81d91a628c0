"""Map files in the text format postmap(1) reads, for ``txframe serve-map``.

As postmap reads them (checked against Postfix 3.7): a logical line starts with
non-whitespace text; a line that starts with whitespace continues it (its newline
dropped, its leading whitespace kept), and empty or comment lines in between do not
end it. Empty lines, whitespace-only lines and lines whose first non-whitespace
character is ``#`` are ignored. A logical line is ``key whitespace value``, both with
surrounding whitespace removed. A line without a value is reported and skipped; of
duplicate keys the first is kept (the others reported). Elsewhere in a key, as postmap: whitespace
between double quotes and after a backslash is part of the key, the quotes and
backslashes too (``a"b c"d\\ e value``: the key is ``a"b c"d\\ e``); an unbalanced quote
makes the line invalid.

One difference: a key in double quotes (``"two words" value``, with ``\\"`` and
``\\\\`` inside) is stored without its quotes, so that keys with whitespace can be
looked up (postmap keeps the quotes in the key). Keys and values are bytes, as in the
file.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterable, Iterator, NamedTuple, Optional


class MapFileError(ValueError):
    """A map file that cannot be read at all (missing, unreadable, a directory...)."""


class Problem(NamedTuple):
    """A line skipped while loading (``line`` is 1-based)."""

    line: int
    message: str


class LoadedMap(NamedTuple):
    entries: dict[bytes, bytes]
    problems: list[Problem]


def show_key(key: bytes) -> str:
    """*key* for a message: in quotes, UTF-8 shown as text, other bytes escaped."""
    return '"' + key.decode("utf-8", "backslashreplace").replace('"', '\\"') + '"'


def parse_map(
    lines: Iterable[bytes],
    fold_case: bool = False,
    fold: Optional[Callable[[bytes], bytes]] = None,
) -> LoadedMap:
    """The entries of a map file's *lines* (with or without their newlines); keys
    passed through *fold* (see :mod:`txframe.mapserver.keys`), or lowercased (ASCII)
    if *fold_case*."""
    if fold is None and fold_case:
        fold = bytes.lower
    entries: dict[bytes, bytes] = {}
    problems: list[Problem] = []
    logical: list[bytes] = []
    start = 0

    def finish() -> None:
        if not logical:
            return
        text = b"".join(logical).strip()
        logical.clear()
        try:
            key, value = _split_entry(text)
        except ValueError as error:
            problems.append(Problem(start, str(error)))
            return
        if not value:
            problems.append(Problem(start, "expected format: key whitespace value"))
            return
        if fold is not None:
            key = fold(key)
        if key in entries:
            problems.append(Problem(start, f"duplicate entry: {show_key(key)} (the first is kept)"))
        else:
            entries[key] = value

    for number, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        if line[:1].isspace():
            if logical:
                logical.append(line)
            else:
                problems.append(Problem(number, "logical line must not start with whitespace"))
            continue
        finish()
        start = number
        logical.append(line)
    finish()
    return LoadedMap(entries, problems)


_BACKSLASH = 0x5C
_QUOTE = 0x22
_QUOTED_KEY = re.compile(rb'"((?:[^"\\]|\\.)*)"')


def _split_entry(text: bytes) -> tuple[bytes, bytes]:
    """(key, value) of a logical line; a double-quoted key is unquoted."""
    if text.startswith(b'"'):
        match = _QUOTED_KEY.match(text)
        if match is None:
            raise ValueError("unbalanced '\"' in the key: line ignored")
        key = re.sub(rb"\\(.)", rb"\1", match.group(1))
        rest = text[match.end() :]
        if rest and not rest[:1].isspace():
            raise ValueError("expected whitespace after the quoted key: line ignored")
        return key, rest.strip()
    if _BACKSLASH not in text and _QUOTE not in text:
        parts = text.split(None, 1)
        return parts[0], parts[1].strip() if len(parts) > 1 else b""
    # As postmap: the key ends at whitespace outside double quotes; a backslash takes
    # the next byte into the key; quotes and backslashes stay in the key.
    end = 0
    quoted = False
    while end < len(text):
        byte = text[end]
        if byte == _BACKSLASH:
            end += 2
            continue
        if byte == _QUOTE:
            quoted = not quoted
        elif not quoted and text[end : end + 1].isspace():
            break
        end += 1
    if quoted:
        raise ValueError("unbalanced '\"' in the key: line ignored")
    end = min(end, len(text))
    return text[:end], text[end:].strip()


def load_map(path: str | os.PathLike[str], fold_case: bool = False) -> LoadedMap:
    """Read and parse the map file at *path*.

    :raises MapFileError: if it cannot be read.
    """
    with open_map(path) as handle:
        return parse_map(handle, fold_case)


@contextmanager
def open_map(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """The map file at *path*, open for reading.

    :raises MapFileError: if opening or reading it fails (an :class:`OSError`).
    """
    try:
        with open(path, "rb") as handle:
            yield handle
    except OSError as error:
        raise MapFileError(f"cannot read map file {os.fspath(path)!r}: {error.strerror}") from error


def map_name(path: str | os.PathLike[str]) -> str:
    """The name a map file is served under: its file name without extension."""
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]
