"""txframe.ident over real sockets, against a real ident server: oidentd.

Live loopback connections (IPv4 and IPv6, owned by this process and, when we are root,
by ``nobody``) are looked up by oidentd and by txframe's ``IdentServer`` with
``ProcServerMixin`` (run by ``tests/peers/ident_peer.py`` in its own process, on its own
reactor, bound to the ``impl`` framer); both must name the same user. txframe's
``IdentClient`` asks oidentd and txframe's server.

oidentd comes with Debian's ``oidentd`` package, which the test command installs; it
runs here as root (it reads the kernel's socket tables). Without it, or without root,
the oidentd tests are skipped, except under ``CI=true``, where that fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peer_rule import unavailable

pytestmark = pytest.mark.peer

PEER = Path(__file__).parent / "peers" / "ident_peer.py"
NOBODY = 65534
TIMEOUT = 20


# -- peers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_connectable(host: str, port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host} port {port}")


@pytest.fixture(scope="module")
def oidentd(tmp_path_factory):
    """oidentd's port, on 127.0.0.1 and ::1: it answers one query per connection."""
    binary = shutil.which("oidentd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if binary is None:
        unavailable("oidentd is not installed (Debian package oidentd)")
    if os.getuid() != 0:
        unavailable("oidentd needs root here")
    config = tmp_path_factory.mktemp("oidentd") / "oidentd.conf"
    config.write_text("")  # the default: everyone answers with their real name
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-i", "-S", "-p", str(port), "-a", "127.0.0.1", "-a", "::1", "-C", str(config), "-t", "10"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_connectable("127.0.0.1", port, proc)
        wait_connectable("::1", port, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)


class Served:
    """txframe's ident server in its own process."""

    def __init__(self, impl_name: str, *options: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), "serve", impl_name, *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(self.proc.stderr.read())
        self.ports = json.loads(line)

    def stop(self) -> None:
        """Stop it; it must have logged no error."""
        self.proc.terminate()
        out, err = self.proc.communicate(timeout=TIMEOUT)
        report = json.loads(out.strip().splitlines()[-1])
        assert report["logged_errors"] == [], "\n".join(report["logged_errors"]) + err


@pytest.fixture(scope="module")
def served(impl):
    server = Served(impl.name)
    yield server
    server.stop()


def query_peer(impl_name: str, host: str, port: int, pairs, separately=False) -> list:
    """What txframe's IdentClient (in its own process) gets for *pairs*."""
    args = [sys.executable, str(PEER), "query", impl_name, host, str(port)]
    args += [f"{s},{c}" for s, c in pairs] + (["--separately"] if separately else [])
    proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT * 2)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "error" not in report, report["error"]
    assert report["logged_errors"] == [], "\n".join(report["logged_errors"])
    return report["results"]


# -- live connections ------------------------------------------------------------------------

class Live:
    """A connection on loopback: ``client`` (host, port) made it, ``server`` accepted
    it; ``owner`` made it (the accepting end is ours)."""

    def __init__(self, host: str, owner: str) -> None:
        self.host = host
        self.owner = owner
        self.listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.listener.bind((host, 0))
        self.listener.listen()
        port = self.listener.getsockname()[1]
        self.child = None
        if owner == "nobody":
            client_port = self._connect_as_nobody(host, port)
            self.connector = None
        else:
            self.connector = socket.create_connection((host, port))
            client_port = self.connector.getsockname()[1]
        self.accepted, _ = self.listener.accept()
        self.client = (host, client_port)
        self.server = (host, port)

    def _connect_as_nobody(self, host: str, port: int) -> int:
        """Connect from a child process running as nobody (forked: nobody may not be
        able to run this Python); it holds the connection until told to go."""
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                s = socket.create_connection((host, port))
                os.write(ready_w, b"%d\n" % s.getsockname()[1])
                os.read(go_r, 1)
            finally:
                os._exit(0)
        os.close(ready_w)
        os.close(go_r)
        self.child = (pid, go_w)
        with os.fdopen(ready_r, "rb") as ready:
            return int(ready.readline())

    def close(self) -> None:
        for s in (self.connector, self.accepted, self.listener):
            if s is not None:
                s.close()
        if self.child is not None:
            pid, go = self.child
            os.write(go, b"x")  # (other children hold copies of the pipe: no EOF)
            os.close(go)
            os.waitpid(pid, 0)


