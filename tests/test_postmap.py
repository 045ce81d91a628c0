"""``txframe serve-map`` against the real client: Postfix's ``postmap -q``.

``postmap -q KEY tcp:127.0.0.1:PORT`` (tcp_table) and ``postmap -q KEY
socketmap:inet:127.0.0.1:PORT:NAME`` / ``socketmap:unix:PATH:NAME`` (socketmap), with
``postmap -c DIR`` reading a main.cf of our own (Debian's defaults: compatibility
level 3.6, so keys and values are checked as UTF-8). ``postmap -q -`` reads keys from
stdin and asks them all on one connection, as a Postfix daemon does.

postmap comes with Debian's ``postfix`` package, which the test command installs.
Without it these tests are skipped, except under ``CI=true``, where its absence fails
them (as TXFRAME_REQUIRE_EXTENSIONS does for the compiled framers in conftest.py).
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from peer_rule import unavailable

pytestmark = pytest.mark.peer

_spec = importlib.util.spec_from_file_location(
    "txframe_tests_serve_map", Path(__file__).with_name("test_serve_map.py")
)
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

POSTMAP_TIMEOUT = 60


def _find_postmap() -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which("postmap", path=path)


class Postmap:
    """Runs postmap with a configuration directory of our own."""

    def __init__(self, binary: str, config: Path) -> None:
        self.binary = binary
        self.config = config

    def argv(self, *args: str | bytes) -> list[str | bytes]:
        return [self.binary, "-c", str(self.config), *args]

    def __call__(self, *args: str | bytes, stdin: bytes | None = None):
        return subprocess.run(
            self.argv(*args), input=stdin, capture_output=True, timeout=POSTMAP_TIMEOUT
        )


@pytest.fixture(scope="module")
def postmap() -> Postmap:
    """postmap with the README's minimal configuration, examples/postfix (postmap reads a
    main.cf before it answers; a machine with Postfix unconfigured has none)."""
    binary = _find_postmap()
    if binary is None:
        unavailable("postmap not found: install Debian's postfix package")
    return Postmap(binary, Path(__file__).parents[1] / "examples" / "postfix")


# -- one server, many keys ------------------------------------------------------------------

KEYS = {
    "alice@example.com": "alice@mail.example.net",
    "@example.org": "catchall@mail.example.net",
    "user+tag@example.com": "plus addressing",
    "100%": "one hundred percent",
    "a%20b": "the literal key a%20b",
    "a b": "a space in the key",  # quoted in the map file: "a b"
    "a\tb": "a tab in the key",
    " leading and trailing ": "spaces around the key",
    '"quoted"': "quotes in the key",
    "café": "UTF-8 key, value: crème brûlée",
    "ключ": "значение",
    "MiXeD": "case kept",
    "spaces": "a value  with spaces,\ta tab and 100% of %",
    "percent-value": "%41%42 %% %",
    "k" * 1500: "a 1,500-byte key",
    "é" * 600: "a 1,200-byte UTF-8 key",
    "longvalue": "v" * 3000,
}

#: keys that are not in the map, and must not be found
ABSENT = [
    "nobody@example.com",
    "a  b",
    "leading and trailing",
    "quoted",
    "100",
    "100%25",
    "mixed-case",
    "x" * 2000,
    "ü" * 700,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory, postmap):
    tmp = tmp_path_factory.mktemp("served")
    path = harness.write_map(tmp / "example.map", KEYS)
    sock = tmp / "sm.sock"
    server = harness.start(
        tmp, "--tcp", "127.0.0.1:0", "--socketmap", "127.0.0.1:0", "--unix", str(sock),
        str(path),
    )
    server.unix = str(sock)
    yield server
    assert server.stop() == 0, server.log()


def endpoints(server, name: str = "example") -> dict[str, str]:
    return {
        "tcp": f"tcp:127.0.0.1:{server.tcp}",
        "socketmap": f"socketmap:inet:127.0.0.1:{server.socketmap}:{name}",
        "unix": f"socketmap:unix:{server.unix}:{name}",
    }


@pytest.mark.parametrize("protocol", ["tcp", "socketmap", "unix"])
def test_found_and_not_found(postmap, served, protocol):
    table = endpoints(served)[protocol]
    for key, value in KEYS.items():
        result = postmap("-q", key.encode(), table)
        assert (result.returncode, result.stdout.decode(), result.stderr) == (
            0, value + "\n", b""
        ), key[:40]
    for key in ABSENT:
        result = postmap("-q", key.encode(), table)
        assert (result.returncode, result.stdout, result.stderr) == (1, b"", b""), key[:40]


@pytest.mark.parametrize("protocol", ["tcp", "socketmap"])
def test_all_keys_on_one_connection(postmap, served, protocol):
    """``postmap -q -``: every key of the map and the absent ones, one connection."""
    keys = list(KEYS) + ABSENT
    random.Random(5).shuffle(keys)
    before = served.value("txframe_map_connections_total", protocol=protocol)
    result = postmap("-q", "-", endpoints(served)[protocol],
                     stdin="".join(k + "\n" for k in keys).encode())
    assert result.returncode == 0 and result.stderr == b""
    # "key TAB value" for each key found, in order (a key may have a tab)
    assert result.stdout.decode().splitlines() == [
        f"{key}\t{KEYS[key]}" for key in keys if key in KEYS
    ]
    after = served.value("txframe_map_connections_total", protocol=protocol)
    assert after - before == 1


def test_value_too_long_for_tcp_table(postmap, served, tmp_path):
    """Over tcp_table's 4,096-byte reply line the server answers 400 (postmap then
    gives up on the lookup) instead of a line Postfix would reject 10 times over;
    socketmap (limit 100,000 bytes) carries it."""
    path = harness.write_map(tmp_path / "big.map", {"big": "w" * 5000})
    server = harness.start(tmp_path, "--tcp", "127.0.0.1:0", "--socketmap", "127.0.0.1:0",
                           str(path))
    try:
        started = time.monotonic()
        result = postmap("-q", "big", f"tcp:127.0.0.1:{server.tcp}")
        assert result.returncode == 1 and b"query error" in result.stderr
        assert time.monotonic() - started < 5  # one attempt, not ten
        assert "value(s) too long for a reply" in server.log()
        result = postmap("-q", "big", f"socketmap:inet:127.0.0.1:{server.socketmap}:big")
        assert (result.returncode, result.stdout) == (0, b"w" * 5000 + b"\n")
    finally:
        assert server.stop() == 0


def test_bundled_example_map(postmap, tmp_path):
    """The README's commands, on examples/example.map."""
    example = Path(__file__).parents[1] / "examples" / "example.map"
    server = harness.start(tmp_path, "--tcp", "127.0.0.1:0", "--socketmap", "127.0.0.1:0",
                           str(example))
    try:
        tcp = f"tcp:127.0.0.1:{server.tcp}"
        socketmap = f"socketmap:inet:127.0.0.1:{server.socketmap}:example"
        for table in (tcp, socketmap):
            for key, value in [
                ("alice@example.com", "alice@mail.example.net"),
                ("spammer@example.biz", "REJECT 100% spam, go away"),
                ("John Doe", "DISCARD a key with a space"),
            ]:
                result = postmap("-q", key, table)
                assert (result.returncode, result.stdout.decode()) == (0, value + "\n")
            result = postmap("-q", "nobody@example.com", table)
            assert (result.returncode, result.stdout, result.stderr) == (1, b"", b"")
    finally:
        assert server.stop() == 0


