#!/usr/bin/env python
"""FTP data channel side by side: txframe's DTP (compiled and pure) against Twisted's.

Three measurements, each interleaved round by round (the implementations in an order
rotated every round, so that a noisy, shared machine slows them alike), the best run
of each kept:

* **LIST formatting, in process**: 100,000 directory entries as ``IFTPShell.list``
  gives them (names with a space, sizes, four ``filepath.Permissions``, times an hour
  apart, recent and older) sent through a DTP connected to a transport that keeps
  what it is given and, like a TCP transport that is never full, asks a pull producer
  for more at once. Twisted: ``FTP.ftp_LIST``'s loop, ``dtp.sendListResponse(
  _encodeName(name), attrs)`` per entry. txframe: ``dtp.sendListResponses(entries)``,
  what ``txframe.ftp.FTP.ftp_LIST`` calls. The outputs are first checked to be the
  same bytes. The garbage collector is off while timing.
* **LIST over loopback**: the same 100,000 entries (the directory ``/synthetic`` of
  ``ftp_servers.py``, built once per server) listed by ``curl`` from Twisted's FTP
  server with Twisted's DTP, and with txframe's (``txframe.ftp.FTPFactory``; compiled
  and pure formatter), each server in its own process; the server's CPU time per
  LIST (from ``/proc/PID/schedstat``) and the client's wall time.
* **RETR and STOR of a 100 MiB file over loopback**, by ``curl`` (to ``/dev/null``;
  from a file in the page cache), from and to the same two servers: throughput from
  the client's wall time (the whole curl run: login, PASV, transfer), and the
  server's CPU time per transfer. What each server sends and stores is checked
  (SHA-256), outside the timed runs.

Prints Markdown; progress goes to stderr.

    python benchmarks/ftp_bench.py                  # full run, ~1-1.5 min
    python benchmarks/ftp_bench.py --quick          # smoke run, small sizes
    python benchmarks/ftp_bench.py --check-targets  # also PASS/MISS for the targets
    python benchmarks/ftp_bench.py --json out.json  # also write the raw results

``compare.py --only ftp`` runs this too (not among compare.py's default families).
The exit code is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS_SCRIPT = os.path.join(HERE, "ftp_servers.py")
sys.path.insert(0, HERE)

import ftp_servers  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.protocols import ftp as twisted_ftp  # noqa: E402
from twisted.python import filepath  # noqa: E402

ENTRIES = 100_000
FILE_SIZE = 100 * 1024 * 1024
DEFAULT_ROUNDS = 5
QUICK_ENTRIES = 10_000
QUICK_FILE_SIZE = 16 * 1024 * 1024
QUICK_ROUNDS = 2
LISTS_PER_RUN = 3  # LIST commands per curl run (one connection), to time more than a tick
CLIENT_TIMEOUT = 600
IMPLEMENTATIONS = ("twisted", "compiled", "pure")
LABEL = {"twisted": "Twisted", "compiled": "compiled", "pure": "pure"}
SERVER_KIND = {"twisted": "twisted", "compiled": "txframe", "pure": "txframe-pure"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- LIST in process -------------------------------------------------------------------


class Sink(StringTransport):
    """Keeps what is written; asks a pull producer for more until it unregisters, as
    a TCP transport whose socket never fills would."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []
        self.write = self.chunks.append  # type: ignore[method-assign]

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        super().registerProducer(producer, streaming)
        while not streaming and self.producer is producer:
            producer.resumeProducing()


def dtp_class(impl: str) -> Any:
    """The DTP class of *impl*: Twisted's, or txframe's bound to that formatter."""
    if impl == "twisted":
        return twisted_ftp.DTP
    from txframe import ftp

    module = importlib.import_module(
        "txframe._listing_c" if impl == "compiled" else "txframe._listing_py"
    )
    formatter = module.ListFormatter(filepath.Permissions, filepath.RWX)
    return type("DTP", (ftp.DTP,), {"_formatter": formatter})


