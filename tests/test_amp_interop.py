"""txframe's AMP against Twisted's AMP in another process, over real TCP on 127.0.0.1.

Two directions, for each implementation of the ``impl`` fixture:

- ``txframe-to-twisted``: a Twisted ``amp.AMP`` server process; a txframe client
  process (``txframe.amp.AMP`` bound to the implementation);
- ``twisted-to-txframe``: a txframe server process; a Twisted client process.

Both sides answer every Command of ``tests/peers/amp_commands.py`` (AMP is symmetric:
the servers call back on the clients too). The client process runs every scenario of
``tests/peers/amp_peer.py`` and prints JSON; the server prints its record of every
connection when it is told to stop. Each pair of processes runs once per direction
and implementation (cached below); the tests assert on parts of the output.

The test values are recomputed here from ``amp_commands`` (nothing the peers report
is trusted for what they should have seen). The ``raw`` scenarios (a misbehaving
client writing bytes) and ``raw-server`` (a misbehaving server answering scripted
bytes) also run against Twisted: txframe must do what Twisted does, except where
txframe's limits are documented to differ (MAX_BOX_LENGTH).

Everything is bounded: each scenario by 12 s, the client process by a 26 s watchdog,
the server by 28 s; either is killed after 30.
"""

from __future__ import annotations

import collections
import copy
import importlib.util
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.peer

PEERS = Path(__file__).parent / "peers"
PEER_PATH = PEERS / "amp_peer.py"
PEER_TIMEOUT = 30

_spec = importlib.util.spec_from_file_location(
    "txframe_tests_amp_commands", PEERS / "amp_commands.py"
)
assert _spec is not None and _spec.loader is not None
C = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(C)

BOX_MODULES = {"compiled": "txframe._boxes_c", "pure": "txframe._boxes_py"}
#: direction -> (server side, client side)
DIRECTIONS = {
    "txframe-to-twisted": ("twisted", "txframe"),
    "twisted-to-txframe": ("txframe", "twisted"),
}
CLEAN = "ConnectionDone"
# a peer that drops the connection while the other side is still sending may reset it
DROPPED = {"ConnectionDone", "ConnectionLost"}


# -- running the peers -----------------------------------------------------------------


def _read_json(path: Path) -> Any:
    lines = path.read_text(errors="replace").strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def _run_pair(server_side: str, client_side: str, impl_name: str) -> dict:
    """Start a server process, run a client process against it, stop the server;
    return both outputs."""
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="txframe-amp-") as tmp:
        out = Path(tmp) / "server.out"
        err = Path(tmp) / "server.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            server = subprocess.Popen(
                [python, str(PEER_PATH), "server", server_side, impl_name],
                stdout=stdout,
                stderr=stderr,
                cwd=PEERS,
            )
        try:
            deadline = time.monotonic() + 15
            ports = None
            while ports is None:
                text = out.read_text()
                if "\n" in text:
                    ports = json.loads(text.splitlines()[0])
                elif server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the server did not start:\n{err.read_text()}")
                else:
                    time.sleep(0.02)
            client = subprocess.run(
                [python, str(PEER_PATH), "client", client_side, impl_name]
                + ["--port", str(ports["port"]), "--locator-port", str(ports["locator_port"])]
                + ["--peer", server_side],
                capture_output=True,
                timeout=PEER_TIMEOUT,
                cwd=PEERS,
            )
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)  # the reactor stops, the record is printed
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        client_err = client.stderr.decode(errors="replace")
        assert client.returncode == 0, client_err[-5000:]
        client_out = client.stdout.decode().strip().splitlines()
        assert client_out, f"no client output; stderr:\n{client_err[-5000:]}"
        client_json = json.loads(client_out[-1])
        server_json = _read_json(out)
        assert server_json is not None and "connections" in server_json, err.read_text()[-5000:]
    for name, output in (("client", client_json), ("server", server_json)):
        assert "error" not in output, (
            f"{name}: {output['error']}\nprogress: {output.get('progress')}"
        )
    return {"client": client_json, "server": server_json}


