"""txframe.mapserver in process: the source interface as the protocols use it, with
sources that answer later (as Redis sources do): replies in request order, failures
as TEMP / 400 (never "not found"), reading paused while too many replies wait; and
the key rules. Real sockets on 127.0.0.1, asyncio's loop."""

from __future__ import annotations

import asyncio
import random

import pytest

from txframe.mapproto import quote
from txframe.mapserver import protocols
from txframe.mapserver.keys import RULES, fold_utf8, folding
from txframe.mapserver.protocols import MapServer
from txframe.mapserver.sources import LookupFailed, ValueSource


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """Run a coroutine function on asyncio's loop, or uvloop's (as serve-map does)."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return lambda main: uvloop.run(main())
    return lambda main: asyncio.run(main())


class Later(ValueSource):
    """Values after a random delay; ``fail*`` keys fail, ``boom`` breaks."""

    def __init__(self, name: str, delay: float = 0.01) -> None:
        super().__init__(name)
        self.delay = delay
        self.asked = 0

    def get(self, key: bytes):
        self.asked += 1
        if key == b"now":
            return b"at once"

        async def later():
            await asyncio.sleep(random.random() * self.delay)
            if key.startswith(b"fail"):
                raise LookupFailed("backend down", temporary=key != b"failperm")
            if key == b"boom":
                raise RuntimeError("a bug")
            return None if key.startswith(b"miss") else b"value of " + key

        return later()


async def _serve(source, fold=None):
    server = MapServer([source], fold)
    loop = asyncio.get_running_loop()
    tcp = await loop.create_server(server.tcp_factory(source), "127.0.0.1", 0)
    sm = await loop.create_server(server.socketmap_factory(), "127.0.0.1", 0)
    return server, tcp, sm


async def _exchange(port: int, data: bytes, until: int, sep: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    got = b""
    while got.count(sep) < until:
        chunk = await asyncio.wait_for(reader.read(1 << 16), 10)
        assert chunk, got
        got += chunk
    writer.close()
    return got


def test_async_replies_in_request_order(run):
    async def main():
        source = Later("m")
        server, tcp, sm = await _serve(source)
        keys = [random.choice([b"k%d" % i, b"now", b"miss%d" % i, b"fail", b"failperm",
                               b"boom"]) for i in range(300)]
        got = await _exchange(tcp.sockets[0].getsockname()[1],
                              b"".join(b"get " + quote(k) + b"\n" for k in keys),
                              len(keys), b"\n")
        want = []
        for k in keys:
            if k == b"now":
                want.append(b"200 at%20once")
            elif k.startswith(b"miss"):
                want.append(b"500 ")
            elif k.startswith(b"fail"):
                want.append(b"400 backend down")
            elif k == b"boom":
                want.append(b"400 lookup failed: a bug")
            else:
                want.append(b"200 value%20of%20" + k)
        assert got.split(b"\n")[:-1] == want
        payload = b"".join(b"%d:m %b," % (len(k) + 2, k) for k in keys)
        got = await _exchange(sm.sockets[0].getsockname()[1], payload, len(keys), b",")
        replies = []
        while got:
            length, _, rest = got.partition(b":")
            replies.append(rest[: int(length)])
            got = rest[int(length) + 1 :]
        for k, reply in zip(keys, replies):
            if k.startswith(b"miss"):
                assert reply == b"NOTFOUND "
            elif k == b"failperm":
                assert reply == b"PERM backend down"
            elif k in (b"fail", b"boom"):
                assert reply.startswith(b"TEMP ")
            else:
                assert reply.startswith(b"OK ")
        assert source.counts["tcp", "failures"] == sum(
            k.startswith(b"fail") or k == b"boom" for k in keys)
        tcp.close()
        sm.close()

    run(main)


def test_reading_pauses_while_replies_wait(monkeypatch, run):
    """With MAX_WAITING replies waiting, the connection stops asking the source; it
    goes on as they complete."""
    monkeypatch.setattr(protocols, "MAX_WAITING", 8)

    async def main():
        gate = asyncio.Event()
        source = Later("m")
        slow_get = source.get

        def get(key):
            source.asked += 1

            async def gated():
                await gate.wait()
                return await slow_get(key)  # (counts once more)
            return gated()

        source.get = get
        server, tcp, _ = await _serve(source)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", tcp.sockets[0].getsockname()[1])
        writer.write(b"".join(b"get k%d\n" % i for i in range(100)))
        await asyncio.sleep(0.3)
        assert source.asked == 8  # paused at the bound: nothing more read
        gate.set()
        got = b""
        while got.count(b"\n") < 100:
            got += await asyncio.wait_for(reader.read(1 << 16), 10)
        assert got.split(b"\n")[:-1] == [b"200 value%%20of%%20k%d" % i for i in range(100)]
        writer.close()
        tcp.close()

    run(main)


@pytest.mark.parametrize("key", [b"Alice@Example.COM", "Straße".encode(), "ΣΑΣ".encode(),
                                 b"\xff\xfeABC", b"", "İx".encode()])
def test_every_rule_is_ascii_lower_on_ascii_and_utf8_folds_like_python(key):
    for rule in RULES:
        fold = folding(rule)
        if fold is not None and key.isascii():
            assert fold(key) == key.lower()  # the protocols inline this
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        assert fold_utf8(key) == key.lower()
    else:
        assert fold_utf8(key) == text.casefold().encode()


def test_keys_folded_before_the_source_sees_them(run):
    async def main():
        seen = []

        class Echo(ValueSource):
            def get(self, key):
                seen.append(key)
                return key

        source = Echo("m")
        server, tcp, _ = await _serve(source, folding("utf8"))
        got = await _exchange(tcp.sockets[0].getsockname()[1],
                              b"get " + quote("STRAßE".encode()) + b"\nget ABC\n", 2, b"\n")
        assert seen == [b"strasse", b"abc"]
        assert got == b"200 strasse\n200 abc\n"
        tcp.close()

    run(main)
