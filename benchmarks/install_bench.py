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
    python benchmarks/install_bench.py --callgrind     # instructions of the in-memory
                                                       # workloads (~10 min, valgrind)

The in-memory workloads time the protocol alone (no sockets), in CPU time (the
process's, so that other processes on a shared machine count less): the framing and
the protocol's own Python, which is where install() can help. wrk measures the whole
server: the reactor, sockets and twisted.web's request handling too; beside wrk's
requests per second, the report gives requests per second of the server's CPU time
(from /proc), which a busy machine disturbs less.
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
WARM = {"smtp-data": 100_000, "irc-burst": 1_000, "http-burst": 10_000}
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
    started = time.process_time()
    for chunk in chunks:
        server.dataReceived(chunk)
    server.dataReceived(b".\r\n")
    elapsed = time.process_time() - started
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
    started = time.process_time()
    for chunk in chunks:
        client.dataReceived(chunk)
    elapsed = time.process_time() - started
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
    started = time.process_time()
    channel.dataReceived(data)
    elapsed = time.process_time() - started
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


def counted(argv: list[str]) -> None:
    """For --callgrind: warm every in-memory workload up on a small size, then run
    *workload* (``none`` for the baseline) once at *size*."""
    implementation, workload, size = argv[0], argv[1], int(argv[2])
    _check_installed(implementation)
    runs = {"smtp-data": smtp_data, "irc-burst": irc_burst, "http-burst": http_burst}
    for name, run in runs.items():
        run(WARM[name])
    if workload != "none":
        runs[workload](size)


def measured(argv: list[str]) -> None:
    implementation, workload, size, repeats = argv[0], argv[1], int(argv[2]), int(argv[3])
    _check_installed(implementation)
    run = {"smtp-data": smtp_data, "irc-burst": irc_burst, "http-burst": http_burst}[workload]
    print(json.dumps([run(size) for _ in range(repeats)]))


# -- the driver -----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time a process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stream:
        fields = stream.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, workload: str, seconds: float, script: str) -> tuple[float, int]:
    """wrk's requests per second, and the number of requests."""
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
    count = int(re.search(r"(\d+) requests in", out).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), count


def instructions(implementation: str, workload: str, size: int) -> int:
    cmd, env = command(implementation, "count", implementation, workload, str(size))
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    count = int(re.search(r"Collected : (\d+)", done.stderr).group(1))
    print(f"{implementation:9} {workload:11} {count:,} instructions", file=sys.stderr)
    return count


def callgrind(workloads: list[str], sizes: dict[str, int]) -> None:
    """Instructions per workload (callgrind; each minus a run that only warms up),
    two processes at a time: repeatable whatever else the machine runs."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(i, w) for i in IMPLEMENTATIONS for w in ["none", *workloads]]
    with ThreadPoolExecutor(2) as pool:
        counts = dict(zip(jobs, pool.map(lambda j: instructions(j[0], j[1], sizes.get(j[1], 0)), jobs)))
    print("Instructions (valgrind --tool=callgrind), each workload once, less a run that "
          "only warms up; × is Twisted's count over txframe's.\n")
    print("| workload | size | Twisted | txframe compiled | × | txframe pure | × |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for workload in workloads:
        cells = {i: counts[(i, workload)] - counts[(i, "none")] for i in IMPLEMENTATIONS}
        row = [workload, f"{sizes[workload]:,}", f"{cells['twisted'] / 1e6:,.0f} M"]
        for implementation in ("compiled", "pure"):
            row += [f"{cells[implementation] / 1e6:,.0f} M",
                    f"{cells['twisted'] / cells[implementation]:.2f}"]
        print("| " + " | ".join(row) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per wrk run")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated workloads")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions of the in-memory workloads instead (valgrind)")
    args = parser.parse_args()
    workloads = [w for w in (*WEB, *INPROC) if not args.only or w in args.only.split(",")]
    sizes = {"smtp-data": 10_000_000, "irc-burst": 200_000, "http-burst": 1 << 20}
    if args.callgrind:
        callgrind([w for w in workloads if w in INPROC], sizes)
        return 0
    repeats = 3
    if args.quick:
        args.rounds, args.seconds, repeats = 2, 1.0, 1
        sizes = {"smtp-data": 1_000_000, "irc-burst": 20_000, "http-burst": 1 << 18}
    results: dict[str, dict[str, list[float]]] = {w: {i: [] for i in IMPLEMENTATIONS} for w in workloads}
    cpu: dict[str, dict[str, list[float]]] = {w: {i: [] for i in IMPLEMENTATIONS} for w in WEB}
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
                        process, port = servers[implementation]
                        before = cpu_seconds(process.pid)
                        rate, count = wrk(port, workload, args.seconds, lua.name)
                        value = [rate]
                        cpu[workload][implementation].append(
                            count / max(cpu_seconds(process.pid) - before, 0.01))
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
    cpu = {f"{w} (per server CPU s)": v for w, v in cpu.items() if w in workloads}
    report({**results, **cpu}, args, sizes)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({**results, **cpu}, stream, indent=1)
    return 0


def report(results, args, sizes) -> None:
    print(f"txframe.install() on Twisted's protocols: median of {args.rounds} interleaved rounds "
          f"(min-max in brackets); wrk {args.seconds:g} s per run (req/s: wall clock; req/CPU s: "
          "requests per second of the server process's CPU time, steadier on a busy machine); "
          "in-memory workloads: the median of 3 runs per round, in CPU time.\n")
    print("| workload | unit | Twisted | txframe compiled | × | txframe pure | × |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for workload, cells in results.items():
        base = statistics.median(cells["twisted"])
        row = [workload, UNITS.get(workload, "req/CPU s")]
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
    elif sys.argv[1:2] == ["count"]:
        counted(sys.argv[2:])
    else:
        sys.exit(main())