_runs: dict[tuple[str, str], Any] = {}


def run(impl: Any, direction: str) -> dict:
    """Both outputs for *direction* on *impl* (run once, then cached; a failure too)."""
    key = (impl.name, direction)
    if key not in _runs:
        server_side, client_side = DIRECTIONS[direction]
        try:
            _runs[key] = _run_pair(server_side, client_side, impl.name)
        except (AssertionError, subprocess.TimeoutExpired, OSError, ValueError) as e:
            _runs[key] = f"{type(e).__name__}: {e}"
    result = _runs[key]
    if isinstance(result, str):
        pytest.fail(f"the {direction} peers failed: {result}", pytrace=False)
    return result


def scenario(impl: Any, direction: str, name: str) -> Any:
    """The client's observations of one scenario (failing the test if it broke)."""
    result = run(impl, direction)["client"]["results"][name]
    if "error" in result:
        pytest.fail(
            f"scenario {name} ({direction}) broke:\n{result['error']}\n{result.get('progress')}",
            pytrace=False,
        )
    return result


def server_record(impl: Any, direction: str, port: str) -> dict:
    """The server's record of the connection from the client's port *port*."""
    return run(impl, direction)["server"]["connections"][port]


directions = pytest.mark.parametrize("direction", list(DIRECTIONS))


# -- the peers ---------------------------------------------------------------------------


@directions
def test_peers_use_the_implementation(impl, direction):
    """The txframe side really ran the implementation under test; both ran clean."""
    outputs = run(impl, direction)
    server_side, client_side = DIRECTIONS[direction]
    for role, side in (("server", server_side), ("client", client_side)):
        output = outputs[role]
        assert output["side"] == side
        assert output["impl"] == impl.name
        assert output["box_module"] == (BOX_MODULES[impl.name] if side == "txframe" else "twisted")
    assert sorted(outputs["client"]["results"]) == sorted(
        ["echo", "echo-locator", "large", "local-errors", "errors", "concurrent",
         "connection-loss-close", "connection-loss-abort", "switch", "switch-reverse",
         "callback", "mixed", "large-over-limit", "tls", "raw", "raw-server"]
    )


# -- arguments -----------------------------------------------------------------------------


@directions
@pytest.mark.parametrize("name", ["echo", "echo-locator"])
def test_every_argument_type_round_trips(impl, direction, name):
    """Integer (huge ones too), String (empty to 65,535 bytes), Unicode (non-BMP),
    Boolean, Float (inf, nan, -0.0), Decimal (NaN, sNaN, exponents), DateTime (UTC
    offsets), Path, ListOf (nested), AmpList (nested), optional arguments, a Command
    with every type, keyword and dashed names, 255-byte keys with 65,535-byte values,
    and the conversions Twisted allows (a float or bool to Integer, a bytearray or
    memoryview to String, any truth value to Boolean): each answered at once and
    through a Deferred, equal (type-tagged) to what was expected, and the responder
    decoded exactly that. ``echo-locator``: the server's AMP dispatches to a separate
    CommandLocator."""
    result = scenario(impl, direction, name)
    cases = C.echo_cases()
    assert len(cases) >= 90
    problems = {}
    for case, _, _, expected in cases:
        want = C.seen_digest(expected).decode()
        for mode, outcome in result["cases"][case].items():
            if not outcome.get("ok") or outcome.get("seen") != want:
                problems[f"{case}/{mode}"] = outcome
    assert problems == {}
    assert result["commands"] == 2 * len(cases)


@directions
def test_callbacks_the_other_way(impl, direction):
    """The server calls every echo case (and some large values) back on the client
    while the client's call waits: the client side is the responder this time."""
    result = scenario(impl, direction, "callback")
    checked = len(C.callback_cases())
    assert result["answer"] == {"checked": checked, "failures": []}
    assert result["answered_here"] == checked


