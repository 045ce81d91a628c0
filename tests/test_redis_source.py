"""Redis maps against real redis-server processes (tests/peers/redis_peer.py): both
layouts and modes, invalidation within the stated bound, failures (killed, slow,
failing over, errors) answered TEMP/400 and never "not found", Sentinel, Cluster,
bounded cache memory, bad input, and ``txframe map-load``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable

import pytest

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from redis_peer import Cluster, RedisNode, Sentinels, require_redis, wait_for  # noqa: E402

pytestmark = pytest.mark.peer
from txframe.mapserver import redis_source  # noqa: E402

RedisMapOptions = redis_source.RedisMapOptions
SourceError = redis_source.SourceError

FOUND = {b"a@x": b"alice", b"two words": b"v 1", b"pct%": b"100%", b"nl\nkey": b"x",
         b"\xff\xfe": b"\x80bin"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require_redis()
    n = RedisNode(tmp_path_factory.mktemp("redis")).start()
    yield n
    n.kill()


@pytest.fixture
def fresh(tmp_path: Path) -> Any:
    require_redis()
    n = RedisNode(tmp_path / "redis").start()
    yield n
    n.kill()


def fill(node: Any, name: str = "virtual", layout: str = "hash", entries: dict[bytes, bytes] = FOUND) -> None:
    import redis

    client = redis.Redis(host=node.host, port=node.port)
    if layout == "hash":
        client.delete(name)
        client.hset(name, mapping=entries)
    else:
        for key, value in entries.items():
            client.set(name.encode() + key, value)
    client.close()


def rset(node: Any, *args: Any) -> Any:
    import redis

    client = redis.Redis(host=node.host, port=node.port)
    try:
        return client.execute_command(*args)
    finally:
        client.close()


async def ask(source: Any, key: bytes, tcp: bool = True) -> bytes:
    reply = source.tcp_reply(key) if tcp else source.socketmap_reply(key)
    if not isinstance(reply, bytes):
        reply = await reply
    return reply


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def make(spec: str) -> Any:
    return redis_source.create(RedisMapOptions.from_spec(spec))


def not_found(reply: bytes) -> bool:
    return reply.startswith(b"500") or b"NOTFOUND" in reply


def temporary(reply: bytes) -> bool:
    return reply.startswith(b"400") or b":TEMP " in reply


@pytest.mark.parametrize(
    "layout,mode",
    [("hash", "lookup"), ("hash", "snapshot"), ("string", "lookup"), ("versioned", "lookup")],
)
def test_layouts_and_modes(node: Any, layout: str, mode: str) -> None:
    if layout == "versioned":
        fill(node, "ver:7:", "string")
        rset(node, "SET", "ver:", "7")
        spec = f"m={node.url}?prefix=ver:&versioned=1"
    elif layout == "string":
        fill(node, "str:", "string")
        spec = f"m={node.url}?prefix=str:"
    else:
        fill(node)
        spec = f"m={node.url}?hash=virtual&mode={mode}"

    async def main() -> None:
        source = make(spec)
        await source.open()
        try:
            for _ in range(2):  # a miss, then (lookup mode) a cache hit
                for key, value in FOUND.items():
                    from txframe.mapproto import quote

                    assert await ask(source, key) == b"200 " + quote(value) + b"\n"
                    assert await ask(source, key, False) == b"%d:OK %b," % (len(value) + 3, value)
                assert await ask(source, b"nobody") == b"500 \n"
                assert await ask(source, b"nobody", False) == b"9:NOTFOUND ,"
                await asyncio.sleep(0.05)
            if mode == "lookup":
                assert source.hits >= len(FOUND)
            assert source.healthy()
        finally:
            await source.close()

    run(main())


@pytest.mark.parametrize("layout", ["hash", "string", "snapshot"])
def test_change_served_within_bound(node: Any, layout: str) -> None:
    """A changed, added or deleted key is served within 1 s (lookup; in practice
    milliseconds: the invalidation's delivery) and 2 s (snapshot)."""
    spec = {
        "hash": f"m={node.url}?hash=chg",
        "string": f"m={node.url}?prefix=chg:",
        "snapshot": f"m={node.url}?hash=chg&mode=snapshot",
    }[layout]
    rset(node, "DEL", "chg")
    if layout == "string":
        rset(node, "SET", "chg:k", "old")
        rset(node, "SET", "chg:gone", "soon")
    else:
        rset(node, "HSET", "chg", "k", "old", "gone", "soon")
    bound = 2.0 if layout == "snapshot" else 1.0

    async def until(key: bytes, want: bytes) -> float:
        start = time.monotonic()
        while time.monotonic() - start < bound:
            if await ask(source, key) == want:
                return time.monotonic() - start
            await asyncio.sleep(0.005)
        raise AssertionError(f"{key!r} not {want!r} within {bound} s: {await ask(source, key)!r}")

    async def main() -> None:
        nonlocal source
        source = make(spec)
        await source.open()
        try:
            for _ in range(3):
                assert await ask(source, b"k") == b"200 old\n"
                assert await ask(source, b"new") == b"500 \n"
            if layout == "string":
                await asyncio.to_thread(rset, node, "SET", "chg:k", "changed")
                await asyncio.to_thread(rset, node, "SET", "chg:new", "added")
                await asyncio.to_thread(rset, node, "DEL", "chg:gone")
            else:
                await asyncio.to_thread(rset, node, "HSET", "chg", "k", "changed", "new", "added")
                await asyncio.to_thread(rset, node, "HDEL", "chg", "gone")
            await until(b"k", b"200 changed\n")
            await until(b"new", b"200 added\n")
            await until(b"gone", b"500 \n")
        finally:
            await source.close()

    source: Any = None
    run(main())


def test_redis_killed_mid_load(fresh: Any) -> None:
    """Lookups while Redis is killed and restarted: every answer is the right value or
    TEMP/400, never "not found"; service resumes within seconds of the restart."""
    entries = {b"k%d" % n: b"v%d" % n for n in range(200)}
    fill(fresh, "load", entries=entries)

    async def main() -> None:
        source = make(f"m={fresh.url}?hash=load&deadline=1&cache_entries=50")
        await source.open()
        answers: list[bytes] = []
        stop = False

        async def client(n: int) -> None:
            i = n
            while not stop:
                key = b"k%d" % (i % 200)
                reply = await ask(source, key, i % 2 == 0)
                answers.append(reply)
                value = entries[key]
                assert reply in (b"200 " + value + b"\n", b"%d:OK %b," % (len(value) + 3, value)) or temporary(reply), reply
                i += 7
                await asyncio.sleep(0.001)

        clients = [asyncio.ensure_future(client(n)) for n in range(16)]
        try:
            await asyncio.sleep(0.5)
            fresh.kill()
            await asyncio.sleep(1.5)
            assert not source.healthy()
            during = len(answers)
            fresh.start()
            fill(fresh, "load", entries=entries)
            restarted = time.monotonic()
            while not (source.healthy() and not temporary(await ask(source, b"k1"))):
                assert time.monotonic() - restarted < 5, "not resumed within 5 s"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        finally:
            stop = True
            await asyncio.gather(*clients)
            await source.close()
        assert any(temporary(a) for a in answers[:during])
        assert not any(temporary(a) for a in answers[-20:])
        assert source.outage.errors >= 1 and source.reconnects >= 1

    run(main())


def test_slow_redis_hits_the_deadline(fresh: Any) -> None:
    fill(fresh, "slow")

    async def main() -> None:
        source = make(f"m={fresh.url}?hash=slow&deadline=0.5")
        await source.open()
        try:
            sleeper = asyncio.ensure_future(asyncio.to_thread(rset, fresh, "DEBUG", "SLEEP", "2"))
            await asyncio.sleep(0.1)
            start = time.monotonic()
            replies = await asyncio.gather(ask(source, b"a@x"), ask(source, b"nobody", False))
            took = time.monotonic() - start
            assert temporary(replies[0]) and temporary(replies[1]), replies
            assert took < 1.5, took
            await sleeper
            # after the sleep: answers again within the backoff
            deadline = time.monotonic() + 5
            while temporary(await ask(source, b"a@x")):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert await ask(source, b"a@x") == b"200 alice\n"
        finally:
            await source.close()

    run(main())


def test_snapshot_served_through_outage(fresh: Any) -> None:
    fill(fresh, "snap")

    async def main() -> None:
        source = make(f"m={fresh.url}?hash=snap&mode=snapshot&deadline=0.5")
        await source.open()
        try:
            fresh.kill()
            await asyncio.sleep(2.5)
            assert not source.healthy()
            assert await ask(source, b"a@x") == b"200 alice\n"
            metrics = {s.name: s.value for s in source.metrics()}
            assert metrics["snapshot_age_seconds"] >= 2
            fresh.start()
            fill(fresh, "snap", entries={b"a@x": b"after"})
            deadline = time.monotonic() + 6
            while await ask(source, b"a@x") != b"200 after\n":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            await source.close()

    run(main())


def test_stale_within_grace(fresh: Any) -> None:
    fill(fresh, "stale")

    async def main() -> None:
        source = make(f"m={fresh.url}?hash=stale&deadline=0.5&stale_grace=60")
        await source.open()
        try:
            assert await ask(source, b"a@x") == b"200 alice\n"
            assert await ask(source, b"nobody") == b"500 \n"
            fresh.kill()
            await asyncio.sleep(0.3)
            assert await ask(source, b"a@x") == b"200 alice\n"  # stale, counted
            assert temporary(await ask(source, b"nobody"))  # a "not found" is never stale
            assert source.stale_served >= 1
        finally:
            await source.close()

    run(main())


def test_bad_values(node: Any) -> None:
    """A hash where a string is expected: TEMP, logged, no crash; a value too long for
    tcp_table: 400 (socketmap: OK); a cache size of 0 still answers."""
    rset(node, "HSET", "bad:k", "f", "v")
    rset(node, "SET", "bad:long", "x" * 5000)

    async def main() -> None:
        source = make(f"m={node.url}?prefix=bad:&cache_entries=0")
        await source.open()
        try:
            assert temporary(await ask(source, b"k"))
            assert temporary(await ask(source, b"k", False))
            assert (await ask(source, b"long")).startswith(b"400 value too long")
            assert (await ask(source, b"long", False)).startswith(b"5003:OK xxx")
            assert len(source.cache) == 0
        finally:
            await source.close()

    run(main())


def test_single_flight_and_pipelining(node: Any) -> None:
    fill(node, "sf")

    async def main() -> None:
        source = make(f"m={node.url}?hash=sf")
        await source.open()
        try:
            before = source.latency_count
            replies = await asyncio.gather(*[ask(source, key) for key in [b"a@x"] * 50 + [b"x%d" % n for n in range(50)]])
            assert replies[:50] == [b"200 alice\n"] * 50
            assert replies[50:] == [b"500 \n"] * 50
            assert source.latency_count - before == 1  # one pipeline for all misses
        finally:
            await source.close()

    run(main())


def test_cache_memory_bounded_under_scan(node: Any) -> None:
    import redis

    client = redis.Redis(host=node.host, port=node.port)
    client.delete("scan")
    client.hset("scan", mapping={b"k%d" % n: b"v" * 100 for n in range(20_000)})
    client.close()

    async def main() -> None:
        source = make(f"m={node.url}?hash=scan&cache_entries=1000&cache_bytes=300000")
        await source.open()
        try:
            for start in range(0, 30_000, 500):
                await asyncio.gather(*[ask(source, b"k%d" % n) for n in range(start, start + 500)])
                assert len(source.cache) <= 1000 and source.cache.bytes <= 300_000
            assert len(source.cache._queue) <= 2 * len(source.cache) + 1024
        finally:
            await source.close()

    run(main())


def test_bad_configuration(node: Any, tmp_path: Path) -> None:
    for spec, words in [
        (f"m=foo://x?hash=h", "scheme"),
        (f"m={node.url}", "hash=NAME or prefix"),
        (f"m={node.url}?hash=h&prefix=p", "one of hash and prefix"),
        (f"m={node.url}?prefix=p&mode=snapshot", "snapshot mode needs the hash layout"),
        (f"m={node.url}?hash=h&deadline=120", "deadline"),
        (f"m={node.url}?hash=h&ttl=-1", "0 or more"),
        (f"m={node.url}?hash=h&nonsense_option=1", None),  # passed to redis-py: fails at open
        (f"{node.url}?hash=h", "NAME="),
        ("m=redis+sentinel://localhost/svc?hash=h", "host:port"),
    ]:
        if words is None:
            continue
        with pytest.raises(SourceError, match=words):
            make(spec)

    async def startup(spec: str) -> str:
        source = make(spec)
        with pytest.raises(SourceError) as info:
            await source.open()
        await source.close()
        return str(info.value)

    # wrong password, nobody listening, unknown Sentinel service: one clear line
    rset(node, "CONFIG", "SET", "requirepass", "secret")
    try:
        message = run(startup(f"m=redis://:wrong@127.0.0.1:{node.port}?hash=h"))
        assert "cannot use Redis" in message and "wrong" not in message.replace("WRONGPASS", "")
    finally:
        import redis

        redis.Redis(host=node.host, port=node.port, password="secret").config_set("requirepass", "")
    assert "cannot use Redis" in run(startup(f"m=redis://127.0.0.1:1?hash=h&deadline=0.5"))
    sentinel = RedisNode(tmp_path / "s", sentinel_conf="").start()
    try:
        message = run(startup(f"m=redis+sentinel://127.0.0.1:{sentinel.port}/nosuch?hash=h&deadline=1"))
        assert "nosuch" in message or "MasterNotFound" in message, message
    finally:
        sentinel.kill()


def test_sentinel_failover(tmp_path: Path) -> None:
    require_redis()
    group = Sentinels(tmp_path).start()
    try:
        fill(group.primary, "fo")
        # Replication is asynchronous: a key the replica has not received yet is lost
        # by the failover, in Redis, and then truly not found. Wait until it has it.
        import redis

        primary = redis.Redis(host=group.primary.host, port=group.primary.port)
        assert primary.execute_command("WAIT", 1, 10000) >= 1, "the replica did not catch up"
        primary.close()

        async def main() -> None:
            source = make(f"m={group.url}?hash=fo&deadline=1")
            await source.open()
            answers: list[bytes] = []
            try:
                assert await ask(source, b"a@x") == b"200 alice\n"
                first = group.master_port()
                group.primary.kill()
                start = time.monotonic()
                while True:
                    reply = await ask(source, b"a@x")
                    answers.append(reply)
                    assert not not_found(reply), reply
                    if group.master_port() != first and reply == b"200 alice\n" and source.healthy():
                        break
                    assert time.monotonic() - start < 30, "no failover within 30 s"
                    await asyncio.sleep(0.05)
                assert group.master_port() == group.replica.port
                assert any(temporary(a) for a in answers)
            finally:
                await source.close()

        run(main())
    finally:
        group.stop()


def test_cluster(tmp_path: Path) -> None:
    require_redis()
    cluster = Cluster(tmp_path).start()
    try:
        entries = {b"user%d@x" % n: b"u%d" % n for n in range(100)}
        import redis.cluster

        rc = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
        for key, value in entries.items():
            rc.set(b"c:" + key, value)
        rc.hset("chash", mapping=entries)

        async def main() -> None:
            for spec in (f"m={cluster.url}?prefix=c:", f"m={cluster.url}?hash=chash&mode=snapshot"):
                source = make(spec)
                await source.open()
                try:
                    replies = await asyncio.gather(*[ask(source, k) for k in entries])
                    assert replies == [b"200 " + v + b"\n" for v in entries.values()]
                    assert await ask(source, b"nobody") == b"500 \n"
                    assert source.healthy()
                    if "prefix" in spec:  # invalidation from every primary
                        await asyncio.to_thread(rc.set, b"c:user7@x", b"changed")
                        deadline = time.monotonic() + 1
                        while await ask(source, b"user7@x") != b"200 changed\n":
                            assert time.monotonic() < deadline
                            await asyncio.sleep(0.01)
                finally:
                    await source.close()

        run(main())
        rc.close()
        # map-load into a Cluster, both layouts; its primaries have no replicas: the
        # load is live, the wait fails naming each primary
        mapfile = tmp_path / "virtual"
        mapfile.write_bytes(b"a@x alice\nb@x bob\n")
        done = map_load(mapfile, cluster.url, "--hash", "loaded", "--version-key",
                        "{loaded}.version")
        assert done.returncode == 0, done.stderr
        assert cluster.cli("HGET", "loaded", "b@x").strip() == "bob"
        assert cluster.cli("GET", "{loaded}.version").strip() == "1"
        done = map_load(mapfile, cluster.url, "--prefix", "lp:", "--keep-old", "0")
        assert done.returncode == 0, done.stderr
        version = cluster.cli("GET", "lp:").strip()
        assert cluster.cli("GET", f"lp:{version}:a@x").strip() == "alice"
        mapfile.write_bytes(b"a@x alice2\n")
        done = map_load(mapfile, cluster.url, "--hash", "loaded", "--wait-replicas", "1",
                        "--wait-timeout", "0.2")
        assert done.returncode == 1, done
        assert len(done.stderr.splitlines()) == 1, done.stderr
        for n in cluster.nodes:
            assert f"127.0.0.1:{n.port}: 0 of 1" in done.stderr
        assert cluster.cli("HGET", "loaded", "a@x").strip() == "alice2"
    finally:
        cluster.stop()


def map_load(mapfile: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "txframe", "map-load", str(mapfile), "--redis", url, *args],
                          capture_output=True, text=True, timeout=60)


