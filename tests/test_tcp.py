"""txframe's line protocols over real TCP on 127.0.0.1, against themselves and Twisted.

Twisted's reactor cannot be restarted inside pytest, so every scenario runs in its own
Python process (``tests/peers/line_peer.py``) with its own reactor, bound to the
implementation of the ``impl`` fixture; it prints JSON observations that are checked
here against what the test data (regenerated here from the same seed) demands.
Everything is bounded: the peer stops its reactor after 20 s, and is killed after 30.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.peer

PEER_PATH = Path(__file__).parent / "peers" / "line_peer.py"
PEER_TIMEOUT = 30

_spec = importlib.util.spec_from_file_location("txframe_tests_line_peer", PEER_PATH)
assert _spec is not None and _spec.loader is not None
peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer)

FRAMER_MODULES = {"compiled": "txframe._lines_c", "pure": "txframe._lines_py"}
CLEAN = "ConnectionDone"
# a peer that drops the connection while the other side is still sending may reset it
DROPPED = {"ConnectionDone", "ConnectionLost"}


def run_peer(scenario: str, impl_name: str, seed: int) -> dict:
    """Run one scenario in a fresh process; return its result after the common checks."""
    proc = subprocess.run(
        [sys.executable, str(PEER_PATH), scenario, impl_name, "--seed", str(seed)],
        capture_output=True,
        timeout=PEER_TIMEOUT,
        cwd=PEER_PATH.parent,
    )
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, stderr
    lines = proc.stdout.decode().strip().splitlines()
    assert lines, f"no output; stderr:\n{stderr}"
    output = json.loads(lines[-1])
    assert "error" not in output, f"{output.get('error')}\nprogress: {output.get('progress')}\n{stderr}"
    assert output["logged_errors"] == [], "\n".join(output["logged_errors"])
    assert output["impl"] == impl_name
    assert output["framer_module"] == FRAMER_MODULES[impl_name]
    return output["result"]


def test_echo_many_lines(impl):
    """(a) 20,000 lines of random lengths (some of 70-300 kB, so several segments),
    written in pieces of 1 byte to 200 kB, echoed by a txframe LineReceiver to a
    txframe.testing.AccumulatingProtocol: every byte comes back, in order."""
    seed = 1001
    lines = peer.echo_lines(seed)
    assert len(lines) == 20_000
    assert sum(len(line) > 65536 for line in lines) >= 5  # beyond one segment / one read
    assert lines.count(b"") > 100
    payload = b"".join(line + b"\r\n" for line in lines)
    expected = hashlib.sha256(payload).hexdigest()

    result = run_peer("echo", impl.name, seed)

    server = result["server"]
    assert server["lines"] == len(lines)
    assert server["digest"] == expected
    assert server["reason"] == CLEAN
    client = result["client"]
    assert client["first_mismatch"] is None
    assert client["bytes"] == len(payload)
    assert client["digest"] == expected
    assert client["data_type"] == "bytes"
    assert (client["made"], client["closed"], client["reason"]) == (1, 1, CLEAN)
    # the AccumulatingProtocol API over a real connection: both Deferreds fired and reset
    assert client["made_fired_with_client"] == [True]
    assert client["factory_deferred"] == "None"
    assert client["closedDeferred"] == "None"


@pytest.mark.parametrize("scenario", ["twisted-server", "twisted-client"])
def test_twisted_peer(impl, scenario):
    """(b) a Twisted LineReceiver server answering txframe LineOnlyReceiver and
    LineReceiver clients, and txframe servers answering Twisted LineReceiver clients:
    2,000 lines each way, every reply right and in order."""
    seed = 2002
    lines = peer.peer_lines(seed)
    expected = peer.digest([peer.reply(index, line) for index, line in enumerate(lines, 1)])

    result = run_peer(scenario, impl.name, seed)

    assert sorted(result) == ["LineOnlyReceiver", "LineReceiver"]
    for name, pair in result.items():
        assert pair["server"] == {"lines": len(lines), "reason": CLEAN}, name
        assert pair["client"] == {"replies": len(lines), "digest": expected, "reason": CLEAN}, name


def test_pause_resume(impl):
    """(c) servers call pauseProducing after every 400th line and resumeProducing from a
    callLater: no line and no data while paused, the lines buffered at the pause are
    delivered on resume, and all 3,000 arrive in order."""
    seed = 3003
    lines = peer.peer_lines(seed, peer.PAUSE_LINES, 1000)
    pauses = (len(lines) - 1) // peer.PAUSE_EVERY

    result = run_peer("pause", impl.name, seed)

    assert sorted(result) == ["LineOnlyReceiver", "LineReceiver"]
    for name, outcome in result.items():
        server = outcome["server"]
        assert server["lines"] == len(lines), name
        assert server["digest"] == peer.digest(lines), name
        assert server["pauses"] == pauses, name
        assert server["paused_flags"] == [True] * pauses, name
        assert server["lines_while_paused"] == 0, name
        assert server["data_while_paused"] == 0, name  # the transport was paused too
        assert server["min_gap"] >= peer.PAUSE_DELAY - 0.005, name
        # lines that had arrived before a pause waited for resumeProducing
        assert server["lines_on_resume"] > 0, name
        assert server["reason"] == CLEAN, name
        assert outcome["client_reason"] == CLEAN, name


def test_raw_mode_tiny_http(impl):
    """(d) 60 pipelined requests: header lines, then a body of Content-Length bytes
    read in raw mode (bodies hold CRLFs, blank lines and fake requests), then line
    mode again on whatever follows the body in the same chunk."""
    seed = 4004
    requests = peer.http_requests(seed)
    assert max(len(body) for _, body in requests) > 65536
    expected = peer.digest([peer.http_reply(path, body) for path, body in requests])

    result = run_peer("raw", impl.name, seed)

    server = result["server"]
    assert server["bad_headers"] == []
    assert server["requests"] == len(requests)
    assert server["raw_calls"] >= sum(1 for _, body in requests if body)
    assert server["line_mode_at_end"] == 1
    assert server["reason"] == CLEAN
    assert result["client"] == {"replies": len(requests), "digest": expected, "reason": CLEAN}


def test_line_too_long_drops_connection(impl):
    """(e) after 300 valid lines (some exactly MAX_LENGTH long), a line of 5 * MAX_LENGTH
    with or without a delimiter: the server delivers the 300 lines, calls
    lineLengthExceeded once with the start of the long line, delivers nothing after it
    and drops the connection; the client, which never closes, sees connectionLost."""
    seed = 5005
    max_length = peer.TOO_LONG_MAX
    valid, too_long, after = peer.long_line_inputs(seed, max_length)
    assert max(len(line) for line in valid) == max_length
    rests = {
        "delimited": too_long + b"\r\n" + b"".join(line + b"\r\n" for line in after),
        "undelimited": too_long,
    }

    result = run_peer("too-long", impl.name, seed)

    assert sorted(result) == sorted(
        f"{cls}-{variant}" for cls in ("LineReceiver", "LineOnlyReceiver") for variant in rests
    )
    for key, outcome in result.items():
        rest = rests[key.rsplit("-", 1)[1]]
        server = outcome["server"]
        assert server["lines"] == len(valid), key
        assert server["digest"] == peer.digest(valid), key
        [length] = server["exceeded"]
        assert max_length < length <= len(rest), key
        assert server["exceeded_digests"] == [hashlib.sha256(rest[:length]).hexdigest()], key
        assert server["reason"] in DROPPED, key
        assert outcome["client"]["closed"] == 1, key
        assert outcome["client"]["reason"] in DROPPED, key