@directions
def test_large_values(impl, direction):
    """txframe.amp.LargeString / LargeUnicode (used by both sides: Twisted's AMP
    decodes them too) of 0 to 10 MiB, across every 65,535-byte boundary and with
    4-byte characters cut between pieces; an optional one, absent and present."""
    result = scenario(impl, direction, "large")
    cases = C.large_cases()
    assert {case for case, *_ in cases} >= {
        "largestring-65536", "largestring-1048576", "largestring-10485760",
        "largeunicode-65536", "largeunicode-1048576", "largeunicode-10485760",
    }
    problems = {}
    for case, _, _, expected in cases:
        outcome = result["cases"][case]
        if not outcome.get("ok") or outcome.get("seen") != C.seen_digest(expected).decode():
            problems[case] = outcome
    assert problems == {}
    assert result["commands"] == len(cases)


@directions
def test_large_value_over_max_box_length(impl, direction):
    """A 17 MiB LargeString: whichever txframe side receives a box that big drops the
    connection (MAX_BOX_LENGTH is 16 MiB). A txframe client receiving the answer
    fails the call with TooLong; a Twisted client sees its connection dropped by the
    txframe server. The server then serves a new connection."""
    result = scenario(impl, direction, "large-over-limit")
    call = result["call"]
    if direction == "txframe-to-twisted":
        assert call == {"how": "failed", "type": "TooLong", "message": "", "isKey": False,
                        "isLocal": False, "keyName": "None"}
        assert result["lost"] in DROPPED
    else:
        assert call["how"] == "failed" and call["type"] in DROPPED
        assert result["lost"] in DROPPED
    assert result["afterwards"]["ok"]


@directions
def test_start_tls(impl, direction):
    """StartTLS (the server's self-signed certificate): calls made while TLS starts
    are held back (only the StartTLS box is written) and answered once it has; then a
    1 MiB LargeString and every argument type go over TLS."""
    result = scenario(impl, direction, "tls")
    assert result["tls_before"] is False
    assert result["written_while_starting"] == len(
        C.amp.AmpBox({b"_command": b"StartTLS", b"_ask": b"1"}).serialize()
    )
    assert result["start"] == {"how": "ok"}
    assert result["buffered"] == [True] * 10
    assert result["tls_after"] is True
    assert result["peer_common_name"] == C.TLS_COMMON_NAME
    assert result["large"] is True and result["all"] is True
    assert result["commands"] == 13  # StartTLS, 10 buffered, the large one, EchoAll


LOCAL_ERRORS = {
    "string-65536": ("raised", "TooLong"),
    "unicode-65536": ("raised", "TooLong"),
    "limits-65536": ("raised", "TooLong"),
    "listof-65536": ("raised", "TooLong"),
    "integer-4301-digits": ("raised", "ValueError"),
    "float-not-float": ("raised", "ValueError"),
    "decimal-not-decimal": ("raised", "ValueError"),
    "datetime-naive": ("raised", "ValueError"),
    "unicode-surrogate": ("raised", "UnicodeEncodeError"),
    "string-given-str": ("raised", "TypeError"),
    "listof-element-65536": ("raised", "error"),  # struct.error
    "unicode-given-bytes": ("raised", "AttributeError"),
    "integer-given-str": ("raised", "TypeError"),
    "boolean-missing": ("deferred-failed", "InvalidSignature"),
    "missing-argument": ("deferred-failed", "InvalidSignature"),
    "unknown-argument": ("raised", "InvalidSignature"),
}


@directions
def test_local_errors_send_nothing(impl, direction):
    """Values that cannot be encoded (a 65,536-byte value: TooLong, isLocal), wrong
    types, missing and unknown arguments fail the call before a byte is written; the
    server saw only the one good call."""
    result = scenario(impl, direction, "local-errors")
    cases = result["cases"]
    assert set(cases) == {case for case, _, _ in C.local_error_cases()} == set(LOCAL_ERRORS)
    assert {case: (outcome["how"], outcome["type"]) for case, outcome in cases.items()} == LOCAL_ERRORS
    written = {case: outcome["written"] for case, outcome in cases.items()}
    assert written == dict.fromkeys(LOCAL_ERRORS, 0)
    for case in ("string-65536", "unicode-65536", "listof-65536"):
        assert (cases[case]["isLocal"], cases[case]["isKey"]) == (True, False)
        assert cases[case]["keyName"] == "b'value'"
    assert result["first"] == 5
    assert result["commands"] == 1