def list_runner(impl: str, entries: list[Any]) -> Callable[[], bytes]:
    """A function sending *entries* as LIST does, returning what was sent."""
    dtp_type = dtp_class(impl)

    def connected() -> Any:
        dtp = dtp_type()
        dtp.transport = Sink()
        dtp.isConnected = True
        return dtp

    if impl == "twisted":
        encode = twisted_ftp.FTP()._encodeName

        def run() -> bytes:
            dtp = connected()
            for name, attrs in entries:  # FTP.ftp_LIST's loop
                dtp.sendListResponse(encode(name), attrs)
            return b"".join(dtp.transport.chunks)
    else:

        def run() -> bytes:
            dtp = connected()
            done: list[Any] = []
            dtp.sendListResponses(entries).addBoth(done.append)
            assert done == [None], done
            return b"".join(dtp.transport.chunks)

    return run


def available(impl: str) -> bool:
    if impl == "compiled":
        try:
            importlib.import_module("txframe._listing_c")
        except ImportError:
            return False
    return True


def time_in_process(entries: list[Any], impls: list[str], rounds: int) -> dict[str, Any]:
    runners = {impl: list_runner(impl, entries) for impl in impls}
    outputs = {impl: runner() for impl, runner in runners.items()}
    reference = outputs["twisted"]
    for impl, output in outputs.items():
        if output != reference:
            raise SystemExit(f"LIST output of {impl} differs from Twisted's")
    best: dict[str, float] = {}
    for round_ in range(rounds):
        for impl in rotated(impls, round_):
            gc.collect()
            gc.disable()
            try:
                started = time.perf_counter()
                runners[impl]()
                elapsed = time.perf_counter() - started
            finally:
                gc.enable()
            best[impl] = min(best.get(impl, elapsed), elapsed)
    return {"seconds": best, "bytes": len(reference), "entries": len(entries)}


def held_before_consumer(impl: str, size: int) -> int:
    """Bytes a DTP holds once a client has sent *size* bytes, in reads of 64 KiB (as
    Twisted's TCP transport reads) that stop while the transport is paused, before any
    consumer is registered."""
    dtp = dtp_class(impl)()
    dtp.factory = type("Factory", (), {"deferred": Deferred()})()
    transport = StringTransport()
    dtp.makeConnection(transport)
    read = b"\0" * 65536
    sent = 0
    while sent < size and transport.producerState == "producing":
        dtp.dataReceived(read)
        sent += len(read)
    if impl == "twisted":
        return sum(map(len, dtp._buffer))
    return int(dtp._heldBytes)


def rotated(items: list[str], round_: int) -> list[str]:
    k = round_ % len(items)
    return items[k:] + items[:k]


# -- servers ---------------------------------------------------------------------------


class Server:
    def __init__(self, kind: str, root: str, synthetic: int, now: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, SERVERS_SCRIPT, kind, root, "--synthetic", str(synthetic),
             "--now", repr(now)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {kind} FTP server did not start")
        info = json.loads(line)
        self.port, self.pid, self.formatter = info["port"], info["pid"], info["formatter"]
        self.url = f"ftp://127.0.0.1:{self.port}/"

    def cpu(self) -> float:
        """CPU seconds the server has used."""
        try:
            with open(f"/proc/{self.pid}/schedstat") as f:
                return int(f.read().split()[0]) / 1e9
        except OSError:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def timed(server: Server, argv: list[str]) -> tuple[float, float, bytes]:
    """Run a client: its wall time, the server's CPU time meanwhile, its stdout."""
    cpu = server.cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, timeout=CLIENT_TIMEOUT)
    wall = time.perf_counter() - started
    used = server.cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()}")
    return wall, used, done.stdout