# -- reloads, workers, volume ---------------------------------------------------------------


class Session:
    """A ``postmap -q - TABLE`` left running: keys are written to its stdin one at a
    time; its output (which postmap buffers) is read when it ends."""

    def __init__(self, postmap: Postmap, table: str) -> None:
        self.proc = subprocess.Popen(
            postmap.argv("-q", "-", table),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def ask(self, key: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(key.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self) -> tuple[int, str, bytes]:
        out, err = self.proc.communicate(timeout=POSTMAP_TIMEOUT)
        return self.proc.returncode, out.decode(), err


@pytest.mark.parametrize("trigger", ["SIGHUP", "file change"])
def test_reload_while_postmap_stays_connected(postmap, tmp_path, trigger):
    path = harness.write_map(tmp_path / "live.map", {"k": "old value", "gone": "soon"})
    server = harness.start(tmp_path, "--tcp", "127.0.0.1:0", "--socketmap", "127.0.0.1:0",
                           "--poll-interval", "0" if trigger == "SIGHUP" else "0.1", str(path))
    try:
        sessions = {
            "tcp": Session(postmap, f"tcp:127.0.0.1:{server.tcp}"),
            "socketmap": Session(postmap, f"socketmap:inet:127.0.0.1:{server.socketmap}:live"),
        }
        for session in sessions.values():
            session.ask("k")
            session.ask("gone")
        harness.wait_for(lambda: server.value("txframe_map_hits_total") == 4,
                         what="the first answers")
        harness.write_map(path, {"k": "new value", "added": "here"})
        if trigger == "SIGHUP":
            server.signal(signal.SIGHUP)
        harness.wait_for(lambda: server.value("txframe_map_reloads_total") == 1,
                         what="the reload")
        for session in sessions.values():
            session.ask("k")
            session.ask("gone")
            session.ask("added")
        for protocol, session in sessions.items():
            status, out, err = session.finish()
            assert (status, err) == (0, b""), protocol
            assert out.splitlines() == [
                "k\told value", "gone\tsoon", "k\tnew value", "added\there"
            ], protocol
            # one connection each, kept across the reload
            assert server.value("txframe_map_connections_total", protocol=protocol) == 1
    finally:
        assert server.stop() == 0


def test_workers(postmap, tmp_path):
    path = harness.write_map(tmp_path / "w.map", {f"key{i}": f"value {i}" for i in range(100)})
    server = harness.start(tmp_path, "--workers", "3", "--tcp", "127.0.0.1:0",
                           "--socketmap", "127.0.0.1:0", str(path))
    try:
        for i in range(30):
            for table in (f"tcp:127.0.0.1:{server.tcp}",
                          f"socketmap:inet:127.0.0.1:{server.socketmap}:w"):
                result = postmap("-q", f"key{i}", table)
                assert (result.returncode, result.stdout) == (0, f"value {i}\n".encode())
        result = postmap("-q", "nokey", f"tcp:127.0.0.1:{server.tcp}")
        assert (result.returncode, result.stdout, result.stderr) == (1, b"", b"")
        served_by = [server.value("txframe_map_hits_total", worker=str(w)) for w in range(3)]
        assert sum(served_by) == 60
        assert sum(1 for n in served_by if n) >= 2, served_by  # spread by the kernel
    finally:
        assert server.stop() == 0


def test_map_of_100000_entries(postmap, tmp_path):
    """Every key of a 100,000-entry map through one ``postmap -q -`` per protocol, and
    a random sample through single ``postmap -q`` runs."""
    rng = random.Random(100_000)
    entries = {}
    for i in range(100_000):
        key = f"user{i}@domain{i % 977}.example"
        if i % 10 == 0:
            key = f"x+{i}%é@{i}.example"  # + % and UTF-8 in a tenth of the keys
        entries[key] = f"value {i} with spaces, {'é ' if i % 3 else ''}and 100%"
    path = harness.write_map(tmp_path / "big.map", entries)
    server = harness.start(tmp_path, "--tcp", "127.0.0.1:0", "--socketmap", "127.0.0.1:0",
                           str(path))
    try:
        assert server.value("txframe_map_entries", map="big") == 100_000
        tables = {"tcp": f"tcp:127.0.0.1:{server.tcp}",
                  "socketmap": f"socketmap:inet:127.0.0.1:{server.socketmap}:big"}
        keys = list(entries)
        for table in tables.values():
            for key in rng.sample(keys, 50):
                result = postmap("-q", key.encode(), table)
                assert (result.returncode, result.stdout.decode()) == (0, entries[key] + "\n")
        absent = [f"absent{i}" for i in range(1000)]
        keys_file = tmp_path / "keys.txt"
        keys_file.write_text("".join(k + "\n" for k in keys + absent))
        runs = {}  # both at once: each is one lock-step connection
        for protocol, table in tables.items():
            with open(keys_file, "rb") as stdin:
                runs[protocol] = subprocess.Popen(
                    postmap.argv("-q", "-", table), stdin=stdin,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )
        outputs = {}
        for protocol, proc in runs.items():
            out, err = proc.communicate(timeout=POSTMAP_TIMEOUT)
            outputs[protocol] = (proc.returncode, out, err)
        for protocol, (status, out, err) in outputs.items():
            assert status == 0 and err == b"", err[-500:]
            found = dict(line.split("\t", 1) for line in out.decode().splitlines())
            assert found == entries, protocol
            assert server.value("txframe_map_connections_total", protocol=protocol) == 51
    finally:
        assert server.stop() == 0


# -- postmap's key rules, differential ----------------------------------------------------
#
# The same map file served by serve-map (tcp_table and socketmap) and read by postmap
# itself (texthash:, and hash: as postmap builds it): every key must be found, or not,
# with the same value. postmap folds the keys of its own tables (without -f) and sends
# tcp/socketmap keys as given, so serve-map folds them as Postfix does.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Letters whose folding is special (ß -> ss, final sigma, dotted capital I, the
# Kelvin and Angstrom signs, ligatures, titlecase digraphs), "%" (tcp_table's escape),
# then Latin, Greek and Cyrillic (stable across Unicode versions); no whitespace: a
# map key ends at whitespace.
_SPECIAL = "ßẞΣσςİıKÅﬁﬀǅǄǆŉΐ%"
_KEY_CHAR = st.one_of(
    st.sampled_from(_SPECIAL),
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.characters(min_codepoint=0xC0, max_codepoint=0x52F,
                  blacklist_categories=("Cc", "Cs", "Cn", "Zs", "Mn")),
)
def _postmap_key(key: str) -> bool:
    """Not a comment, nor a key in quotes (which serve-map unquotes: see mapfile)."""
    return not key.startswith(("#", '"'))


_MAP_KEY = st.text(_KEY_CHAR, min_size=1, max_size=12).filter(_postmap_key)
_LONG_KEY = st.builds(lambda c, n: c * n, _KEY_CHAR, st.integers(300, 1200)).filter(_postmap_key)


def _variants(key: str) -> list[str]:
    return [key, key.upper(), key.lower(), key.swapcase(), key.casefold(), key.title()]


@pytest.fixture(scope="module")
def differential(postmap, tmp_path_factory):
    """One serve-map (tcp and socketmap, --lenient: postmap keeps the first of keys that
    fold alike), reloaded with SIGHUP for each example."""
    tmp = tmp_path_factory.mktemp("differential")
    path = harness.write_map(tmp / "diff.map", "seed value\n")
    server = harness.start(tmp, "--lenient", "--poll-interval", "0", "--tcp", "127.0.0.1:0",
                           "--socketmap", "127.0.0.1:0", str(path))
    server.path = path
    yield server
    assert server.stop() == 0, server.log()


def _found(postmap, table: str, keys: list[str]) -> dict[str, str]:
    result = postmap("-q", "-", table, stdin="".join(k + "\n" for k in keys).encode())
    assert result.returncode in (0, 1), result.stderr
    found = {}
    for line in result.stdout.decode().splitlines():
        key, _, value = line.rpartition("\t")  # a key may hold a tab, a value does not
        found[key] = value
    return found


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    keys=st.lists(st.one_of(_MAP_KEY, _LONG_KEY), min_size=1, max_size=25),
    extra=st.lists(st.one_of(
        _MAP_KEY,
        st.builds(lambda a, sep, b: a + sep + b, _MAP_KEY, st.sampled_from([" ", "\t", "  "]),
                  _MAP_KEY),
    ), max_size=10),
)
def test_keys_agree_with_postmap(postmap, differential, keys, extra):
    path = differential.path
    reloads = differential.value("txframe_map_reloads_total")
    text = "".join(f"{key} v{n}\n" for n, key in enumerate(keys))
    harness.write_map(path, text)
    indexed = path.with_name("indexed.map")
    indexed.write_text(text, encoding="utf-8")
    built = postmap(f"hash:{indexed}")
    assert built.returncode == 0, built.stderr
    differential.signal(signal.SIGHUP)
    harness.wait_for(lambda: differential.value("txframe_map_reloads_total") > reloads,
                     what="the reload")
    queries = list(dict.fromkeys(q for key in keys + extra for q in _variants(key)))
    by_postmap = _found(postmap, f"texthash:{path}", queries)
    assert _found(postmap, f"hash:{indexed}", queries) == by_postmap
    port = differential.tcp
    assert _found(postmap, f"tcp:127.0.0.1:{port}", queries) == by_postmap
    sm = f"socketmap:inet:127.0.0.1:{differential.socketmap}:diff"
    assert _found(postmap, sm, queries) == by_postmap


def test_keys_folded_as_postmap_folds(postmap, served):
    """Mixed case, as the admins' old tables answered it (the issue's example)."""
    for table in endpoints(served).values():
        for key, value in [("mixed", "case kept"), ("MIXED", "case kept"),
                           ("CAFÉ", KEYS["café"]), ("КЛЮЧ", KEYS["ключ"])]:
            result = postmap("-q", key.encode(), table)
            assert (result.returncode, result.stdout.decode()) == (0, value + "\n"), (table, key)


@pytest.mark.parametrize("protocol", ["socketmap", "unix"])
def test_overlong_key_is_answered(postmap, served, protocol):
    """A 12,000-byte key (over the 10,000-byte socketmap request limit): the server
    reads the request to its end before its PERM reply, so postmap reads the reason
    instead of dying of SIGPIPE (exit 141) on a connection closed while it writes."""
    result = postmap("-q", "k" * 12_000, endpoints(served)[protocol])
    assert result.returncode == 1, result
    assert b"permanent error: request too long (limit 10000 bytes)" in result.stderr