@pytest.fixture(scope="module")
def live():
    me = _name(os.getuid())
    owners = [me] + (["nobody"] if os.getuid() == 0 else [])
    connections = [Live(host, owner) for host in ("127.0.0.1", "::1") for owner in owners]
    yield connections
    for c in connections:
        c.close()


def _name(uid: int) -> str:
    import pwd

    return pwd.getpwuid(uid).pw_name


def cases(connections: list[Live], host: str) -> list[tuple[tuple[int, int], str]]:
    """(port pair, the user who owns it) of each live connection of *host*, asked
    about from both ends (loopback: both ends are on the ident server's host)."""
    me = _name(os.getuid())
    out = []
    for c in connections:
        if c.host == host:
            out.append(((c.client[1], c.server[1]), c.owner))  # the connecting end
            out.append(((c.server[1], c.client[1]), me))  # the accepting end
    return out


# -- raw ident -----------------------------------------------------------------------------


def ask(host: str, port: int, data: bytes, replies: int) -> list[bytes]:
    """Send *data*; read up to *replies* reply lines (fewer if the server closes)."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.sendall(data)
        received = b""
        while received.count(b"\r\n") < replies:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
    return received.split(b"\r\n")[:-1]


def parsed(reply: bytes) -> tuple:
    """A reply as ``((server, client), kind, detail)``; for USERID the detail is the
    user-id (the opsys is left out: oidentd says UNIX, txframe's mixin LINUX)."""
    ports, kind, info = (part.strip() for part in reply.split(b":", 2))
    pair = tuple(int(p) for p in ports.split(b","))
    if kind == b"USERID":
        info = info.split(b":", 1)[1].strip()
    return pair, kind.decode(), info.decode()


def ask_oidentd(host: str, port: int, query: bytes) -> bytes:
    (reply,) = ask(host, port, query + b"\r\n", 1)  # one query per connection
    return reply


# -- txframe's server and oidentd agree ----------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_server_answers_as_oidentd(impl, oidentd, served, live, host):
    pairs = cases(live, host)
    unknown = [(1, 1), (live[0].client[1], 1)]
    queries = [b"%d, %d" % pair for pair, _ in pairs] + [b"%d, %d" % pair for pair in unknown]
    queries += [b"0, 5", b"5, 65536", b"-1, 5"]
    ours = ask(host, served.ports["ipv4" if ":" not in host else "ipv6"], b"".join(q + b"\r\n" for q in queries), len(queries))
    theirs = [ask_oidentd(host, oidentd, q) for q in queries]
    assert [parsed(r) for r in ours] == [parsed(r) for r in theirs]
    expected = [(pair, "USERID", user) for pair, user in pairs]
    expected += [(pair, "ERROR", "NO-USER") for pair in unknown]
    expected += [((0, 5), "ERROR", "INVALID-PORT"), ((5, 65536), "ERROR", "INVALID-PORT"), ((-1, 5), "ERROR", "INVALID-PORT")]
    assert [parsed(r) for r in ours] == expected


def test_server_on_a_dual_stack_socket(impl, served, live):
    """IPv4 queries reaching a ``::`` listener come from IPv4-mapped addresses; the
    IPv4 connections are still found."""
    pairs = cases(live, "127.0.0.1")
    data = b"".join(b"%d, %d\r\n" % pair for pair, _ in pairs)
    ours = ask("127.0.0.1", served.ports["dual"], data, len(pairs))
    assert [parsed(r) for r in ours] == [(pair, "USERID", user) for pair, user in pairs]


def test_hidden_user(impl, live, tmp_path):
    (tmp_path / ".noident").touch()
    server = Served(impl.name, "--hide-home", str(tmp_path))
    try:
        pairs = cases(live, "127.0.0.1")
        data = b"".join(b"%d, %d\r\n" % pair for pair, _ in pairs)
        ours = ask("127.0.0.1", server.ports["ipv4"], data, len(pairs))
    finally:
        server.stop()
    assert [parsed(r) for r in ours] == [(pair, "ERROR", "HIDDEN-USER") for pair, _ in pairs]


# -- txframe's client -------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_client_asks_oidentd(impl, oidentd, live, host):
    pairs = cases(live, host)
    results = query_peer(impl.name, host, oidentd, [p for p, _ in pairs] + [(1, 1)], separately=True)
    assert results == [["USERID", f"UNIX:{user}"] for _, user in pairs] + [["ERROR", "NoUser", "NO-USER"]]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_client_asks_txframe_server(impl, served, live, host):
    """Many queries on one connection, one at a time."""
    pairs = cases(live, host)
    port = served.ports["ipv4" if ":" not in host else "ipv6"]
    results = query_peer(impl.name, host, port, [p for p, _ in pairs] * 20 + [(1, 1)])
    expected = [["USERID", f"LINUX : {user}"] for _, user in pairs] * 20
    assert results == expected + [["ERROR", "NoUser", "NO-USER"]]


# -- bad input over real sockets ---------------------------------------------------------------


def closed(s: socket.socket) -> bytes:
    """What *s* reads until the server closes it."""
    s.settimeout(TIMEOUT)
    received = b""
    while chunk := s.recv(65536):
        received += chunk
    return received


def test_garbage_stall_and_overlong_lines(impl, served):
    port = served.ports["ipv4"]
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(b"1, 2")  # no end of line, and nothing more
    garbage = [b"abc", b"1e3, 5", b" 22 ,", b"\x00\xff", b"1,2,3", b"65536, 5"]
    replies = ask("127.0.0.1", port, b"".join(g + b"\n" for g in garbage), len(garbage))
    assert [r.split(b" : ", 1)[1] for r in replies] == [b"ERROR : INVALID-PORT"] * len(garbage)
    with socket.create_connection(("127.0.0.1", port)) as overlong:
        overlong.sendall(b"1, 1\r\n" + b"9" * 5000)
        assert closed(overlong) == b"1, 1 : ERROR : NO-USER\r\n"
    stalled.sendall(b"\r\n")  # the stalled connection was kept, and is answered
    assert closed_or_line(stalled) == b"1, 2 : ERROR : NO-USER\r\n"
    stalled.close()


def closed_or_line(s: socket.socket) -> bytes:
    s.settimeout(TIMEOUT)
    received = b""
    while not received.endswith(b"\r\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_flood_from_a_client_that_does_not_read(impl):
    """A client sends queries and never reads: the server stops reading once its
    replies back up (so its memory stays bounded), other clients are answered
    meanwhile, and when the client reads at last every query has its reply, in
    order."""
    server = Served(impl.name, "--static", "--small-buffers")
    try:
        port = server.ports["ipv4"]
        flood = socket.socket()
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        flood.connect(("127.0.0.1", port))
        flood.setblocking(False)
        chunk = b"".join(b"%d, 1\r\n" % (p % 65535 + 1) for p in range(1000))
        sent, blocked_since = 0, None
        limit = 200 * len(chunk)  # ~1.3 MB: far more than the buffers on the way hold
        while sent < limit:
            try:
                n = flood.send(chunk[sent % len(chunk) :])
                sent += n
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 1.5:
                    break
                time.sleep(0.01)
        assert sent < limit, "the server kept reading queries whose replies were not read"
        # Another connection is answered meanwhile.
        assert ask("127.0.0.1", port, b"7, 8\r\n", 1) == [b"7, 8 : USERID : UNIX : static"]
        # The flooding client reads at last: one reply per whole query, in order.
        whole = sent // len(chunk) * 1000 + chunk[: sent % len(chunk)].count(b"\n")
        flood.setblocking(True)
        flood.settimeout(TIMEOUT)
        received = b""
        while received.count(b"\r\n") < whole:
            data = flood.recv(65536)
            assert data, "closed before every reply was sent"
            received += data
        flood.close()
    finally:
        server.stop()
    replies = received.split(b"\r\n")[:-1]
    assert len(replies) == whole
    assert all(r == b"%d, 1 : USERID : UNIX : static" % (i % 1000 % 65535 + 1) for i, r in enumerate(replies))


def test_a_client_that_never_reads_is_cut_off(impl):
    """After the idle timeout, a connection whose replies are not being read is
    closed -- aborted, once its replies have not left for the grace period -- rather
    than kept for ever."""
    server = Served(impl.name, "--static", "--small-buffers", "--timeout", "1", "--grace", "1")
    try:
        flood = socket.socket()
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flood.connect(("127.0.0.1", server.ports["ipv4"]))
        flood.setblocking(False)
        chunk = b"1, 1\r\n" * 1000
        started = time.monotonic()
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            while time.monotonic() - started < TIMEOUT:
                try:
                    flood.send(chunk)
                except BlockingIOError:
                    time.sleep(0.05)
        assert time.monotonic() - started < 8  # 1 s idle, 1 s grace, and some slack
        flood.close()
    finally:
        server.stop()