def test_local_errors_match_twisted(impl):
    """txframe's client fails each bad call exactly as Twisted's client does (type,
    message, attributes, raised or through the Deferred)."""
    txframe = scenario(impl, "txframe-to-twisted", "local-errors")["cases"]
    twisted = scenario(impl, "twisted-to-txframe", "local-errors")["cases"]
    assert txframe == twisted


# -- errors --------------------------------------------------------------------------------


@directions
def test_errors(impl, direction):
    """Known errors (raised or through a Deferred) arrive as the Command's exception
    with their non-ASCII description; an unmapped RemoteAmpError as
    UnknownRemoteError; an unknown command as UnhandledCommand; extra keys in an
    answer are ignored; unanswered commands return None. The connection carries on."""
    result = scenario(impl, direction, "errors")
    known = {"how": "failed", "type": "KnownError", "message": C.KNOWN_MESSAGE}
    assert result["known"] == known
    assert result["known-deferred"] == known
    assert result["remote"] == {"how": "failed", "type": "UnknownRemoteError",
                                "message": "Code<UNKNOWN>: custom r\u00e9mote"}
    assert result["extra-keys"] == {"never": 1}
    assert result["unhandled"]["type"] == "UnhandledCommand"
    assert "NotThere" in result["unhandled"]["message"]
    assert result["reply-65535"] is True
    assert result["notify"] == ["None"] * 3
    # callRemoteString, answered by a low-level amp_RAWECHO responder given the box
    assert result["string-command"] == {
        "_answer": result["string-command"]["_answer"], "keys": "_ask,_command,x,y-z"
    }
    assert result["echo-after"]["ok"]
    assert result["commands"] == 10  # 3 Fail, extra-keys, RAWECHO, Reply, 3 Notify, the echo
    assert result["still-open"] is True


@directions
@pytest.mark.parametrize(
    "kind, error, message",
    [
        ("fatal", "FatalError", C.FATAL_MESSAGE),
        ("unknown", "UnknownRemoteError", "Code<UNKNOWN>: Unknown Error"),
        ("unknown-deferred", "UnknownRemoteError", "Code<UNKNOWN>: Unknown Error"),
        ("bad-return", "UnknownRemoteError", "Code<UNKNOWN>: Unknown Error"),
    ],
)
def test_errors_that_close_the_connection(impl, direction, kind, error, message):
    """A fatal error, an unknown one (UNKNOWN) and a response the responder cannot
    serialize: the caller gets the error, then the responder's side closes the
    connection; a later callRemote fails with the reason."""
    result = scenario(impl, direction, "errors")[kind]
    assert result == {
        "how": "failed",
        "type": error,
        "message": message,
        "lost": CLEAN,
        "call-after": {"how": "failed", "type": CLEAN, "message": "Connection was closed cleanly."},
    }


@directions
def test_answer_too_long_drops_the_connection(impl, direction):
    """A responder answering a 65,536-byte String: the answer cannot be encoded, so
    the responder's side logs it and drops the connection (as Twisted does)."""
    result = scenario(impl, direction, "errors")["reply-65536"]
    assert result["how"] == "failed" and result["type"] in DROPPED
    assert result["lost"] in DROPPED
    assert result["call-after"]["type"] in DROPPED


# -- many calls ---------------------------------------------------------------------------