def test_map_load(node: Any, tmp_path: Path) -> None:
    mapfile = tmp_path / "virtual"
    mapfile.write_bytes(b"A@X alice\nb@x bob\n\"two words\" v 1\n")

    def load(*args: str) -> subprocess.CompletedProcess[str]:
        return map_load(mapfile, node.url, *args)

    done = load("--hash", "loaded", "--version-key", "loaded.version")
    assert done.returncode == 0, done.stderr

    async def main(spec: str, key: bytes, want: bytes) -> None:
        source = make(spec)
        await source.open()
        try:
            assert await ask(source, key) == want
        finally:
            await source.close()

    run(main(f"m={node.url}?hash=loaded&mode=snapshot&version_key=loaded.version", b"a@x", b"200 alice\n"))
    rset(node, "SET", "lp:", "old")
    rset(node, "SET", "lp:old:stale", "x")
    done = load("--prefix", "lp:", "--keep-old", "0")
    assert done.returncode == 0, done.stderr
    run(main(f"m={node.url}?prefix=lp:&versioned=1", b"two words", b"200 v%201\n"))
    assert rset(node, "EXISTS", "lp:old:stale") == 0
    mapfile.write_bytes(b"novalue\n")
    done = load("--hash", "loaded")
    assert done.returncode == 1 and "nothing loaded" in done.stderr


