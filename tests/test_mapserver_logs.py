"""serve-map's log format (txframe.mapserver.logs): no timestamp of ours under journald
(``$JOURNAL_STREAM`` naming stderr) or with ``--no-timestamps``, and debug lines that
name the client (real TCP and unix connections)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys

import pytest

from txframe.mapserver import logs

_LOG = """
import logging, sys
from txframe.mapserver.logs import setup_logging
setup_logging("debug", timestamps={timestamps})
logging.getLogger("txframe.serve_map").info("hello")
logging.getLogger("txframe.serve_map").error("bad\\nsecond line")
"""

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def log_lines(tmp_path, env: dict[str, str] | None = None, timestamps=None,
              journal_stream_of_stderr: bool = False) -> list[str]:
    path = tmp_path / "stderr"
    with open(path, "wb") as handle:
        env = {**os.environ, **(env or {})}  # JOURNAL_STREAM="" for "not set"
        if journal_stream_of_stderr:  # as systemd sets it: stderr's device and inode
            st = os.fstat(handle.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        subprocess.run([sys.executable, "-c", _LOG.format(timestamps=timestamps)],
                       stderr=handle, env=env, timeout=30, check=True)
    return path.read_text().splitlines()


def test_timestamps_by_default(tmp_path):
    lines = log_lines(tmp_path, {"JOURNAL_STREAM": ""})
    assert STAMP.match(lines[0]), lines
    assert re.search(r"txframe serve-map\[\d+\] INFO: hello$", lines[0])


def test_no_timestamps_under_journald(tmp_path):
    lines = log_lines(tmp_path, journal_stream_of_stderr=True)
    assert lines[0].startswith("<6>txframe serve-map["), lines  # journald's priority
    assert lines[0].endswith("INFO: hello")
    assert lines[1].startswith("<3>txframe serve-map[") and lines[1].endswith("ERROR: bad")
    assert lines[2] == "<3>second line"  # every line of an entry carries it


def test_journal_stream_of_another_file_is_not_journald(tmp_path):
    # stderr redirected (or a child inheriting the variable): JOURNAL_STREAM names
    # another file, so this stderr gets timestamps
    other = os.stat(tmp_path)
    lines = log_lines(tmp_path, {"JOURNAL_STREAM": f"{other.st_dev}:{other.st_ino}"})
    assert STAMP.match(lines[0]), lines
    lines = log_lines(tmp_path, {"JOURNAL_STREAM": "garbage"})
    assert STAMP.match(lines[0]), lines


def test_no_timestamps_option(tmp_path):
    lines = log_lines(tmp_path, {"JOURNAL_STREAM": ""}, timestamps=False)
    assert re.match(r"^txframe serve-map\[\d+\] INFO: hello$", lines[0]), lines


async def _peer_of(connect) -> str:
    seen: asyncio.Future = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            seen.set_result(logs.describe_peer(transport))

    server, client = await connect(Probe)
    try:
        return await asyncio.wait_for(seen, 10)
    finally:
        client.close()
        server.close()


def test_describe_tcp_client():
    async def connect(factory):
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        client = socket.create_connection(server.sockets[0].getsockname())
        return server, client

    described = asyncio.run(_peer_of(connect))
    assert re.fullmatch(r"127\.0\.0\.1:\d+", described)


@pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="SO_PEERCRED is Linux's")
def test_describe_unix_client(tmp_path):
    path = str(tmp_path / "s")

    async def connect(factory):
        server = await asyncio.get_running_loop().create_unix_server(factory, path)
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        return server, client

    described = asyncio.run(_peer_of(connect))
    uid = os.getuid()
    assert re.fullmatch(rf"unix pid {os.getpid()} uid {uid}( \(\w+\))?", described), described