@directions
def test_concurrent_calls_answered_out_of_order(impl, direction):
    """1,000 calls outstanding at once, answered after 0 to 0.2 s (some at once, some
    failing with KnownError): every one gets its own answer."""
    result = scenario(impl, direction, "concurrent")
    assert result["outstanding_at_once"] == C.CONCURRENT_CALLS
    assert result["answers"] == result["distinct"] == C.CONCURRENT_CALLS
    assert result["wrong"] == []
    assert result["known_errors"] == [n for n in range(C.CONCURRENT_CALLS) if n % C.FAIL_EVERY == 0]
    assert not result["in_call_order"]
    assert result["out_of_place"] > C.CONCURRENT_CALLS // 2
    assert result["commands"] == C.CONCURRENT_CALLS


@directions
def test_mixed_calls_pipelined(impl, direction):
    """Every kind of call on one connection at once: Schema-path calls, LargeString
    ones (Twisted's Argument path), unanswered ones, errors, Deferred answers."""
    result = scenario(impl, direction, "mixed")
    assert result == {"calls": 250, "notified": 50, "wrong": [], "commands": 300,
                      "_seconds": result["_seconds"]}


@directions
@pytest.mark.parametrize("how, reason", [("close", "ConnectionDone"), ("abort", "ConnectionLost")])
def test_connection_lost_with_calls_outstanding(impl, direction, how, reason):
    """The server drops the connection (cleanly, or aborting it) while 100 calls wait:
    all 100 fail with the reason, and so does a later callRemote. The server's
    answers after the loss go nowhere, quietly (see test_logged_errors)."""
    result = scenario(impl, direction, f"connection-loss-{how}")
    assert result["results"] == {reason: C.HANG_CALLS}
    assert result["lost"] == reason
    assert result["call-after"]["how"] == "failed"
    assert result["call-after"]["type"] == reason
    servers = [
        record for record in run(impl, direction)["server"]["connections"].values()
        if record.get("dropped") == how
    ]
    assert len(servers) == 1
    assert servers[0]["commands"] == C.HANG_CALLS
    assert servers[0]["answered_after_loss"] == C.HANG_CALLS


# -- protocol switching ----------------------------------------------------------------


@directions
def test_protocol_switch(impl, direction):
    """The client switches the connection to a line protocol (ProtocolSwitchCommand).
    Lines written right behind the switch box (before the answer) reach the server's
    line protocol, the greeting it writes at once reaches the client's, and each of
    them arrived in the same chunk as the box (the framer handed the rest on); 500
    lines written right after the switch come back; AMP calls then raise
    ProtocolSwitched. A refused switch leaves AMP working."""
    result = scenario(impl, direction, "switch")
    assert result["before"] is True
    assert result["answer"] == {"how": "ok"}
    assert result["call-after-switch"]["type"] == "ProtocolSwitched"
    assert result["lines"] == len(C.switch_expected())
    assert result["first_mismatch"] is None, result.get("around_mismatch")
    assert result["first_data_in_switch_chunk"] is True
    assert result["events"] == [
        "buildProtocol", f"inner connectionLost {CLEAN}", f"clientConnectionLost {CLEAN}"
    ]
    server = server_record(impl, direction, result["port"])
    assert server["switched"] is True
    assert server["switched_lines"] == len(C.EARLY_LINES) + C.SWITCH_LINES + 1
    assert server["first_data_in_switch_chunk"] is True
    refused = result["refused"]
    assert (refused["how"], refused["type"]) == ("failed", "SwitchRefused")
    assert refused["events"] == ["clientConnectionFailed ConnectionLost"]
    assert refused["echo-after"]["ok"]
    assert refused["commands"] == 2