@pytest.mark.parametrize("layout", ["--hash", "--prefix"])
def test_map_load_waits_for_replicas(tmp_path: Path, layout: str) -> None:
    require_redis()
    primary = RedisNode(tmp_path / "primary").start()
    replica = RedisNode(tmp_path / "replica", args=("--replicaof", primary.host, str(primary.port)))
    mapfile = tmp_path / "virtual"
    mapfile.write_bytes(b"a@x alice\nb@x bob\n")

    def load(*args: str) -> subprocess.CompletedProcess[str]:
        return map_load(mapfile, primary.url, layout, "wr", "--keep-old", "0", *args) \
            if layout == "--prefix" else map_load(mapfile, primary.url, layout, "wr", *args)

    def on_replica(key: str) -> str:
        if layout == "--hash":
            return replica.cli("HGET", "wr", key).strip()
        return replica.cli("GET", f"wr{replica.cli('GET', 'wr').strip()}:{key}").strip()

    try:
        replica.start()
        wait_for(lambda: "master_link_status:up" in replica.cli("INFO", "replication"), 10)
        done = load("--wait-replicas", "1")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith("acknowledged by 1 replica(s)"), done.stdout
        assert on_replica("a@x") == "alice"  # acknowledged: there already
        # more replicas asked for than there are: the map is live, the run fails in one line
        mapfile.write_bytes(b"a@x alice2\n")
        done = load("--wait-replicas", "2", "--wait-timeout", "0.3")
        assert done.returncode == 1, done
        assert done.stderr.count("\n") == 1, done.stderr
        assert "the new map is live on the primary" in done.stderr
        assert "the primary: 1 of 2" in done.stderr and "within 0.3 s" in done.stderr
        # a replica that stopped reading never acknowledges
        replica.pause()
        try:
            mapfile.write_bytes(b"a@x alice3\n")
            done = load("--wait-replicas", "1", "--wait-timeout", "0.3")
            assert done.returncode == 1 and "the primary: 0 of 1" in done.stderr, done
        finally:
            replica.resume()
        wait_for(lambda: on_replica("a@x") == "alice3", 10)
        for bad in (["--wait-replicas", "0"], ["--wait-replicas", "x"], ["--wait-timeout", "-1"],
                    ["--wait-timeout", "nan"]):
            done = load(*bad)
            assert done.returncode == 2 and "argument --wait-" in done.stderr, (bad, done)
    finally:
        replica.kill()
        primary.kill()


