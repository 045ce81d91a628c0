#!/usr/bin/env python
"""Twisted's own protocols as Twisted ships them and under ``txframe run`` (compiled
and pure), side by side: interleaved rounds, medians.

Each measurement runs in its own process, started plainly (``twisted``) or under
``python -m txframe run`` (``compiled``; ``pure`` with TXFRAME_NO_EXTENSIONS=1), since
install() must come before Twisted's protocols are imported. Each round measures every
workload once per implementation, in a rotating order, so a busy shared machine slows
them alike; the report gives each cell's median and the spread (min-max) of its rounds.

Workloads:
  web-keepalive   twisted.web's server (a Resource answering 2 bytes) under wrk:
                  keep-alive GETs, 16 connections, one wrk thread
  web-40-headers  the same, each GET carrying 40 extra headers of 50 bytes
  web-pipelined   the same, 16 GETs per write (a wrk Lua script)
  smtp-data       a 10 MB message (78-byte lines) sent as DATA into Twisted's ESMTP
                  server, in 64 KiB chunks, on a StringTransport: bytes/s
  irc-burst       200,000 PRIVMSG lines into IRCClient in 64 KiB chunks: lines/s
  http-burst      1 MiB of small pipelined GETs in one chunk (what one read from a
                  fast client can bring) into twisted.web's HTTPChannel: requests/s

    python benchmarks/install_bench.py                 # ~4 min on 2 busy cores
    python benchmarks/install_bench.py --quick         # smoke run, ~40 s
    python benchmarks/install_bench.py --only smtp-data,http-burst --rounds 7
    python benchmarks/install_bench.py --json out.json

The in-memory workloads time the protocol alone (no sockets): the framing and the
protocol's own Python, which is where install() can help. wrk measures the whole
server: the reactor, sockets and twisted.web's request handling too.
Prints Markdown; progress goes to stderr. The exit code is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

IMPLEMENTATIONS = ("twisted", "compiled", "pure")
WEB = ("web-keepalive", "web-40-headers", "web-pipelined")
INPROC = ("smtp-data", "irc-burst", "http-burst")
UNITS = {
    "web-keepalive": "req/s", "web-40-headers": "req/s", "web-pipelined": "req/s",
    "smtp-data": "MB/s", "irc-burst": "lines/s", "http-burst": "req/s",
}
CHUNK = 65536
PIPELINE_LUA = """
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/") end
  req = table.concat(r)