def time_servers(curl: str, servers: dict[str, Server], root: str, size: int,
                 rounds: int) -> dict[str, Any]:
    """LIST (the synthetic directory), RETR and STOR through curl, per server."""
    source = os.path.join(root, "big.bin")
    digest = sha256_file(source)
    results: dict[str, dict[str, dict[str, float]]] = {
        name: {} for name in ("list", "retr", "stor")
    }
    impls = list(servers)

    def keep(kind: str, impl: str, wall: float, cpu: float) -> None:
        cell = results[kind].setdefault(impl, {"wall": wall, "cpu": cpu})
        cell["wall"] = min(cell["wall"], wall)
        cell["cpu"] = min(cell["cpu"], cpu)

    listings = {}
    check = os.path.join(root, "check.bin")
    for impl, server in servers.items():  # first, check what each sends
        listings[impl] = subprocess.run(
            [curl, "-sS", server.url + "synthetic/"], capture_output=True, check=True
        ).stdout
        subprocess.run([curl, "-sS", "-o", check, server.url + "big.bin"], check=True)
        if sha256_file(check) != digest:
            raise SystemExit(f"RETR from {impl}: wrong data")
        os.unlink(check)
    if len(set(listings.values())) != 1:
        raise SystemExit("the servers' listings differ")
    size_written = ["-o", "/dev/null", "-w", "%{size_download} %{size_upload}"]
    for round_ in range(rounds):
        for impl in rotated(impls, round_):
            server = servers[impl]
            url = server.url + "synthetic/"
            wall, cpu, _ = timed(server, [curl, "-sS", "-o", "/dev/null"] + [url] * LISTS_PER_RUN)
            keep("list", impl, wall / LISTS_PER_RUN, cpu / LISTS_PER_RUN)
            if impl == "pure":
                continue  # RETR and STOR format nothing: the same code as compiled
            wall, cpu, out = timed(server, [curl, "-sS", *size_written, server.url + "big.bin"])
            if out.split()[0] != b"%d" % size:
                raise SystemExit(f"RETR from {impl}: {out!r} bytes")
            keep("retr", impl, wall, cpu)
            upload = os.path.join(root, f"up-{impl}.bin")
            wall, cpu, _ = timed(
                server, [curl, "-sS", "-T", source, server.url + f"up-{impl}.bin"]
            )
            if sha256_file(upload) != digest:
                raise SystemExit(f"STOR to {impl}: wrong data")
            os.unlink(upload)
            keep("stor", impl, wall, cpu)
    return results


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- report ----------------------------------------------------------------------------


def rate(value: float, unit: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×" if value < 10 else f"{value:.1f}×"


def table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if a == "l" else "--:" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    import twisted

    import txframe

    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "twisted": twisted.__version__,
        "txframe_implementation": txframe.implementation,
        "cpus": os.cpu_count(),
    }