@directions
def test_protocol_switch_the_other_way(impl, direction):
    """The server calls Switch on the client: the client's responder switches, greets
    at once, and echoes the lines the server wrote right behind the switch box (they
    came in the same chunk) and after the switch."""
    result = scenario(impl, direction, "switch-reverse")
    assert result["answer"] == {"how": "ok"}
    assert result["lost"] == CLEAN
    assert result["here"] == {
        "switched": True,
        "switched_lines": len(C.EARLY_LINES) + C.SWITCH_LINES + 1,
        "first_data_in_switch_chunk": True,
        "commands": 1,
    }
    reverse = server_record(impl, direction, result["port"])["reverse_switch"]
    assert reverse["answer"] == {"how": "ok"}
    assert reverse["lines"] == len(C.switch_expected())
    assert reverse["first_mismatch"] is None, reverse.get("around_mismatch")
    assert reverse["first_data_in_switch_chunk"] is True


# -- misbehaving peers -------------------------------------------------------------------


def _raw(impl: Any, direction: str) -> tuple[dict, dict]:
    """The raw client's records, each with the server's record of its connection."""
    result = copy.deepcopy(scenario(impl, direction, "raw"))
    afterwards = result.pop("afterwards")
    result.pop("_seconds")
    for record in result.values():
        record["server"] = server_record(impl, direction, record.pop("port"))
    return result, afterwards


TOO_LONG_KEY = {
    "type": "TooLong", "message": "", "isKey": True, "isLocal": False, "keyName": "None"
}
TOO_LONG_BOX = {
    "type": "TooLong", "message": "", "isKey": False, "isLocal": False, "keyName": "None"
}
ECHOED = {"_answer": "1", "seen": C.seen_digest({"value": 12345}).decode(), "value": "12345"}


def test_misbehaving_client_against_txframe_server(impl):
    """A client writing bytes no AMP peer should: a key over 255 bytes (even just its
    length), an HTTP request, random bytes, an empty box, a box without a command, an
    answer or error for no call, bad or missing arguments, a box that never ends
    (idle, or growing past MAX_BOX_LENGTH), and a box exactly at MAX_BOX_LENGTH; also
    valid traffic written a byte at a time, 1,000 pipelined calls, odd tags, extra
    and duplicate keys. The txframe server drops what it must, answers what it can,
    and serves a new connection correctly afterwards."""
    raw, afterwards = _raw(impl, "twisted-to-txframe")

    def dropped(name: str, stop: Any, replies: int = 0) -> None:
        record = raw[name]
        assert record["closed_by"] == "server", name
        assert record["reply_count"] == replies, name
        stopped = record["server"]["stop"]
        assert (stopped if isinstance(stop, dict) else stopped["type"]) == stop, name

    dropped("raw-key-256", TOO_LONG_KEY, 1)
    dropped("raw-key-65535", TOO_LONG_KEY, 1)
    assert raw["raw-key-256"]["replies"] == [ECHOED]  # what came before it was served
    dropped("raw-http", TOO_LONG_KEY)
    dropped("raw-garbage", TOO_LONG_KEY)
    # dataReceived raised: the reactor drops the connection at once, and with it the
    # answer to the good box written in the same turn (as with Twisted)
    dropped("raw-empty-box", "NoEmptyBoxes")
    dropped("raw-no-command", "NoEmptyBoxes")
    assert raw["raw-no-command"]["server"]["commands"] == 1
    dropped("raw-unknown-answer", "KeyError")
    dropped("raw-unknown-error", "KeyError")
    dropped("raw-binary-command", "UnicodeDecodeError")  # Twisted's locateResponder
    # a failing command nobody waits for: unhandled, logged, the connection dropped
    dropped("raw-no-ask-failing", CLEAN)
    dropped("raw-box-over-limit", TOO_LONG_BOX)
    dropped("raw-never-ending", TOO_LONG_BOX)
    # each connection dropped at a limit left one warning in the server's log, naming
    # the client (the peer filed it under the client port the warning names), the
    # limit and what arrived; a box exactly at the limit none
    for name in ("raw-key-256", "raw-key-65535", "raw-http", "raw-garbage",
                 "raw-box-over-limit", "raw-never-ending"):
        warnings = raw[name]["server"].get("warnings", [])
        assert len(warnings) == 1, (name, warnings)
        assert warnings[0].startswith("AMP peer 127.0.0.1:"), warnings
    assert "a key of 256 bytes, over AMP's limit of 255 bytes" in raw["raw-key-256"]["server"]["warnings"][0]
    over = raw["raw-box-over-limit"]["server"]["warnings"][0]
    limit = 16 * 1024 * 1024
    assert f"over MAX_BOX_LENGTH ({limit} bytes): {limit + 1} bytes so far" in over
    assert "warnings" not in raw["raw-box-at-limit"]["server"]
    for name in ("raw-bad-argument", "raw-missing-argument"):
        dropped(name, CLEAN, 1)
        assert raw[name]["replies"] == [
            {"_error": "1", "_error_code": "UNKNOWN", "_error_description": "Unknown Error"}
        ]

    def served(name: str, replies: int) -> None:
        record = raw[name]
        assert record["closed_by"] == "client", name
        assert record["reply_count"] == replies, name
        assert record["server"]["stop"]["type"] == CLEAN, name

    served("raw-valid-bytewise", 2)
    assert raw["raw-valid-bytewise"]["replies"] == [ECHOED, {"_answer": "2", "commands": "1"}]
    served("raw-unhandled-then-valid", 2)
    assert raw["raw-unhandled-then-valid"]["replies"][0]["_error_code"] == "UNHANDLED"
    served("raw-odd-tag", 1)
    assert raw["raw-odd-tag"]["replies"][0]["_answer"] == "\x00\xff odd tag"
    assert raw["raw-odd-tag"]["replies"][0]["value"] == "0"
    served("raw-extra-keys", 1)
    served("raw-duplicate-key", 1)
    assert raw["raw-duplicate-key"]["replies"][0]["value"] == "2"  # the last one wins
    served("raw-no-ask", 1)
    assert raw["raw-no-ask"]["replies"] == [{"_answer": "s", "commands": "1"}]
    served("raw-pipelined", 1000)
    assert raw["raw-pipelined"]["server"]["commands"] == 1000
    served("raw-box-at-limit", 1)
    assert raw["raw-box-at-limit"]["replies"] == [{"_answer": "1", "commands": "0"}]
    served("raw-partial-idle", 1)
    idle = raw["raw-partial-idle"]
    assert idle["open_while_idle"] and idle["open_after_other"]
    assert idle["other_connection"]["ok"]
    assert afterwards["ok"]


