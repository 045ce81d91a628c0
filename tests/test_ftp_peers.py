"""Twisted's FTP server on txframe's DTP, against real FTP clients, over loopback.

The server is ``peers/ftp_server.py`` in its own process (``txframe.ftp.FTPFactory``,
or Twisted's own ``FTPFactory`` and DTP for comparison), serving a temporary directory
read-write; the clients are separate processes too: ``curl``, ``lftp`` and Python's
``ftplib`` (``peers/ftp_client.py``), in passive mode and in active mode (PORT/EPRT:
the server connects back to 127.0.0.1).

- LIST of a 10,000-entry directory: the same bytes as with Twisted's DTP, through
  each client, and the lines Twisted's formatter makes of the shell's entries; names
  with spaces, newlines, CR and non-UTF-8 bytes; 100,000 entries to a client that
  reads nothing for a while. On both LIST formatters (compiled, pure).
- RETR and STOR of a 100 MiB file with every client, checksums compared; several
  transfers at once.
- Bad input: data sent to the data port before the STOR command (bounded: the server
  stops reading; Twisted's reads it all into memory), a client that does not read,
  transfers aborted midway (curl's ranged download, ftplib closing or resetting the
  data connection, curl killed by its timeout), a data connection never made. After
  each, the control connection (or a new one) keeps working.

curl and lftp come with the Debian packages of those names, which the test command
installs. The module runs on Linux only (the server reads /proc; names with control
characters and non-UTF-8 bytes). Without one its tests are skipped, except under ``CI=true``, where its
absence fails them (as TXFRAME_REQUIRE_EXTENSIONS does for the compiled framers).
The 100 MiB transfers use the LIST formatter txframe.framing chose (they do not format
anything); the LIST tests run on both.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from twisted.protocols import ftp as twisted_ftp
from twisted.python import filepath

from peer_rule import EXTENSIONS_REQUIRED, unavailable

pytestmark = pytest.mark.peer

if not sys.platform.startswith("linux"):
    # The server reports its memory from /proc, and the awkward names (control
    # characters, non-UTF-8 bytes) are POSIX file names; ci/test.sh runs on Linux.
    pytest.skip("the FTP peer tests run on Linux", allow_module_level=True)

PEERS = Path(__file__).with_name("peers")
SERVER = PEERS / "ftp_server.py"
CLIENT = PEERS / "ftp_client.py"
HOST = "127.0.0.1"

BIG = 100 * 1024 * 1024
LISTED = 10_000
SYNTHETIC = 100_000
TIMEOUT = 120  # seconds for one client process
BUFFER_LIMIT = 65536  # txframe.ftp.DTP.bufferLimit
TCP_READ = 65536  # what Twisted's TCP transport reads at once
LIST_KEYS = ("size", "directory", "permissions", "hardlinks", "modified", "owner", "group")

_spec = importlib.util.spec_from_file_location("txframe_tests_ftp_server", SERVER)
assert _spec is not None and _spec.loader is not None
server_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(server_module)


# -- peers -----------------------------------------------------------------------------


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not found: install Debian's {name} package")
    return path


@pytest.fixture(scope="module")
def curl() -> str:
    return _program("curl")


@pytest.fixture(scope="module")
def lftp() -> str:
    return _program("lftp")


def _impl_param(kind: str) -> Any:
    return pytest.param(kind, marks=pytest.mark.compiled) if kind == "compiled" else kind


IMPLS = [_impl_param("compiled"), _impl_param("pure")]


def _check_impl(kind: str | None) -> None:
    if kind == "compiled":
        try:
            importlib.import_module("txframe._listing_c")
        except ImportError:
            if EXTENSIONS_REQUIRED:
                raise
            pytest.skip("txframe was installed without its compiled extension")


class Server:
    """peers/ftp_server.py, running."""

    def __init__(self, root: Path, dtp: str, *options: str, impl: str | None = None) -> None:
        _check_impl(impl)
        argv = [sys.executable, str(SERVER), str(root), "--dtp", dtp, *map(str, options)]
        if impl is not None:
            argv += ["--impl", impl]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(10)
            raise RuntimeError(f"the FTP server did not start ({self.process.returncode})")
        self.info = json.loads(line)
        self.port = self.info["port"]
        self.url = f"ftp://{HOST}:{self.port}/"
        if impl is not None:
            assert self.info["formatter"] == (
                "txframe._listing_c" if impl == "compiled" else "txframe._listing_py"
            )

    def stats(self) -> dict[str, Any]:
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def errors(self) -> list[str]:
        return self.stats()["errors"]

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def ftplib_client(server: Server, *args: Any) -> dict[str, Any]:
    """peers/ftp_client.py's result (fails the test on its error)."""
    done = subprocess.run(
        [sys.executable, str(CLIENT), str(server.port), *map(str, args)],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "error" not in result, result["error"]
    return result


def run(*argv: Any, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(map(str, argv)), capture_output=True, timeout=timeout)


def curl_get(curl: str, url: str, *options: str) -> bytes:
    done = run(curl, "-sS", "--max-time", TIMEOUT, *options, url)
    assert done.returncode == 0, done.stderr
    return done.stdout


def lftp_run(lftp: str, server: Server, commands: str, active: bool = False) -> bytes:
    script = (
        f"set net:max-retries 1; set net:timeout 30; set xfer:clobber on; "
        f"set ftp:passive-mode {'off' if active else 'on'}; "
        f"open -p {server.port} {HOST}; {commands}"
    )
    done = run(lftp, "-c", script)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- the served directories ------------------------------------------------------------


@pytest.fixture(scope="session")
def big_file(tmp_path_factory) -> tuple[Path, str]:
    """100 MiB of seeded random bytes, made once per session, and their SHA-256."""
    path = tmp_path_factory.mktemp("ftp-big") / "big.bin"
    rng = random.Random(7)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(BIG // (1 << 22)):
            chunk = rng.randbytes(1 << 22)
            digest.update(chunk)
            f.write(chunk)
    return path, digest.hexdigest()


@pytest.fixture(scope="module")
def listed_dir(tmp_path_factory) -> Path:
    """10,000 files and directories, names with spaces, assorted sizes, modes and
    times (this year's and older, so both date forms appear)."""
    root = tmp_path_factory.mktemp("ftp-list")
    now = time.time()
    rng = random.Random(3)
    for index in range(LISTED):
        path = root / f"entry {index:05d} {'x' * (index % 13)}.dat"
        if index % 50 == 0:
            path.mkdir()
        else:
            path.write_bytes(b"z" * (index % 300))
        path.chmod(rng.choice((0o644, 0o600, 0o755, 0o444)))
        when = now - rng.uniform(0, 3 * 365 * 86400)
        os.utime(path, (when, when))
    return root


def expected_listing(root: Any) -> bytes:
    """What LIST must send: Twisted's formatter on Twisted's shell's entries."""
    shell = twisted_ftp.FTPShell(filepath.FilePath(root))
    results: list[Any] = []
    shell.list([], LIST_KEYS).addCallback(results.append)
    dtp = twisted_ftp.DTP()
    lines = []
    for name, attrs in results[0]:
        if isinstance(name, str):
            name = name.encode("utf-8", "surrogateescape")
        lines.append(dtp._formatOneListResponse(name, *attrs) + b"\r\n")
    return b"".join(lines)


AWKWARD = [
    b"plain", b"with space", b"  leading spaces", b"trailing space ", b"new\nline",
    b"carriage\rreturn", b"crlf\r\nin name", b"caf\xc3\xa9 utf-8", b"latin-1 caf\xe9",
    b"bytes \xff\xfe\x80", b"tab\there", b"x" * 200,
]


@pytest.fixture(scope="module")
def awkward_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ftp-awkward")
    for index, name in enumerate(AWKWARD):
        path = os.path.join(os.fsencode(root), name)
        with open(path, "wb") as f:
            f.write(b"a" * index)
    return root


@pytest.fixture(scope="module")
def twisted_listings(listed_dir, curl, lftp) -> dict[str, bytes]:
    """The 10,000-entry listing as curl and lftp show it from Twisted's DTP."""
    server = Server(listed_dir, "twisted")
    try:
        return {"curl": curl_get(curl, server.url), "lftp": lftp_run(lftp, server, "ls")}
    finally:
        server.close()


# -- LIST ------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_list_10000_entries(impl, listed_dir, twisted_listings, curl, lftp, tmp_path):
    """Each client gets the same listing from txframe's DTP, in passive and in active
    mode, as from Twisted's DTP; the raw bytes are Twisted's lines for the shell's
    entries."""
    server = Server(listed_dir, "txframe", impl=impl)
    try:
        expected = expected_listing(listed_dir)
        assert expected.count(b"\r\n") == LISTED
        for mode in ((), ("--active",)):
            result = ftplib_client(server, "list", "--out", tmp_path / "raw", *mode)
            assert (tmp_path / "raw").read_bytes() == expected
            assert result["replies"][0].startswith("226")
        for options in ((), ("-P", HOST)):
            ours = curl_get(curl, server.url, *options)
            assert ours == twisted_listings["curl"]
            assert len(ours.splitlines()) == LISTED
        for active in (False, True):
            ours = lftp_run(lftp, server, "ls", active)
            assert ours == twisted_listings["lftp"]
            assert len(ours.splitlines()) == LISTED
        assert server.errors() == []
    finally:
        server.close()


def twisteds_list_fails(port: int) -> bool:
    """Twisted's LIST of a text-named directory with an undecodable name: 550 after
    125, and the data connection is left open (no end of file)."""
    import ftplib
    import socket

    client = ftplib.FTP(timeout=10)
    client.connect(HOST, port)
    client.login()
    conn = client.transfercmd("LIST")
    try:
        reply = client.getline()
        conn.settimeout(1.0)
        try:
            while conn.recv(65536):
                pass
            ended = True
        except socket.timeout:
            ended = False
    finally:
        conn.close()
        client.close()
    return reply.startswith("550") and not ended


@pytest.mark.parametrize("impl", IMPLS)
def test_list_awkward_names(impl, awkward_dir, curl, tmp_path):
    """Names with spaces, newlines, CR and non-UTF-8 bytes go out as they are on disk,
    as Twisted's DTP sends them when the shell lists bytes. When it lists text
    (os.listdir of a str path: undecodable bytes as lone surrogates), Twisted's LIST
    fails on them; txframe's sends the same bytes."""
    expected = expected_listing(os.fsencode(awkward_dir))
    for name in AWKWARD:
        assert b" " + name + b"\r\n" in expected
    twisted_server = Server(awkward_dir, "twisted", "--bytes-root")
    servers = [
        Server(awkward_dir, "txframe", "--bytes-root", impl=impl),
        Server(awkward_dir, "txframe", impl=impl),
    ]
    try:
        ftplib_client(twisted_server, "list", "--out", tmp_path / "twisted")
        assert (tmp_path / "twisted").read_bytes() == expected
        twisted_str_root = Server(awkward_dir, "twisted")
        try:
            assert twisteds_list_fails(twisted_str_root.port)
        finally:
            twisted_str_root.close()
        for index, server in enumerate(servers):
            ftplib_client(server, "list", "--out", tmp_path / f"ours{index}")
            assert (tmp_path / f"ours{index}").read_bytes() == expected
            assert curl_get(curl, server.url) == curl_get(curl, twisted_server.url)
            assert server.errors() == []
    finally:
        for server in (twisted_server, *servers):
            server.close()


@pytest.fixture(scope="module")
def synthetic_listing() -> bytes:
    """Twisted's lines for the server's synthetic directory."""
    dtp = twisted_ftp.DTP()
    return b"".join(
        dtp._formatOneListResponse(name.encode(), *attrs) + b"\r\n"
        for name, attrs in server_module.synthetic_entries(SYNTHETIC)
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_huge_listing_to_a_client_that_waits(impl, synthetic_listing, tmp_path):
    """100,000 entries to a client that reads nothing for 2 s: streamed as the client
    reads (the server writes a chunk at a time), complete, then 226; the control
    connection goes on."""
    server = Server(tmp_path, "txframe", "--synthetic", SYNTHETIC, impl=impl)
    try:
        result = ftplib_client(
            server, "slow-list", "--path", "synthetic", "--pause", 2, "--out", tmp_path / "out"
        )
        assert (tmp_path / "out").read_bytes() == synthetic_listing
        assert result["replies"][0].startswith("226")
        assert result["replies"][1:] == ["200 Command OK", '257 "/"']
        assert server.errors() == []
    finally:
        server.close()


# -- RETR and STOR of 100 MiB ----------------------------------------------------------


@pytest.fixture(scope="module")
def transfer_root(tmp_path_factory, big_file) -> Path:
    root = tmp_path_factory.mktemp("ftp-transfers")
    try:
        os.link(big_file[0], root / "big.bin")
    except OSError:
        shutil.copyfile(big_file[0], root / "big.bin")
    return root


@pytest.fixture(scope="module")
def transfer_server(transfer_root):
    server = Server(transfer_root, "txframe")
    yield server
    server.close()


@pytest.fixture
def quiet(transfer_server):
    """The test leaves no error logged by the server, and no data connection open."""
    transfer_server.errors()
    yield transfer_server
    assert transfer_server.errors() == []
    assert wait_for(lambda: transfer_server.stats()["open_data_connections"] == 0)


def wait_for(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def check_upload(root: Path, name: str, digest: str) -> None:
    path = root / name
    assert path.stat().st_size == BIG
    assert sha256(path) == digest
    path.unlink()


def check_download(path: Path, digest: str) -> None:
    assert path.stat().st_size == BIG
    assert sha256(path) == digest
    path.unlink()


@pytest.mark.parametrize("active", [False, True], ids=["passive", "active"])
def test_curl_retr_stor(active, quiet, transfer_root, big_file, curl, tmp_path):
    source, digest = big_file
    mode = ["-P", HOST] if active else []
    out = tmp_path / "down.bin"
    done = run(curl, "-sS", *mode, "-o", out, quiet.url + "big.bin")
    assert done.returncode == 0, done.stderr
    check_download(out, digest)
    done = run(curl, "-sS", *mode, "-T", source, quiet.url + "up-curl.bin")
    assert done.returncode == 0, done.stderr
    check_upload(transfer_root, "up-curl.bin", digest)


@pytest.mark.parametrize("active", [False, True], ids=["passive", "active"])
def test_lftp_get_put(active, quiet, transfer_root, big_file, lftp, tmp_path):
    source, digest = big_file
    out = tmp_path / "down.bin"
    lftp_run(lftp, quiet, f"get big.bin -o {out}; put {source} -o up-lftp.bin", active)
    check_download(out, digest)
    check_upload(transfer_root, "up-lftp.bin", digest)


@pytest.mark.parametrize("active", [False, True], ids=["passive", "active"])
def test_ftplib_retr_stor(active, quiet, transfer_root, big_file, tmp_path):
    source, digest = big_file
    mode = ["--active"] if active else []
    out = tmp_path / "down.bin"
    result = ftplib_client(quiet, "retr", "big.bin", "--out", out, *mode)
    assert result["sha256"] == digest and result["size"] == BIG
    assert result["replies"][0].startswith("226")
    out.unlink()
    result = ftplib_client(quiet, "stor", "up-ftplib.bin", "--src", source, *mode)
    assert result["replies"][0].startswith("226")
    check_upload(transfer_root, "up-ftplib.bin", digest)


def test_concurrent_transfers(quiet, transfer_root, big_file, curl, lftp, tmp_path):
    """Three downloads and two uploads at once (curl, lftp, ftplib), each complete."""
    source, digest = big_file
    commands = [
        [curl, "-sS", "-o", tmp_path / "c1", quiet.url + "big.bin"],
        [curl, "-sS", "-P", HOST, "-o", tmp_path / "c2", quiet.url + "big.bin"],
        [curl, "-sS", "-T", source, quiet.url + "up1.bin"],
        [lftp, "-c", f"set net:max-retries 1; open -p {quiet.port} {HOST}; "
                     f"get big.bin -o {tmp_path / 'l1'}; put {source} -o up2.bin"],
        [sys.executable, CLIENT, quiet.port, "retr", "big.bin", "--out", tmp_path / "f1"],
    ]
    processes = [
        subprocess.Popen(list(map(str, argv)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for argv in commands
    ]
    for process in processes:
        out, err = process.communicate(timeout=TIMEOUT * 2)
        assert process.returncode == 0, err
    for name in ("c1", "c2", "l1", "f1"):
        check_download(tmp_path / name, digest)
    for name in ("up1.bin", "up2.bin"):
        check_upload(transfer_root, name, digest)


def test_retr_to_a_client_that_does_not_read(quiet, big_file, tmp_path):
    """RETR to a client that reads nothing for 2 s: the server does not read the file
    into memory meanwhile (the DTP passes the file sender's flow control through)."""
    before = quiet.stats()["rss"]
    client = subprocess.Popen(
        [sys.executable, str(CLIENT), str(quiet.port), "retr", "big.bin",
         "--out", str(tmp_path / "slow"), "--pause", "2"],
        stdout=subprocess.PIPE, text=True,
    )
    time.sleep(1.5)
    during = quiet.stats()["rss"]
    result = json.loads(client.communicate(timeout=TIMEOUT)[0])
    assert result["sha256"] == big_file[1]
    assert during - before < 20 * 1024 * 1024, (before, during)


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("dtp", ["txframe", "twisted"])
def test_data_sent_before_the_command(dtp, transfer_root, big_file):
    """A client that connects to the data port and sends before STOR: txframe's DTP
    holds at most bufferLimit + one read, then stops reading (the client's sends
    block); Twisted's reads everything into memory. Either way, no byte is lost."""
    source, digest = big_file
    server = Server(transfer_root, dtp)
    try:
        result = ftplib_client(server, "early-send", "early.bin", "--src", source,
                               "--stall", 2)
        assert result["replies"][:2] == [
            "125 Data connection already open, starting transfer", "226 Transfer Complete."
        ]
        check_upload(transfer_root, "early.bin", digest)
        held = server.stats()["max_held"]
        if dtp == "txframe":
            assert held <= BUFFER_LIMIT + TCP_READ
            assert result["sent_before_command"] < 48 * 1024 * 1024
        else:  # all of it sent, nearly all of it held (the rest in kernel buffers)
            assert result["sent_before_command"] == BIG
            assert held > BIG - 32 * 1024 * 1024
    finally:
        server.close()


@pytest.mark.parametrize("dtp", ["txframe", "twisted"])
def test_stor_reset_midway(dtp, transfer_root, big_file):
    """The client resets the data connection midway through STOR: txframe answers 426
    (Twisted's DTP reports success, 226). What arrived is kept, a prefix of the file."""
    source, _ = big_file
    server = Server(transfer_root, dtp)
    try:
        result = ftplib_client(server, "abort-stor", "reset.bin", "--src", source,
                               "--after", 20_000_000, "--reset")
        expected = "426" if dtp == "txframe" else "226"
        assert result["replies"][0].startswith(expected)
        assert result["replies"][1:] == ["200 Command OK", '257 "/"']
        kept = (transfer_root / "reset.bin").read_bytes()
        with open(source, "rb") as f:
            assert kept == f.read(len(kept))
        (transfer_root / "reset.bin").unlink()
    finally:
        server.close()


def test_stor_closed_early(quiet, transfer_root, big_file):
    """An orderly close after 5 MB is the end of the file in stream mode: 226, and the
    file is exactly what was sent."""
    source, _ = big_file
    result = ftplib_client(quiet, "abort-stor", "short.bin", "--src", source,
                           "--after", 5_000_000)
    assert result["replies"] == ["226 Transfer Complete.", "200 Command OK", '257 "/"']
    with open(source, "rb") as f:
        assert (transfer_root / "short.bin").read_bytes() == f.read(5_000_000)
    (transfer_root / "short.bin").unlink()


def test_retr_abandoned_by_ftplib(transfer_server, big_file, tmp_path):
    """ftplib closes the data connection after 1 MB of a RETR: 426 on the control
    connection, which goes on working; the next RETR is complete."""
    result = ftplib_client(transfer_server, "abort-retr", "big.bin", "--after", 1_000_000)
    assert result["received"] == 1_000_000
    assert result["replies"] == [
        "426 Transfer aborted.  Data connection closed.", "200 Command OK", '257 "/"'
    ]
    result = ftplib_client(transfer_server, "retr", "big.bin", "--out", tmp_path / "again")
    assert result["sha256"] == big_file[1]
    errors = transfer_server.errors()
    assert errors and all("Consumer asked us to stop producing" in e for e in errors)


def test_curl_range_aborts_midway(transfer_server, big_file, curl, tmp_path):
    """curl -r 0-99999 reads 100,000 bytes, closes the data connection and sends ABOR
    (Twisted's server has no ABOR: 502): the bytes are the file's first 100,000 and
    the server serves the next client."""
    out = tmp_path / "part"
    done = run(curl, "-sS", "-r", "0-99999", "-o", out, transfer_server.url + "big.bin")
    assert done.returncode == 0, done.stderr
    with open(big_file[0], "rb") as f:
        assert out.read_bytes() == f.read(100_000)
    assert len(curl_get(curl, transfer_server.url).splitlines()) >= 1
    transfer_server.errors()


def test_curl_killed_midway(transfer_server, curl, tmp_path):
    """curl gives up after 1 s of a throttled download (both connections drop): the
    data connection is cleaned up and the server serves the next client."""
    done = run(curl, "-sS", "--limit-rate", "5M", "--max-time", "1",
               "-o", tmp_path / "x", transfer_server.url + "big.bin")
    assert done.returncode == 28, done.stderr  # operation timed out
    assert 0 < (tmp_path / "x").stat().st_size < BIG
    assert wait_for(lambda: transfer_server.stats()["open_data_connections"] == 0)
    assert b"big.bin" in curl_get(curl, transfer_server.url)
    transfer_server.errors()


def test_data_connection_never_made(tmp_path):
    """PASV, then no connection: after the DTP timeout the command fails (Twisted's
    550), and the control connection goes on: the next LIST works."""
    (tmp_path / "file").write_bytes(b"x")
    server = Server(tmp_path, "txframe", "--dtp-timeout", "0.5")
    try:
        import ftplib

        client = ftplib.FTP(timeout=30)
        client.connect(HOST, server.port)
        client.login()
        reply = client.sendcmd("PASV")
        assert reply.startswith("227")
        time.sleep(1)
        with pytest.raises(ftplib.error_perm, match="550"):
            client.getresp()
        lines: list[str] = []
        client.retrlines("LIST", lines.append)
        assert len(lines) == 1 and lines[0].endswith(" file")
        client.quit()
        errors = server.errors()
        assert errors and all("PortConnectionError" in e for e in errors)
    finally:
        server.close()
