"""systemd integration (txframe.mapserver.systemd): sd_notify messages read from a real
``NOTIFY_SOCKET`` datagram socket made here, socket activation through systemd's own
``systemd-socket-activate``, and the unit files in examples/systemd checked by
``systemd-analyze verify``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peer_rule import unavailable

if not sys.platform.startswith("linux"):
    # systemd, its notify socket's abstract namespace and socket activation are Linux's
    pytest.skip("systemd integration is tested on Linux", allow_module_level=True)

from txframe.mapserver import systemd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "examples" / "systemd"


def receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(10)
    return sock


def fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    assert data.endswith("\n"), data
    return dict(line.split("=", 1) for line in data.splitlines())


# -- sd_notify ------------------------------------------------------------------------


def test_notify_to_a_path(tmp_path):
    path = str(tmp_path / "notify")
    sock = receiver(path)
    notifier = systemd.Notifier(path)
    assert notifier.enabled
    assert notifier.ready("serving virtual (2 entries)")
    assert fields(sock) == {"READY": "1", "STATUS": "serving virtual (2 entries)"}
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    got = fields(sock)
    assert got["RELOADING"] == "1"
    # systemd >= 253 (Type=notify-reload) wants the monotonic time the reload began
    assert before <= int(got["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.stopping()
    assert fields(sock)["STOPPING"] == "1"
    assert notifier.status("two\nlines")
    assert fields(sock) == {"STATUS": "two lines"}  # a newline would start a new field
    notifier.close()
    sock.close()


def test_notify_abstract_namespace():
    name = f"txframe-test-notify-{os.getpid()}-{time.monotonic_ns()}"
    sock = receiver(b"\0" + name.encode())
    notifier = systemd.Notifier("@" + name)
    assert notifier.ready("ok")
    assert fields(sock)["READY"] == "1"
    sock.close()


def test_no_notify_socket_does_nothing(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = systemd.Notifier.from_environment()
    assert not notifier.enabled
    assert not notifier.ready("x")


def test_from_environment_removes_the_variable(monkeypatch, tmp_path):
    # worker processes must not notify on the service's behalf
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "n"))
    assert systemd.Notifier.from_environment().enabled
    assert "NOTIFY_SOCKET" not in os.environ


def test_gone_notify_socket_logs_once(tmp_path, caplog):
    path = str(tmp_path / "notify")
    sock = receiver(path)
    notifier = systemd.Notifier(path)
    sock.close()
    os.unlink(path)
    with caplog.at_level(logging.INFO, logger="txframe.serve_map"):
        for _ in range(5):
            assert not notifier.status("nobody listens")
        warnings = [r for r in caplog.records if "NOTIFY_SOCKET" in r.getMessage()]
        assert len(warnings) == 1, caplog.text
        sock = receiver(path)  # systemd is back: notifying works again
        assert notifier.ready("back")
        assert fields(sock)["READY"] == "1"
    sock.close()


def test_unsupported_address_is_not_fatal(caplog):
    notifier = systemd.Notifier("vsock:2:1234")
    assert not notifier.enabled
    assert "not a unix socket address" in caplog.text


# -- socket activation ---------------------------------------------------------------

_SHOW_FDS = """
import json, os, socket, sys
from txframe.mapserver import systemd
if len(sys.argv) > 1:  # the environment to test, SELF for our pid; fd 3 a plain file
    env = json.loads(sys.argv[1])
    os.environ.update({k: v.replace("SELF", str(os.getpid())) for k, v in env.items()})
    if len(sys.argv) > 2:
        os.dup2(os.open(sys.argv[2], os.O_RDONLY), 3)
try:
    found = systemd.listen_fds()
except systemd.ActivationError as error:
    print(json.dumps({"error": str(error)}))
    sys.exit(0)
