"""``txframe serve-map`` serving Redis maps to the real client, Postfix's ``postmap -q``
(tcp_table and socketmap), the maps loaded by ``txframe map-load``: both layouts and
both modes, a change seen within the bound, Redis killed (TEMP/400, never "not found";
/health says so) and restarted (served again within seconds); the same over TLS
(``rediss://``, a Redis listening on TLS only, the CA given as ``ssl_ca_certs``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from redis_peer import RedisNode, make_tls, require_redis  # noqa: E402

pytestmark = pytest.mark.peer


def _load(name: str, file: str):  # the harnesses of the serve-map and postmap tests
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _load("txframe_tests_serve_map_r", "test_serve_map.py")
postmap_tests = _load("txframe_tests_postmap_r", "test_postmap.py")
postmap = postmap_tests.postmap  # the fixture

ENTRIES = {
    "alice@example.com": "alice@mail.example.net",
    "a b": "a space in the key",
    "100%": "one hundred percent",
    "café": "UTF-8 key, value: crème brûlée",
    "spaces": "a value  with spaces and 100% of %",
}
MAPS = ("snap", "look", "strs")


@pytest.fixture
def setup(tmp_path: Path):
    require_redis()
    node = RedisNode(tmp_path / "redis").start()
    served = None
    try:
        mapfile = harness.write_map(tmp_path / "virtual", ENTRIES)
        for args in (["--hash", "virtual"], ["--prefix", "v:"]):
            done = subprocess.run(
                [sys.executable, "-m", "txframe", "map-load", str(mapfile), "--redis", node.url,
                 "--keep-old", "0", *args], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        url = node.url
        served = harness.start(
            tmp_path, "--tcp", "snap=127.0.0.1:0", "--tcp", "look=127.0.0.1:0",
            "--tcp", "strs=127.0.0.1:0", "--socketmap", "127.0.0.1:0",
            f"snap={url}?hash=virtual&mode=snapshot&deadline=1",
            f"look={url}?hash=virtual&deadline=1",
            f"strs={url}?prefix=v:&versioned=1&deadline=1",
        )
        yield node, served
    finally:
        if served is not None:
            served.stop()
        node.kill()


def query(postmap, served, name: str, key: str, tcp: bool) -> tuple[int, str]:
    table = (f"tcp:127.0.0.1:{served.tcp_port(name)}" if tcp
             else f"socketmap:inet:127.0.0.1:{served.socketmap}:{name}")
    done = postmap("-q", key, table)
    if done.returncode and b"fatal" in done.stderr:
        return 75, "a lookup problem"  # what a TEMP / 400 makes postmap say (status 1)
    return done.returncode, done.stdout.decode().rstrip("\n")


def test_postmap_over_redis_maps(setup, postmap) -> None:
    node, served = setup
    for name in MAPS:
        for tcp in (True, False):
            for key, value in ENTRIES.items():
                assert query(postmap, served, name, key, tcp) == (0, value), (name, tcp, key)
                # serve-map folds keys (utf8, the default); map-load folded them too
                assert query(postmap, served, name, key.upper(), tcp) == (0, value)
            assert query(postmap, served, name, "nobody@example.com", tcp) == (1, "")
    status, body = harness.http_get(served.metrics_port, "/health")
    assert status == 200, body
    assert served.value("txframe_map_redis_up", map="look") == 1
    # the second asking of each key was a cache hit, answered by the protocol itself
    assert served.value("txframe_map_cache_hits_total", map="look") >= 2 * len(ENTRIES)


def test_change_then_outage_then_recovery(setup, postmap, tmp_path: Path) -> None:
    node, served = setup
    for name in MAPS:
        assert query(postmap, served, name, "alice@example.com", True)[0] == 0
    node.cli("HSET", "virtual", "alice@example.com", "moved")
    start = time.monotonic()
    harness.wait_for(lambda: query(postmap, served, "look", "alice@example.com", True) == (0, "moved"),
                     1.0, "the lookup-mode change within 1 s")
    harness.wait_for(lambda: query(postmap, served, "snap", "alice@example.com", True) == (0, "moved"),
                     2.0, "the snapshot change within 2 s")
    assert time.monotonic() - start < 3
    node.kill()
    time.sleep(1.5)
    for name in ("look", "strs"):
        for tcp in (True, False):
            status, _ = query(postmap, served, name, "alice@example.com", tcp)
            assert status == 75, (name, tcp)  # a lookup problem, never "not found"
            status, _ = query(postmap, served, name, "nobody@example.com", tcp)
            assert status == 75, (name, tcp)
    # the snapshot is served through the outage
    assert query(postmap, served, "snap", "alice@example.com", False) == (0, "moved")
    status, body = harness.http_get(served.metrics_port, "/health")
    assert status == 503, body
    node.start()
    for args in (["--hash", "virtual"], ["--prefix", "v:"]):
        subprocess.run([sys.executable, "-m", "txframe", "map-load", str(tmp_path / "virtual"),
                        "--redis", node.url, "--keep-old", "0", *args], check=True, timeout=60)
    harness.wait_for(lambda: all(query(postmap, served, n, "alice@example.com", True)
                                 == (0, "alice@mail.example.net") for n in MAPS),
                     8.0, "serving again after the restart")
    harness.wait_for(lambda: harness.http_get(served.metrics_port, "/health")[0] == 200, 5.0, "/health")


def test_map_named_twice(tmp_path: Path) -> None:
    status, stderr = harness.run_to_end(
        tmp_path, "--tcp", "127.0.0.1:0", "m=redis://127.0.0.1:1?hash=a", "m=redis://127.0.0.1:1?hash=b")
    assert status == 2 and "two maps named 'm'" in stderr, stderr
    config = tmp_path / "serve.toml"
    config.write_text('maps = ["m=redis://127.0.0.1:1?hash=a", "m=redis://127.0.0.1:1?prefix=x:"]\n'
                      'tcp = ["127.0.0.1:0"]\n')
    status, stderr = harness.run_to_end(tmp_path, "--config", str(config))
    assert status == 2 and "two maps named 'm'" in stderr, stderr


def test_bad_redis_map_at_start(tmp_path: Path) -> None:
    require_redis()
    for spec, words in [
        ("m=redis://127.0.0.1:1?hash=a&deadline=0.5", "cannot use Redis"),
        ("m=redis://127.0.0.1:1?mode=lookup", "hash=NAME or prefix"),
        ("m=redis+cluster://nohostport?hash=a", "host:port"),
    ]:
        status, stderr = harness.run_to_end(tmp_path, "--tcp", "127.0.0.1:0", spec)
        assert status != 0 and words in stderr, (spec, stderr)
        assert "Traceback" not in stderr


# -- TLS ------------------------------------------------------------------------------------


def map_load(node: RedisNode, url: str, mapfile: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "txframe", "map-load", str(mapfile), "--redis", url,
         "--keep-old", "0", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def tls_node(tmp_path: Path):
    require_redis()
    tls = make_tls(tmp_path / "tls")
    node = RedisNode(tmp_path / "redis", tls=tls).start()
    try:
        yield node, f"{node.url}/0?ssl_ca_certs={tls.ca}"
    finally:
        node.kill()


def test_postmap_over_rediss(tls_node, postmap, tmp_path: Path) -> None:
    node, url = tls_node
    mapfile = harness.write_map(tmp_path / "virtual", ENTRIES)
    map_load(node, url, mapfile, "--hash", "virtual")
    served = harness.start(
        tmp_path, "--tcp", "snap=127.0.0.1:0", "--tcp", "look=127.0.0.1:0",
        "--socketmap", "127.0.0.1:0",
        f"snap={url}&hash=virtual&mode=snapshot&deadline=1", f"look={url}&hash=virtual&deadline=1",
    )
    try:
        for name in ("snap", "look"):
            for tcp in (True, False):
                for key, value in ENTRIES.items():
                    assert query(postmap, served, name, key, tcp) == (0, value), (name, tcp, key)
                assert query(postmap, served, name, "nobody@example.com", tcp) == (1, "")
        assert harness.http_get(served.metrics_port, "/health")[0] == 200
        assert served.value("txframe_map_cache_hits_total", map="look") >= len(ENTRIES)
        # invalidation by client tracking over the TLS push connection (the cached
        # value lives 300 s otherwise); the snapshot reloads on the same message
        node.cli("HSET", "virtual", "alice@example.com", "moved over TLS")
        harness.wait_for(lambda: query(postmap, served, "look", "alice@example.com", True)
                         == (0, "moved over TLS"), 1.0, "the lookup-mode change within 1 s")
        harness.wait_for(lambda: query(postmap, served, "snap", "alice@example.com", False)
                         == (0, "moved over TLS"), 2.0, "the snapshot change within 2 s")
        # the push connections (RESP3, tracking in BCAST mode) are TLS ones: Redis
        # listens on nothing else
        clients = [dict(field.split("=", 1) for field in line.split())
                   for line in node.cli("CLIENT", "LIST").splitlines() if line]
        tracking = [c for c in clients if "t" in c["flags"] and "B" in c["flags"] and c["resp"] == "3"]
        assert len(tracking) == 2, clients
    finally:
        served.stop()


def test_rediss_bad_trust_is_one_line(tls_node, tmp_path: Path) -> None:
    node, url = tls_node
    base = url.partition("?")[0]
    other = make_tls(tmp_path / "other", "other")
    plain = base.replace("rediss://", "redis://")
    for spec, words in [
        # a CA that did not sign the server's certificate
        (f"m={base}?ssl_ca_certs={other.ca}&hash=virtual&deadline=1",
         (f"map m: cannot use Redis at {base}?ssl_ca_certs={other.ca}: ConnectionError: ",
          "certificate verify failed")),
        # the system's CAs do not know ours either
        (f"m={base}?hash=virtual&mode=snapshot&deadline=1",
         (f"cannot use Redis at {base}: ", "certificate verify failed")),
        (f"m={base}?ssl_ca_certs={tmp_path}/none.pem&hash=virtual&deadline=1",
         (f"ssl_ca_certs: no file {tmp_path}/none.pem",)),
        (f"m={plain}?ssl_ca_certs={other.ca}&hash=virtual", ("ssl_ca_certs needs rediss://",)),
        # plain Redis protocol against a TLS-only port
        (f"m={plain}?hash=virtual&deadline=1", (f"cannot use Redis at {plain}: ConnectionError",)),
    ]:
        status, stderr = harness.run_to_end(tmp_path, "--tcp", "127.0.0.1:0", spec)
        assert status == 1 and all(w in stderr for w in words), (spec, stderr)
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