def test_misbehaving_client_txframe_server_matches_twisted(impl):
    """For every misbehaviour Twisted's server also bounds, txframe's server does
    what it does: the same replies (byte for byte, decoded), the same side closes,
    the same reason reaches stopReceivingBoxes."""
    txframe, _ = _raw(impl, "twisted-to-txframe")
    twisted, afterwards = _raw(impl, "txframe-to-twisted")
    assert afterwards["ok"]
    txframe_only = {"raw-box-at-limit", "raw-box-over-limit", "raw-never-ending"}
    assert set(txframe) - set(twisted) == txframe_only

    def view(record: dict) -> dict:
        return {
            "closed_by": record["closed_by"],
            "reply_count": record["reply_count"],
            "replies_digest": record["replies_digest"],
            "stop": record["server"]["stop"],
            "commands": record["server"]["commands"],
        }

    assert {name: view(txframe[name]) for name in twisted} == {
        name: view(twisted[name]) for name in twisted
    }


def test_misbehaving_server_txframe_client_matches_twisted(impl):
    """Our clients against a server answering scripted bytes: answers of the wrong
    type or missing keys, errors with bad UTF-8, unknown, UNHANDLED or fatal codes (a
    connection left open), an error without its code, answers in reverse order or a
    byte at a time, an answer for no call, a key over 255 bytes, an empty box, a box
    cut by the close. txframe's client does exactly what Twisted's does."""
    txframe = copy.deepcopy(scenario(impl, "txframe-to-twisted", "raw-server"))
    twisted = copy.deepcopy(scenario(impl, "twisted-to-txframe", "raw-server"))
    txframe.pop("_seconds")
    twisted.pop("_seconds")
    assert txframe == twisted
    # and what that is
    assert txframe["key-too-long"]["calls"] == [{"how": "failed", **TOO_LONG_KEY}]
    assert txframe["answers-reversed"]["calls"] == [
        {"how": "ok", "value": C.canon(n), "seen": C.canon(C.seen_digest({"value": n}))}
        for n in (1, 2, 3)
    ]
    assert txframe["error-known-bad-utf8"]["calls"][0] == {
        "how": "failed", "type": "KnownError", "message": "\ufffd\ufffd bad \ufffd"
    }
    assert txframe["close-mid-box"]["calls"] == [
        {"how": "failed", "type": CLEAN, "message": "Connection was closed cleanly."}
    ]
    # Twisted forgets the call before reading the error code: it never fires
    assert txframe["error-missing-code"] == {
        "calls": ["pending"], "open": False, "lost": "KeyError"
    }