print(json.dumps({
    "fds": [[name, sock.fileno(), sock.family == socket.AF_UNIX,
             sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN),
             os.get_inheritable(sock.fileno())] for name, sock in found],
    "env": sorted(k for k in os.environ if k.startswith("LISTEN_")),
}))
"""


def _activator() -> str:
    found = shutil.which("systemd-socket-activate")
    if found is None:
        unavailable("systemd-socket-activate (Debian package systemd) is not installed")
    return found


def activate(tmp_path: Path, code: str, *listen: str, names: str | None = None) -> dict:
    """Run ``python -c CODE`` under systemd-socket-activate listening on *listen*; it
    starts the child at the first connection, which we make."""
    command = [_activator()]
    for path in listen:
        command += ["-l", path]
    if names is not None:
        command += [f"--fdname={names}"]
    proc = subprocess.Popen(
        [*command, sys.executable, "-c", code],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(listen[0]):
            assert time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.01)
        client = socket.socket(socket.AF_UNIX)
        client.connect(listen[0])
        out, err = proc.communicate(timeout=30)
        client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return json.loads(out)


def test_listen_fds_from_systemd_socket_activate(tmp_path):
    got = activate(tmp_path, _SHOW_FDS, str(tmp_path / "a"), str(tmp_path / "b"),
                   names="socketmap:tcp=virtual")
    assert got["fds"] == [["socketmap", 3, True, 1, False], ["tcp=virtual", 4, True, 1, False]]
    assert got["env"] == []  # removed: a child of ours does not take them


def test_listen_fds_default_name(tmp_path):
    got = activate(tmp_path, _SHOW_FDS, str(tmp_path / "a"))
    assert [fd[:2] for fd in got["fds"]] == [["unknown", 3]]


def _run_with_env(env: dict[str, str], *more: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _SHOW_FDS, json.dumps(env), *more],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return json.loads(out.stdout)


def test_listen_fds_for_another_process_are_left_alone():
    got = _run_with_env({"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    assert got == {"fds": [], "env": []}


def test_listen_fds_inconsistent():
    got = _run_with_env({"LISTEN_PID": "SELF", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "one"})
    assert got == {"error": "LISTEN_FDNAMES names 1 sockets but LISTEN_FDS=2"}
    got = _run_with_env({"LISTEN_PID": "SELF", "LISTEN_FDS": "x"})
    assert got == {"error": "LISTEN_FDS='x': not a number"}


def test_listen_fds_not_a_socket(tmp_path):
    (tmp_path / "f").write_text("")
    got = _run_with_env({"LISTEN_PID": "SELF", "LISTEN_FDS": "1"}, str(tmp_path / "f"))
    assert "descriptor 3 (unknown) is not a socket" in got["error"]


# -- the unit files --------------------------------------------------------------------


def _exec_start(unit: Path) -> list[str]:
    text = unit.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return line.split("=", 1)[1].split()


def test_unit_files_verify(tmp_path):
    """``systemd-analyze verify`` accepts every unit in examples/systemd without a
    warning. It wants ExecStart's program to exist: the copies verified run the
    installed ``txframe`` instead of /usr/local/bin's."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze (Debian package systemd) is not installed")
    program = Path(sys.executable).parent / "txframe"
    assert program.exists(), program
    units = sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.socket"))
    assert len(units) == 4, units
    for unit in units:
        (tmp_path / unit.name).write_text(
            unit.read_text().replace("/usr/local/bin/txframe", str(program))
        )
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / unit.name) for unit in units)],
        capture_output=True, text=True, timeout=60,
    )
    # verify exits 0 on keys it ignores; they are mistakes all the same
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_unit_files_use_serve_map_options():
    """Every ExecStart is a command line serve-map accepts, and the services tell
    systemd when they are ready."""
    from txframe.mapserver.config import parse_args

    for unit in sorted(UNITS.glob("*.service")):
        assert "\nType=notify\n" in unit.read_text(), unit
        command = _exec_start(unit)
        assert command[:2] == ["/usr/local/bin/txframe", "serve-map"], command
        parse_args(command[2:])  # raises UsageError on an option serve-map lacks