def test_runtime_auth_failure_logged_once_per_outage(fresh: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A password set while serving: TEMP for every lookup, one log line for the
    outage (not one per request), one when it ends."""
    fill(fresh, "auth")

    async def main() -> None:
        source = make(f"m={fresh.url}?hash=auth&deadline=0.5&cache_entries=0")
        await source.open()
        try:
            assert await ask(source, b"a@x") == b"200 alice\n"
            import redis

            admin = redis.Redis(host=fresh.host, port=fresh.port, password="secret")
            await asyncio.to_thread(rset, fresh, "CONFIG", "SET", "requirepass", "secret")
            await asyncio.to_thread(admin.client_kill_filter, _type="normal", skipme=True)
            with caplog.at_level("WARNING", logger="txframe.serve_map.redis"):
                for _ in range(30):
                    assert temporary(await ask(source, b"a@x"))
                    await asyncio.sleep(0.05)
                outage = [r for r in caplog.records if "unavailable" in r.getMessage()]
                assert len(outage) == 1, [r.getMessage() for r in caplog.records]
                await asyncio.to_thread(admin.config_set, "requirepass", "")
                deadline = time.monotonic() + 5
                while temporary(await ask(source, b"a@x")):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                assert any("reachable again" in r.getMessage() for r in caplog.records)
        finally:
            await source.close()

    run(main())


def test_unix_socket(tmp_path: Path) -> None:
    require_redis()
    path = tmp_path / "redis.sock"
    node = RedisNode(tmp_path / "redis", args=("--unixsocket", str(path), "--unixsocketperm", "700")).start()
    try:
        fill(node, "ux")

        async def main() -> None:
            for mode in ("lookup", "snapshot"):
                source = make(f"m=unix://{path}?db=0&hash=ux&mode={mode}")
                await source.open()
                try:
                    assert await ask(source, b"a@x") == b"200 alice\n"
                    assert await ask(source, b"nobody", False) == b"9:NOTFOUND ,"
                    assert source.healthy()
                finally:
                    await source.close()

        run(main())
    finally:
        node.kill()


def test_close_leaves_no_connection(fresh: Any) -> None:
    fill(fresh, "cl")

    async def main() -> None:
        for mode in ("lookup", "snapshot"):
            source = make(f"m={fresh.url}?hash=cl&mode={mode}")
            await source.open()
            assert await ask(source, b"a@x") == b"200 alice\n"
            await source.close()

    run(main())
    time.sleep(0.2)
    clients = [line for line in fresh.cli("CLIENT", "LIST").splitlines() if line.strip()]
    assert len(clients) == 1, clients  # redis-cli's own