end
request = function() return req end
"""


def command(implementation: str, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("TXFRAME_INSTALL", "PYTHONPATH")}
    script = [os.path.abspath(__file__), *args]
    if implementation == "twisted":
        return [sys.executable, *script], env
    if implementation == "pure":
        env["TXFRAME_NO_EXTENSIONS"] = "1"
    return [sys.executable, "-m", "txframe", "run", *script], env


# -- the workloads, run in the measured process ---------------------------------------


def _check_installed(implementation: str) -> None:
    import twisted.protocols.basic as basic

    installed = basic.LineReceiver.__module__ == "txframe.basic"
    if installed != (implementation != "twisted"):
        raise SystemExit(f"{implementation}: install state wrong ({basic.LineReceiver})")
    if installed:
        from txframe import implementation as actual

        if actual != implementation:
            raise SystemExit(f"asked for {implementation}, txframe is {actual}")


def smtp_data(size: int) -> float:
    from twisted.internet import defer
    from twisted.internet.testing import StringTransport
    from twisted.mail import smtp
    from zope.interface import implementer

    received = [0]

    @implementer(smtp.IMessage)
    class Message:
        def lineReceived(self, line):
            received[0] += len(line) + 2

        def eomReceived(self):
            return defer.succeed(b"ok")

        def connectionLost(self):
            pass

    @implementer(smtp.IMessageDelivery)
    class Delivery:
        def receivedHeader(self, helo, origin, recipients):
            return b"Received: by the benchmark"

        def validateFrom(self, helo, origin):
            return origin

        def validateTo(self, user):
            return Message

    line = b"x" * 78 + b"\r\n"
    body = line * (size // len(line))
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    server = smtp.ESMTP()
    server.timeout = None
    server.delivery = Delivery()
    server.host = b"bench"
    transport = StringTransport()
    server.makeConnection(transport)
    server.dataReceived(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
    assert b"354" in transport.value(), transport.value()
    transport.clear()
    started = time.perf_counter()
    for chunk in chunks:
        server.dataReceived(chunk)
    server.dataReceived(b".\r\n")
    elapsed = time.perf_counter() - started
    assert b"250" in transport.value() and received[0] >= len(body), (transport.value(), received)
    return len(body) / elapsed / 1e6


def irc_burst(lines: int) -> float:
    from twisted.internet.testing import StringTransport
    from twisted.words.protocols import irc

    seen = [0]

    class Client(irc.IRCClient):
        performLogin = 0

        def privmsg(self, user, channel, message):
            seen[0] += 1

    data = b"".join(
        b":nick%d!user@host.example PRIVMSG #channel :message number %d, of a burst\r\n" % (i % 50, i)
        for i in range(lines)
    )
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    client = Client()
    client.makeConnection(StringTransport())
    started = time.perf_counter()
    for chunk in chunks:
        client.dataReceived(chunk)
    elapsed = time.perf_counter() - started
    assert seen[0] == lines, seen
    return lines / elapsed


def http_burst(size: int) -> float:
    from twisted.internet.testing import StringTransport
    from twisted.web import resource, server

    class Tiny(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            return b"ok"

    request = b"GET /r HTTP/1.1\r\nHost: bench\r\nUser-Agent: b\r\n\r\n"
    count = size // len(request)
    site = server.Site(Tiny(), timeout=None)
    site.log = lambda request: None
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    data = request * count
    started = time.perf_counter()
    channel.dataReceived(data)
    elapsed = time.perf_counter() - started
    answered = transport.value().count(b"HTTP/1.1 200 OK")
    assert answered == count, (answered, count)
    return count / elapsed


def serve() -> None:
    """twisted.web on 127.0.0.1:0; print the port; stop when stdin closes."""
    from twisted.internet import reactor, stdio
    from twisted.internet.protocol import Protocol
    from twisted.web import resource, server

    class Tiny(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            return b"ok"

    site = server.Site(Tiny())
    site.log = lambda request: None
    port = reactor.listenTCP(0, site, backlog=128, interface="127.0.0.1")

    class Stop(Protocol):
        def connectionLost(self, reason):
            reactor.stop()

    stdio.StandardIO(Stop())
    print(port.getHost().port, flush=True)
    reactor.run()


def measured(argv: list[str]) -> None:
    implementation, workload, size, repeats = argv[0], argv[1], int(argv[2]), int(argv[3])
    _check_installed(implementation)
    run = {"smtp-data": smtp_data, "irc-burst": irc_burst, "http-burst": http_burst}[workload]
    print(json.dumps([run(size) for _ in range(repeats)]))


# -- the driver -----------------------------------------------------------------------


def wrk(port: int, workload: str, seconds: float, script: str) -> float:
    args = ["wrk", "-t1", "-c16", f"-d{seconds:g}s"]
    if workload == "web-40-headers":
        for i in range(40):
            args += ["-H", f"X-Bench-Header-{i:02d}: " + "v" * 50]
    if workload == "web-pipelined":
        args += ["-s", script]
    out = subprocess.run([*args, f"http://127.0.0.1:{port}/"], capture_output=True,
                         text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per wrk run")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated workloads")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    workloads = [w for w in (*WEB, *INPROC) if not args.only or w in args.only.split(",")]
    sizes = {"smtp-data": 10_000_000, "irc-burst": 200_000, "http-burst": 1 << 20}
    repeats = 3
    if args.quick:
        args.rounds, args.seconds, repeats = 2, 1.0, 1
        sizes = {"smtp-data": 1_000_000, "irc-burst": 20_000, "http-burst": 1 << 18}
    results: dict[str, dict[str, list[float]]] = {w: {i: [] for i in IMPLEMENTATIONS} for w in workloads}
    servers = {}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(PIPELINE_LUA)
    try:
        if any(w in WEB for w in workloads):
            for implementation in IMPLEMENTATIONS:
                cmd, env = command(implementation, "serve", implementation)
                process = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, text=True)
                servers[implementation] = (process, int(process.stdout.readline()))
            for implementation, (_, port) in servers.items():  # warm up
                wrk(port, "web-keepalive", 1, lua.name)
        for round_ in range(args.rounds):
            order = IMPLEMENTATIONS[round_ % 3:] + IMPLEMENTATIONS[: round_ % 3]
            for workload in workloads:
                for implementation in order:
                    if workload in WEB:
                        value = [wrk(servers[implementation][1], workload, args.seconds, lua.name)]
                    else:
                        cmd, env = command(implementation, "measure", implementation, workload,
                                           str(sizes[workload]), str(repeats))
                        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                        if done.returncode:
                            raise RuntimeError(done.stderr)
                        value = [statistics.median(json.loads(done.stdout))]
                    results[workload][implementation] += value
                    print(f"round {round_ + 1}: {workload:15} {implementation:9} {value[0]:12.1f}",
                          file=sys.stderr)
    finally:
        for process, _ in servers.values():
            process.stdin.close()
            process.wait(10)
        os.unlink(lua.name)
    report(results, args, sizes)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(results, stream, indent=1)
    return 0


def report(results, args, sizes) -> None:
    print(f"txframe.install() on Twisted's protocols: median of {args.rounds} interleaved rounds "
          f"(min-max in brackets); wrk {args.seconds:g} s per run, in-memory workloads the "
          "median of 3 runs per round.\n")
    print("| workload | unit | Twisted | txframe compiled | × | txframe pure | × |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for workload, cells in results.items():
        base = statistics.median(cells["twisted"])
        row = [workload, UNITS[workload]]
        for implementation in IMPLEMENTATIONS:
            values = cells[implementation]
            median = statistics.median(values)
            row.append(f"{median:,.0f} [{min(values):,.0f}-{max(values):,.0f}]"
                       if median >= 100 else f"{median:.2f} [{min(values):.2f}-{max(values):.2f}]")
            if implementation != "twisted":
                row.append(f"{median / base:.2f}")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        _check_installed(sys.argv[2])
        serve()
    elif sys.argv[1:2] == ["measure"]:
        measured(sys.argv[2:])
    else:
        sys.exit(main())
