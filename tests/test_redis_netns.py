"""Redis and two serve-map "hosts" in network namespaces of their own (``ip netns``,
veth pairs): one host's link to Redis is cut (packets silently dropped: no reset, no
error, only the heartbeat notices); that host answers TEMP/400 within its deadline,
never "not found", while the other keeps serving; a change made during the cut is
served by both once the link is back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from peer_rule import unavailable  # noqa: E402
from redis_peer import RedisNode, require_redis  # noqa: E402

pytestmark = pytest.mark.peer


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def fleet(tmp_path: Path):
    require_redis()
    if os.geteuid() != 0 or shutil.which("ip") is None:
        unavailable("network namespaces need root and iproute2's ip")
    tag = f"t18{os.getpid() % 100000}"
    nets = {n: f"{tag}{n}" for n in ("r", "a", "b")}
    subnet = 100 + os.getpid() % 100
    try:
        for ns in nets.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for i, host in enumerate(("a", "b"), 1):
            outer, inner = f"{tag}r{host}", f"{tag}{host}r"
            sh("ip", "link", "add", outer, "netns", nets["r"], "type", "veth", "peer", "name",
               inner, "netns", nets[host])
            sh("ip", "-n", nets["r"], "addr", "add", f"10.{subnet}.{i}.1/24", "dev", outer)
            sh("ip", "-n", nets[host], "addr", "add", f"10.{subnet}.{i}.2/24", "dev", inner)
            sh("ip", "-n", nets["r"], "link", "set", outer, "up")
            sh("ip", "-n", nets[host], "link", "set", inner, "up")
    except subprocess.CalledProcessError as error:
        for ns in nets.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        unavailable(f"cannot make network namespaces: {error.stderr!r}")
    redis = RedisNode(tmp_path / "redis", host="0.0.0.0", netns=nets["r"])
    procs = []
    try:
        redis.host = "0.0.0.0"
        redis.start()
        redis.cli("HSET", "virtual", "alice@example.com", "before", "bob@example.com", "bob")
        config = tmp_path / "postfix"
        config.mkdir()
        (config / "main.cf").write_text("compatibility_level = 3.6\n")
        old = time.time() - 60
        os.utime(config / "main.cf", (old, old))
        ports = {}
        for i, host in enumerate(("a", "b"), 1):
            ready = tmp_path / f"{host}.ready"
            url = f"redis://10.{subnet}.{i}.1:{redis.port}"
            log = open(tmp_path / f"{host}.log", "wb")
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", nets[host], sys.executable, "-m", "txframe", "serve-map",
                 "--tcp", "look=127.0.0.1:0", "--tcp", "snap=127.0.0.1:0",
                 "--ready-file", str(ready),
                 f"look={url}?hash=virtual&deadline=1", f"snap={url}?hash=virtual&mode=snapshot&deadline=1"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL))
            deadline = time.monotonic() + 30
            while not ready.exists():
                assert procs[-1].poll() is None, (tmp_path / f"{host}.log").read_text()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            info = json.loads(ready.read_text())
            ports[host] = {e["map"]: e["port"] for e in info["tcp"]}

        def query(host: str, name: str, key: str) -> str:
            done = subprocess.run(
                ["ip", "netns", "exec", nets[host], shutil.which("postmap", path="/usr/sbin:/usr/bin") or "postmap",
                 "-c", str(config), "-q", key, f"tcp:127.0.0.1:{ports[host][name]}"],
                capture_output=True, timeout=60)
            if done.returncode and b"fatal" in done.stderr:
                return "TEMP"
            return done.stdout.decode().strip() if done.returncode == 0 else "NOTFOUND"

        def cut(on: bool) -> None:
            sh("ip", "-n", nets["r"], "link", "set", f"{tag}ra", "down" if on else "up")

        yield query, cut, redis
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.kill()
        for ns in nets.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_cut_link(fleet) -> None:
    query, cut, redis = fleet
    for host in ("a", "b"):
        assert query(host, "look", "alice@example.com") == "before"
        assert query(host, "look", "nobody@example.com") == "NOTFOUND"
    cut(True)
    redis.cli("HSET", "virtual", "alice@example.com", "after")
    # host a: its invalidation link is silent; within heartbeat + deadline (2 s) nothing
    # cached is trusted, and every lookup that reaches Redis times out: TEMP
    start = time.monotonic()
    while query("a", "look", "alice@example.com") != "TEMP":
        assert time.monotonic() - start < 4, "host a still answers from its cache"
        time.sleep(0.1)
    assert query("a", "look", "nobody@example.com") == "TEMP"
    assert query("a", "snap", "bob@example.com") == "bob"  # the last good snapshot
    # host b keeps serving, the change included
    assert query("b", "look", "alice@example.com") == "after"
    assert query("b", "look", "nobody@example.com") == "NOTFOUND"
    cut(False)
    start = time.monotonic()
    while not all(query(h, m, "alice@example.com") == "after" for h in ("a", "b") for m in ("look", "snap")):
        assert time.monotonic() - start < 10, "not converged within 10 s of the link's return"
        time.sleep(0.1)
