"""txframe.mapfile: map files in postmap(1)'s text format."""

from __future__ import annotations

import os

import pytest

from txframe.mapfile import MapFileError, load_map, map_name, parse_map


def lines(text: bytes) -> list[bytes]:
    return text.splitlines(keepends=True)


def test_keys_values_comments_blank_lines():
    loaded = parse_map(
        lines(
            b"# a comment\n"
            b"\n"
            b"   \n"
            b"user@example.com   smtp:[mx.example.com]:25\n"
            b"key\tvalue with  inner   spaces  \r\n"
            b"  # an indented comment\n"
            b"caf\xc3\xa9 \xc3\xa9t\xc3\xa9\n"
        )
    )
    assert loaded.entries == {
        b"user@example.com": b"smtp:[mx.example.com]:25",
        b"key": b"value with  inner   spaces",
        b"caf\xc3\xa9": b"\xc3\xa9t\xc3\xa9",
    }
    assert loaded.problems == []


def test_continuation_lines_join_the_logical_line_as_postmap_joins_them():
    # newline dropped, the continuation's leading whitespace kept; blank and comment
    # lines in between do not end the logical line (as observed with Postfix 3.7)
    loaded = parse_map(lines(b"list a,\n  b,\n\n# note\n\tc\nnext 1\n"))
    assert loaded.entries == {b"list": b"a,  b,\tc", b"next": b"1"}


def test_quoted_keys_may_hold_whitespace():
    loaded = parse_map(lines(b'"two words" v1\n"tab\there" v2\n"q\\"uote\\\\" v3\n"open v4\n'))
    assert loaded.entries == {b"two words": b"v1", b"tab\there": b"v2", b'q"uote\\': b"v3"}
    assert len(loaded.problems) == 1 and "unbalanced" in loaded.problems[0].message


def test_a_value_may_start_on_a_continuation_line():
    assert parse_map(lines(b"key\n  value\n")).entries == {b"key": b"value"}


def test_problems_are_reported_and_skipped():
    loaded = parse_map(lines(b"  orphan continuation\nlonely\na 1\na 2\nb 3\n"))
    assert loaded.entries == {b"a": b"1", b"b": b"3"}
    assert [problem.line for problem in loaded.problems] == [1, 2, 4]
    assert "must not start with whitespace" in loaded.problems[0].message
    assert "key whitespace value" in loaded.problems[1].message
    assert "duplicate" in loaded.problems[2].message


def test_fold_case_lowercases_keys_only():
    loaded = parse_map([b"User@Example.COM Value\n", b"user@example.com other\n"], fold_case=True)
    assert loaded.entries == {b"user@example.com": b"Value"}
    assert len(loaded.problems) == 1


def test_load_map_and_its_errors(tmp_path):
    path = tmp_path / "aliases.map"
    path.write_bytes(b"a 1\nb 2\n")
    assert load_map(path).entries == {b"a": b"1", b"b": b"2"}
    assert map_name(path) == "aliases"
    assert map_name("/etc/postfix/transport") == "transport"
    with pytest.raises(MapFileError, match="cannot read map file"):
        load_map(tmp_path / "missing.map")
    with pytest.raises(MapFileError):
        load_map(tmp_path)  # a directory
    if os.geteuid() != 0:  # root reads anything
        path.chmod(0)
        with pytest.raises(MapFileError):
            load_map(path)


def test_a_big_map(tmp_path):
    path = tmp_path / "big.map"
    path.write_bytes(b"".join(b"key%d value%d\n" % (i, i) for i in range(100_000)))
    entries = load_map(path).entries
    assert len(entries) == 100_000 and entries[b"key99999"] == b"value99999"


# -- reading a map that changes (serve-map's reloads) ---------------------------------


def _read_while(tmp_path, monkeypatch, change):
    """build_map on a map file that *change(path)* alters after its first line is read."""
    from txframe.mapserver import config as mapconfig, sources

    path = tmp_path / "m.map"
    path.write_bytes(b"".join(b"key%d old\n" % i for i in range(1000)))

    def parse_changing(handle, fold_case=False, fold=None):
        def lines():
            for number, line in enumerate(handle):
                if number == 1:
                    change(path)
                yield line
        return parse_map(lines(), fold_case, fold)

    monkeypatch.setattr(sources, "parse_map", parse_changing)
    config = mapconfig.Config(maps=[str(path)], tcp=[["m", "127.0.0.1", 0]], socketmap=[], unix=[])
    return sources.build_map(str(path), config, tcp=True)


def test_a_map_renamed_over_while_read_is_read_whole(tmp_path, monkeypatch):
    """An atomic replace meanwhile leaves the opened version complete: it is served, and
    the signature is the opened file's, so that the next poll loads the new one."""
    from txframe.mapserver.sources import file_signature

    def replace(path):
        new = path.with_name("m.new")
        new.write_bytes(b"key0 new\n")
        os.replace(new, path)

    built = _read_while(tmp_path, monkeypatch, replace)
    assert built.entries == 1000 and built.tcp[b"key999"] == b"200 old\n"
    assert built.signature != file_signature(str(tmp_path / "m.map"))


def test_a_map_written_in_place_while_read_is_read_again(tmp_path, monkeypatch):
    from txframe.mapserver.sources import FileChanging

    def append(path):
        with open(path, "ab") as handle:
            handle.write(b"late entry\n")

    with pytest.raises(FileChanging):
        _read_while(tmp_path, monkeypatch, append)


def test_backslashes_and_quotes_in_a_key_as_postmap():
    """postmap: a backslash takes the next byte into the key (whitespace too) and stays
    there; ``\\`` alone before the whitespace leaves a line without a value."""
    loaded = parse_map([b"a\\ b v1\n", b"x\\\\ v2\n", b"y\\z v3\n", b"\\ v0\n", b"c\\ v4\n",
                        b'a"b c"d v5\n', b'e"f\\"g h" v6\n', b'i"j v7\n', b'k v"x\n'])
    assert loaded.entries == {b"a\\ b": b"v1", b"x\\\\": b"v2", b"y\\z": b"v3",
                              b'a"b c"d': b"v5", b'e"f\\"g h"': b"v6", b"k": b'v"x'}
    assert [p.line for p in loaded.problems] == [4, 5, 8]