def run(
    quick: bool = False, check: bool = False, rounds: int | None = None
) -> tuple[str, dict[str, Any]]:
    """Run everything; the Markdown report and the raw results."""
    started = time.perf_counter()
    entries_count = QUICK_ENTRIES if quick else ENTRIES
    size = QUICK_FILE_SIZE if quick else FILE_SIZE
    rounds = rounds or (QUICK_ROUNDS if quick else DEFAULT_ROUNDS)
    impls = [impl for impl in IMPLEMENTATIONS if available(impl)]
    raw: dict[str, Any] = {"environment": environment(), "entries": entries_count,
                           "file_size": size, "rounds": rounds, "implementations": impls}

    log(f"LIST of {entries_count:,} entries in process ({', '.join(impls)}) ...")
    now = time.time()
    entries = ftp_servers.synthetic_entries(entries_count, now)
    raw["list_in_process"] = time_in_process(entries, impls, rounds)
    del entries
    raw["held_before_consumer"] = {
        impl: held_before_consumer(impl, size) for impl in impls
    }

    curl = shutil.which("curl")
    raw["servers"] = None
    if curl is None:
        log("curl not found: the loopback measurements are skipped")
    else:
        with tempfile.TemporaryDirectory(prefix="txframe-ftp-bench-") as root:
            os.mkdir(os.path.join(root, "synthetic"))
            with open(os.path.join(root, "big.bin"), "wb") as f:
                for _ in range(size // (1 << 20)):
                    f.write(os.urandom(1 << 20))
            servers = {
                impl: Server(SERVER_KIND[impl], root, entries_count, now) for impl in impls
            }
            try:
                log(f"LIST, RETR and STOR over loopback with curl, {rounds} rounds ...")
                raw["servers"] = time_servers(curl, servers, root, size, rounds)
                raw["formatters"] = {impl: s.formatter for impl, s in servers.items()}
            finally:
                for server in servers.values():
                    server.close()
    raw["elapsed_seconds"] = time.perf_counter() - started
    return report(raw, check), raw


def report(raw: dict[str, Any], check: bool) -> str:
    env = raw["environment"]
    impls = raw["implementations"]
    count = raw["entries"]
    mib = raw["file_size"] // (1024 * 1024)
    out = [
        "### FTP data channel",
        "",
        f"From one run of `benchmarks/ftp_bench.py` (also `compare.py --only ftp`): "
        f"{env['python']}, Twisted {env['twisted']}, {env['cpus']} CPUs; best of "
        f"{raw['rounds']} interleaved rounds.",
        "",
    ]
    targets = []
    inproc = raw["list_in_process"]
    seconds = inproc["seconds"]
    rows = []
    for impl in impls:
        rows.append([LABEL[impl], f"{seconds[impl] * 1e3:.0f} ms",
                     rate(count / seconds[impl], "entries/s"),
                     ratio(seconds["twisted"] / seconds[impl])])
    out += [f"LIST of {count:,} entries through a DTP, in process "
            f"({inproc['bytes'] / 1e6:.1f} MB of lines):", "",
            table(["DTP", "time", "rate", "÷ Twisted"], rows), ""]
    if "compiled" in seconds:
        value = seconds["twisted"] / seconds["compiled"]
        targets.append((f"LIST of {count:,} entries, in process: compiled ≥ 3× Twisted",
                        ratio(value), value >= 3))
    servers = raw.get("servers")
    if servers:
        rows = []
        lists = servers["list"]
        for impl in impls:
            cell = lists[impl]
            rows.append([
                LABEL[impl], f"{cell['cpu'] * 1e3:.0f} ms", f"{cell['wall'] * 1e3:.0f} ms",
                ratio(lists["twisted"]["cpu"] / cell["cpu"]),
                ratio(lists["twisted"]["wall"] / cell["wall"]),
            ])
        out += [f"LIST of {count:,} entries over loopback (curl; server CPU per LIST, "
                "client wall time per LIST):", "",
                table(["server's DTP", "server CPU", "wall", "CPU ÷ Twisted",
                       "wall ÷ Twisted"], rows), ""]
        if "compiled" in lists:
            value = lists["twisted"]["cpu"] / lists["compiled"]["cpu"]
            targets.append((f"LIST of {count:,} entries over loopback, server CPU: "
                            "compiled ≥ 3× Twisted", ratio(value), value >= 3))
        rows = []
        size = raw["file_size"]
        for kind in ("retr", "stor"):
            cells = servers[kind]
            for impl in cells:
                cell = cells[impl]
                rows.append([
                    kind.upper(), "Twisted" if impl == "twisted" else "txframe",
                    rate(size / cell["wall"], "B/s"), f"{cell['cpu'] * 1e3:.0f} ms",
                    ratio(cells["twisted"]["wall"] / cell["wall"]),
                ])
            if "compiled" in cells:
                value = cells["twisted"]["wall"] / cells["compiled"]["wall"]
                targets.append((f"{kind.upper()} of {mib} MiB: txframe throughput ≥ "
                                "Twisted's", ratio(value), value >= 1))
        out += [f"RETR and STOR of a {mib} MiB file over loopback (curl; throughput "
                "from the client's wall time, server CPU per transfer):", "",
                table(["transfer", "server's DTP", "throughput", "server CPU",
                       "throughput ÷ Twisted"], rows, "llrrr"), ""]
    else:
        out += ["(curl not found: the loopback measurements were skipped.)", ""]
    held = raw["held_before_consumer"]
    mib_sent = raw["file_size"] / (1024 * 1024)
    out += [f"Data held by a DTP when a client sends {mib_sent:.0f} MiB before the STOR "
            "command (in process: 64 KiB reads, as Twisted's TCP transport reads, until "
            "the DTP pauses the transport): " + ", ".join(
                f"{LABEL[impl]} {held[impl] / 1024:,.0f} KiB" for impl in impls) + ".", ""]
    bound = 65536 + 65536  # txframe.ftp.DTP.bufferLimit + one read
    txframe_held = max(held[impl] for impl in impls if impl != "twisted")
    targets.append(("data held before a consumer registers: bounded (bufferLimit + one "
                    "read = 128 KiB)", f"{txframe_held / 1024:,.0f} KiB",
                    txframe_held <= bound))
    if check:
        out += ["Targets:", "", table(["Target", "Measured", "Result"], [
            [name, measured, "PASS" if ok else "**MISS**"] for name, measured, ok in targets
        ], "lrl"), ""]
    raw["targets"] = [{"target": t, "measured": m, "ok": ok} for t, m, ok in targets]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    parser.add_argument("--rounds", type=int, help=f"rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument("--check-targets", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    text, raw = run(quick=args.quick, check=args.check_targets, rounds=args.rounds)
    print(text, end="")
    log(f"done in {raw['elapsed_seconds']:.1f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(raw, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
