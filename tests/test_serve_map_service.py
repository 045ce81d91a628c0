"""``txframe serve-map`` as a service, through the program: ``--user``/``--group`` (root
given up after binding, seen in /proc), ``--unix-group`` (the real ``postfix`` user's
``postmap -q`` reaches the socket, and is refused without it), systemd's notify
protocol read from a real ``NOTIFY_SOCKET`` (with the sender's pid, so that workers
are seen not to notify), socket activation through ``systemd-socket-activate``, and
the log format under journald. The module units are tested in test_mapserver_*.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from peer_rule import unavailable

pytestmark = pytest.mark.peer

if not sys.platform.startswith("linux"):
    # /proc, runuser, SO_PASSCRED, systemd: ci/test.sh runs these on Linux
    pytest.skip("serve-map's service tests run on Linux", allow_module_level=True)

_spec = importlib.util.spec_from_file_location(
    "txframe_tests_serve_map", Path(__file__).with_name("test_serve_map.py")
)
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def need_root() -> None:
    if os.geteuid() != 0:
        unavailable("serve-map's --user, --group and --unix-group need root")


def need_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        unavailable(f"no user {name!r} on this machine (Debian package postfix for postfix)")


def ids(pid: int) -> dict[str, list[int]]:
    """Uid, Gid and Groups of process *pid*, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            out[key] = [int(v) for v in value.split()]
    return out