# -- logs ----------------------------------------------------------------------------------


def _kinds(logged: list[str]) -> list[str]:
    """Each logged error as "<first line> | <exception type>: <message start>"."""
    kinds = []
    for text in logged:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        candidates = [line.removeprefix("Failure: ") for line in reversed(lines)]
        exception = next(
            (line for line in candidates if re.match(r"^[A-Za-z_][\w.]*\.\w+(: |:?$)", line)),
            lines[-1],
        )
        name, _, message = exception.partition(":")
        message = re.sub(r"0x[0-9a-f]{6,}", "0x?", message.strip())  # object addresses
        kinds.append(f"{lines[0][:60]} | {_short(name.rsplit('.', 1)[-1], message)}")
    return sorted(kinds)


def _short(name: str, message: str) -> str:
    return f"{name}: {message[:40]}"


EXPECTED_SERVER_LOGS = {
    _short(name, message)
    for name, message in [
        # the deliberate unknown errors, and a response that cannot be serialized
        ("ValueError", C.UNKNOWN_MARKER),
        ("BadLocalReturn", "<bound method make_peer.<locals>.Peer.fail of"),
        # an answer of 65,536 bytes
        ("TooLong", ""),
        # misbehaving clients
        ("NoEmptyBoxes", "AmpBox({})"),
        ("NoEmptyBoxes", "AmpBox({b'foo': b'bar'})"),
        ("KeyError", "b'zzz'"),
        ("ValueError", "invalid literal for int() with base 10: b'abc'"),
        ("KeyError", "b'value'"),
        ("UnicodeDecodeError", "'ascii' codec can't decode byte 0xff in position 4"),
        ("RemoteAmpError", "Code<KNOWN> (local): " + C.KNOWN_MESSAGE),
    ]
}
EXPECTED_CLIENT_LOGS = {
    _short(name, message)
    for name, message in [
        # misbehaving servers
        ("KeyError", "b'_error_code'"),
        ("KeyError", "b'zzzz'"),
        ("NoEmptyBoxes", "AmpBox({})"),
    ]
}


def test_logged_errors(impl):
    """Only the deliberate errors are logged (nothing for answers after a connection
    loss, switches, large values...), and txframe's side logs the same as Twisted's
    in the same place."""
    txframe_server = _kinds(run(impl, "twisted-to-txframe")["server"]["logged_errors"])
    twisted_server = _kinds(run(impl, "txframe-to-twisted")["server"]["logged_errors"])
    txframe_client = _kinds(run(impl, "txframe-to-twisted")["client"]["logged_errors"])
    twisted_client = _kinds(run(impl, "twisted-to-txframe")["client"]["logged_errors"])
    assert {kind.split(" | ", 1)[1] for kind in twisted_server} == EXPECTED_SERVER_LOGS
    assert {kind.split(" | ", 1)[1] for kind in twisted_client} == EXPECTED_CLIENT_LOGS
    assert collections.Counter(txframe_server) == collections.Counter(twisted_server)
    assert collections.Counter(txframe_client) == collections.Counter(twisted_client)
