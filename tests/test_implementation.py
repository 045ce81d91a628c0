"""Which implementation is in use, and the switch that picks it."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import types

import pytest

import txframe
from peer_rule import EXTENSIONS_REQUIRED
from txframe import basic, framing

DISABLED = os.environ.get("TXFRAME_NO_EXTENSIONS", "") not in ("", "0")


def run_python(code: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TXFRAME_")}
    environ.update(env)
    out = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


PROBE = """
import json, txframe
from txframe import basic, framing
print(json.dumps({
    "implementation": txframe.implementation,
    "framer": framing.LineFramer.__module__,
    "dataReceived": basic.LineReceiver.dataReceived.__module__,
    "setting": type(vars(basic.LineReceiver.__mro__[1])["delimiter"]).__name__,
}))
"""


def test_implementation_is_what_the_environment_asks_for():
    """The guard: with TXFRAME_REQUIRE_EXTENSIONS=1 (CI) the compiled framers are in use."""
    if DISABLED:
        assert txframe.implementation == "pure"
    elif EXTENSIONS_REQUIRED:
        assert txframe.implementation == "compiled"
        assert framing.LineFramer.__module__ == "txframe._lines_c"
        assert basic.LineReceiver.dataReceived.__module__ == "txframe._lines_c"
        assert framing.BoxFramer.__module__ == "txframe._boxes_c"
    else:
        try:
            importlib.import_module("txframe._lines_c")
        except ImportError:
            assert txframe.implementation == "pure"
        else:
            assert txframe.implementation == "compiled"


@pytest.mark.compiled
def test_compiled_module_is_an_extension():
    if not EXTENSIONS_REQUIRED:  # a pure install (the pure wheel) has no compiled module to check
        pytest.importorskip("txframe._lines_c")
    from txframe import _lines_c

    assert _lines_c.__file__.endswith((".so", ".pyd"))
    assert not isinstance(_lines_c.data_received, types.FunctionType)  # compiled


def test_implementation_matches_the_framer_in_use():
    expected = "txframe._lines_c" if txframe.implementation == "compiled" else "txframe._lines_py"
    assert framing.LineFramer.__module__ == expected
    assert basic.LineReceiver._lineFramer is framing.LineFramer
    assert basic.LineReceiver.dataReceived is framing.data_received


def test_amp_uses_the_selected_codec():
    from txframe import amp

    expected = "txframe._boxes_c" if txframe.implementation == "compiled" else "txframe._boxes_py"
    assert framing.BoxFramer.__module__ == expected
    assert framing.Schema.__module__ == expected
    assert amp.BinaryBoxProtocol._boxFramer is framing.BoxFramer
    assert amp.AMP._schemaType is framing.Schema
    assert amp.BinaryBoxProtocol._encodeBox is framing.encode_box


def test_no_extensions_selects_pure_at_import_time():
    probe = run_python(PROBE, TXFRAME_NO_EXTENSIONS="1")
    assert probe == {
        "implementation": "pure",
        "framer": "txframe._lines_py",
        "dataReceived": "txframe._lines_py",
        "setting": "bytes",  # plain class attributes, as in a pure install
    }


@pytest.mark.compiled
def test_default_selects_compiled_when_built():
    pytest.importorskip("txframe._lines_c")
    probe = run_python(PROBE)
    assert probe["implementation"] == "compiled"
    assert probe["framer"] == "txframe._lines_c"
    assert probe["setting"] == "Setting"


@pytest.mark.parametrize("value", ["0", ""])
def test_no_extensions_off_values(value):
    probe = run_python(PROBE, TXFRAME_NO_EXTENSIONS=value)
    try:
        importlib.import_module("txframe._lines_c")
    except ImportError:
        assert probe["implementation"] == "pure"
    else:
        assert probe["implementation"] == "compiled"