@pytest.fixture
def shared_dir():
    """A directory other users may enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="txframe-service-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_dir(shared_dir: Path, user: str) -> Path:
    """Where serve-map, once *user*, writes its ready file."""
    path = shared_dir / "run"
    path.mkdir()
    shutil.chown(path, user)
    return path


def a_map(directory: Path, name: str = "virtual", entries: dict | None = None) -> Path:
    path = harness.write_map(directory / name, entries or {"info@example.com": "team@example.net"})
    path.chmod(0o644)
    return path


# -- --unix-group: the postfix user reaches the socket ------------------------------------


def postmap_as_postfix(socket_path: Path, key: str, config: Path):
    postmap = shutil.which("postmap", path=SBIN)
    if postmap is None:
        unavailable("postmap (Debian package postfix) is not installed")
    return subprocess.run(
        ["runuser", "-u", "postfix", "--", postmap, "-c", str(config), "-q", key,
         f"socketmap:unix:{socket_path}:virtual"],
        capture_output=True, text=True, timeout=60,
    )


def _postmap_config(directory: Path) -> Path:
    config = directory / "postfix"
    config.mkdir()
    (config / "main.cf").write_text("compatibility_level = 3.6\n")
    return config


@pytest.mark.parametrize("give", [True, False], ids=["unix-group", "root-only"])
def test_postfix_user_reaches_the_socket(tmp_path, shared_dir, give):
    need_root()
    need_user("postfix")
    sock = shared_dir / "maps.sock"
    options = ["--unix-group", "postfix"] if give else []
    served = harness.start(tmp_path, "--unix", str(sock), *options, str(a_map(shared_dir)))
    try:
        st = os.stat(sock)
        result = postmap_as_postfix(sock, "info@example.com", _postmap_config(shared_dir))
        if give:
            assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, pwd.getpwnam("postfix").pw_gid)
            assert (result.returncode, result.stdout) == (0, "team@example.net\n"), result.stderr
            # debug lines name the unix client: postmap, as the postfix user
            uid = pwd.getpwnam("postfix").pw_uid
            harness.wait_for(lambda: f"uid {uid} (postfix)" in served.log(), what="client logged")
        else:  # without --unix-group: root's socket, which Postfix's user cannot use
            assert result.returncode != 0
            assert "Permission denied" in result.stderr, result.stderr
    finally:
        assert served.stop() == 0, served.log()


def test_unix_mode_with_group(tmp_path, shared_dir):
    need_root()
    need_user("postfix")
    sock = shared_dir / "maps.sock"
    served = harness.start(tmp_path, "--unix", str(sock), "--unix-group", "postfix",
                           "--unix-mode", "0666", str(a_map(shared_dir)))
    try:
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o666
    finally:
        served.stop()


# -- --user / --group ---------------------------------------------------------------------


def free_low_port() -> int:
    """A free port below 1024 (only root may bind it), found now."""
    for port in range(1023, 600, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    unavailable("no free port below 1024")


def test_user_drops_root_after_binding_a_low_port(tmp_path, shared_dir):
    need_root()
    nobody = need_user("nobody")
    port = free_low_port()
    path = a_map(shared_dir)
    served = harness.start(run_dir(shared_dir, "nobody"), "--tcp", f"127.0.0.1:{port}",
                           "--user", "nobody", str(path))
    try:
        assert served.tcp == port
        got = ids(served.info["pid"])
        assert got["Uid"] == [nobody.pw_uid] * 4
        assert got["Gid"] == [nobody.pw_gid] * 4
        assert 0 not in got["Groups"]  # root's supplementary groups are gone
        client = harness.LineClient(port)
        assert client.get(b"info@example.com") == b"200 team@example.net\n"
        # reloads run as the user, and still work
        harness.write_map(path, {"info@example.com": "new@example.net"})
        path.chmod(0o644)
        served.signal(signal.SIGHUP)
        harness.wait_for(lambda: client.get(b"info@example.com") == b"200 new@example.net\n",
                         what="reloaded")
        client.close()
    finally:
        assert served.stop() == 0, served.log()


def test_unreadable_map_after_the_drop_is_a_warning(tmp_path, shared_dir):
    need_root()
    need_user("nobody")
    path = a_map(shared_dir)
    path.chmod(0o600)  # root's: loaded at start, but the user could not reload it
    served = harness.start(run_dir(shared_dir, "nobody"), "--tcp", "127.0.0.1:0",
                           "--user", "nobody", str(path))
    try:
        assert (f"map virtual: {path} is not readable by user nobody: reloads will fail"
                in served.log())
    finally:
        served.stop()


def test_group_option(tmp_path, shared_dir):
    need_root()
    nobody = need_user("nobody")
    postfix = need_user("postfix")
    served = harness.start(run_dir(shared_dir, "nobody"), "--tcp", "127.0.0.1:0",
                           "--user", "nobody", "--group", "postfix", str(a_map(shared_dir)))
    try:
        got = ids(served.info["pid"])
        assert got["Uid"][0] == nobody.pw_uid
        assert got["Gid"] == [postfix.pw_gid] * 4
    finally:
        served.stop()


def test_workers_run_as_the_user(tmp_path, shared_dir):
    """The supervisor keeps root (it restarts workers, which bind with SO_REUSEPORT
    beside its sockets); the workers give it up."""
    need_root()
    nobody = need_user("nobody")
    port = free_low_port()
    served = harness.start(tmp_path, "--tcp", f"127.0.0.1:{port}", "--workers", "2",
                           "--user", "nobody", str(a_map(shared_dir)))
    try:
        assert len(served.info["workers"]) == 2
        for pid in served.info["workers"]:
            assert ids(pid)["Uid"] == [nobody.pw_uid] * 4
        assert ids(served.info["pid"])["Uid"][0] == 0
        for _ in range(4):
            client = harness.LineClient(port)
            assert client.get(b"info@example.com") == b"200 team@example.net\n"
            client.close()
    finally:
        assert served.stop() == 0, served.log()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--user", "no-such-user-17b"], "--user no-such-user-17b: no such user"),
        (["--user", "nobody", "--group", "no-such-group-17b"],
         "--group no-such-group-17b: no such group"),
        (["--unix", "UNIX", "--unix-group", "no-such-group-17b"],
         "--unix-group no-such-group-17b: no such group"),
        (["--unix-group", "postfix"], "--unix-group without --unix"),
    ],
)
def test_bad_users_and_groups(tmp_path, args, message):
    args = [str(tmp_path / "s") if a == "UNIX" else a for a in args]
    status, err = harness.run_to_end(tmp_path, "--tcp", "127.0.0.1:0", *args,
                                     str(a_map(tmp_path)))
    assert status == 2, err
    assert err.strip().endswith(message), err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_user_without_root(tmp_path, shared_dir):
    """Not root: --user naming another user fails with one line, exit 1."""
    need_root()
    need_user("nobody")
    postfix = need_user("postfix")
    # run serve-map as nobody through a python that nobody can execute: the one we
    # run under may live in root's home, so start as root and become nobody first
    code = (  # (imports first: after setuid, root's home is out of reach)
        "import os, sys, asyncio, encodings.idna, txframe.mapserver.cli as cli, txframe.mapserver.server; "
        "cli.loop_factory('auto'); "
        "os.setgroups([]); os.setgid(65534); os.setuid(65534); sys.exit(cli.main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--tcp", "127.0.0.1:0", "--user", postfix.pw_name,
         str(a_map(shared_dir))],
        capture_output=True, text=True, timeout=60, cwd=shared_dir,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().endswith("--user and --group need root"), proc.stderr
    assert "Traceback" not in proc.stderr


# -- systemd: the notify protocol ---------------------------------------------------------


class NotifySocket:
    """systemd's side of sd_notify: a datagram socket that also learns each sender's
    pid (SO_PASSCRED), as systemd checks it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(path))
        self.sock.settimeout(20)

    def receive(self) -> tuple[int, dict[str, str]]:
        data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload[:12])[0]
        text = data.decode()
        return pid, dict(line.split("=", 1) for line in text.splitlines())

    def until(self, field: str) -> list[tuple[int, dict[str, str]]]:
        """Messages received up to and including one with *field*."""
        got = []
        while True:
            got.append(self.receive())
            if field in got[-1][1]:
                return got

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_notify_ready_reloading_stopping(tmp_path, workers):
    notify = NotifySocket(tmp_path / "notify")
    virtual = a_map(tmp_path)
    access = a_map(tmp_path, "access", {"a": "REJECT", "b": "OK"})
    served = harness.start(tmp_path, "--tcp", "127.0.0.1:0", "--workers", str(workers),
                           str(virtual), str(access), env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        main = served.info["pid"]
        messages = notify.until("READY")
        pid, ready = messages[-1]
        assert pid == main
        assert ready["STATUS"].startswith("serving virtual (1 entries")
        assert "access (2 entries" in ready["STATUS"]
        if workers == 1:  # a supervisor passes SIGHUP on; its workers do not notify
            before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            served.signal(signal.SIGHUP)
            pid, reloading = notify.until("RELOADING")[-1]
            assert pid == main and before <= int(reloading["MONOTONIC_USEC"])
            pid, again = notify.until("READY")[-1]
            assert pid == main and again["STATUS"].startswith("serving virtual")
        assert served.stop() == 0, served.log()
        messages = notify.until("STOPPING")
        assert {pid for pid, _ in messages} == {main}
        assert "READY" not in served.log()  # no worker tried (systemd would log it)
    finally:
        served.stop()
        notify.close()


def test_gone_notify_socket_is_logged_once(tmp_path):
    served = harness.start(tmp_path, "--tcp", "127.0.0.1:0", str(a_map(tmp_path)),
                           env={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    try:
        served.signal(signal.SIGHUP)
        harness.wait_for(lambda: "reloaded map virtual" in served.log(), what="reloaded")
        client = harness.LineClient(served.tcp)
        assert client.get(b"info@example.com") == b"200 team@example.net\n"
        client.close()
    finally:
        assert served.stop() == 0, served.log()
    assert served.log().count("cannot notify systemd") == 1, served.log()


# -- systemd: socket activation -------------------------------------------------------------


def passed_on() -> list[str]:
    """systemd-socket-activate clears the environment: pass on what picks txframe's
    implementation and path, as the rest of the suite inherits it."""
    return [f"--setenv={name}={os.environ[name]}"
            for name in ("TXFRAME_NO_EXTENSIONS", "PYTHONPATH") if name in os.environ]


def test_socket_activation(tmp_path):
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        unavailable("systemd-socket-activate (Debian package systemd) is not installed")
    socketmap_path, tcp_path = tmp_path / "socketmap.sock", tmp_path / "tcp.sock"
    log = tmp_path / "activated.log"
    with socket.socket() as probe:  # systemd-socket-activate wants a port number
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [activate, "-l", str(socketmap_path), "-l", str(tcp_path), "-l", f"127.0.0.1:{port}",
             "--fdname=socketmap:tcp=virtual:tcp=access", *passed_on(),
             sys.executable, "-m", "txframe", "serve-map", "--log-level", "debug",
             str(a_map(tmp_path)), str(a_map(tmp_path, "access", {"a": "REJECT"}))],
            stdout=out, stderr=out,
        )
    try:
        harness.wait_for(lambda: socketmap_path.exists() and tcp_path.exists(),
                         what="systemd-socket-activate listening")
        # the first connection starts serve-map, which serves it from the backlog
        client = harness.NetstringClient(unix=str(socketmap_path))
        assert client.query(b"access", b"a") == b"OK REJECT", log.read_text()
        client.close()
        line = socket.socket(socket.AF_UNIX)
        line.settimeout(20)
        line.connect(str(tcp_path))
        line.sendall(b"get info@example.com\n")
        assert line.recv(100) == b"200 team@example.net\n", log.read_text()
        line.close()
        inet = harness.LineClient(port)
        assert inet.get(b"a") == b"200 REJECT\n", log.read_text()
        inet.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text, text


def test_socket_activation_bad_name(tmp_path):
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        unavailable("systemd-socket-activate (Debian package systemd) is not installed")
    path = tmp_path / "s.sock"
    proc = subprocess.Popen(
        [activate, "-l", str(path), "--fdname=tcp=nosuchmap", *passed_on(),
         sys.executable, "-m", "txframe", "serve-map", str(a_map(tmp_path))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        harness.wait_for(path.exists, what="listening")
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
            _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, err
    assert "a socket named 'tcp=nosuchmap'" in err and "Traceback" not in err, err


# -- logs -------------------------------------------------------------------------------


def test_no_timestamps_under_journald(tmp_path):
    """With $JOURNAL_STREAM naming its stderr (as systemd sets it), serve-map's lines
    have no timestamp and start with their syslog priority."""
    log = tmp_path / "stderr"
    with open(log, "wb") as out:
        st = os.fstat(out.fileno())
        proc = subprocess.Popen(
            [sys.executable, "-m", "txframe", "serve-map", "--tcp", "127.0.0.1:0",
             str(a_map(tmp_path))],
            stdout=out, stderr=out,
            env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
        )
    try:
        harness.wait_for(lambda: "tcp_table map virtual on" in log.read_text(), what="serving")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    lines = log.read_text().splitlines()
    assert lines and all(line.startswith("<6>txframe serve-map[") for line in lines), lines


def test_no_timestamps_option(tmp_path):
    served = harness.start(tmp_path, "--tcp", "127.0.0.1:0", "--no-timestamps",
                           str(a_map(tmp_path)), env={"JOURNAL_STREAM": ""})
    served.stop()
    lines = served.log().splitlines()
    assert lines and all(line.startswith("txframe serve-map[") for line in lines), lines
