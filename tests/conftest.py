"""Every framing test runs on both implementations.

The ``impl`` fixture is parametrized over ``compiled`` and ``pure``; the compiled half
carries the ``compiled`` marker and is skipped with ``--no-compiled`` (or when the
package was installed without extensions, unless TXFRAME_REQUIRE_EXTENSIONS=1, in
which case its absence is an error: see test_implementation.py).
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest

from ftp_classes import bind_ftp
from peer_rule import EXTENSIONS_REQUIRED
from txframe import amp, basic


def pytest_addoption(parser):
    parser.addoption(
        "--no-compiled",
        action="store_true",
        default=False,
        help="skip the tests of the compiled (Cython) implementation",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--no-compiled"):
        skip = pytest.mark.skip(reason="--no-compiled given")
        for item in items:
            if "compiled" in item.keywords:
                item.add_marker(skip)


def _module(family, name):
    try:
        return importlib.import_module(f"txframe._{family}_{name}")
    except ImportError:
        if name == "c" and EXTENSIONS_REQUIRED:
            raise
        return None


def _implementation(kind):
    suffix = "c" if kind == "compiled" else "py"
    lines, strings = _module("lines", suffix), _module("strings", suffix)
    boxes, listing = _module("boxes", suffix), _module("listing", suffix)
    if lines is None or strings is None or boxes is None or listing is None:
        pytest.skip("txframe was installed without its compiled extension")

    def bind(base, **attrs):
        return type(base.__name__, (base,), attrs)

    def bind_lines(base):
        return bind(base, _lineFramer=lines.LineFramer, dataReceived=lines.data_received)

    def bind_prefix(base):
        return bind(
            base, _stringFramer=strings.PrefixFramer, dataReceived=strings.string_data_received
        )

    ftp = bind_ftp(listing)
    return SimpleNamespace(
        name=kind,
        LineFramer=lines.LineFramer,
        LineReceiver=bind_lines(basic.LineReceiver),
        LineOnlyReceiver=bind_lines(basic.LineOnlyReceiver),
        PrefixFramer=strings.PrefixFramer,
        NetstringFramer=strings.NetstringFramer,
        IntNStringReceiver=bind_prefix(basic.IntNStringReceiver),
        Int32StringReceiver=bind_prefix(basic.Int32StringReceiver),
        Int16StringReceiver=bind_prefix(basic.Int16StringReceiver),
        Int8StringReceiver=bind_prefix(basic.Int8StringReceiver),
        NetstringReceiver=bind(
            basic.NetstringReceiver,
            _stringFramer=strings.NetstringFramer,
            dataReceived=strings.string_data_received,
        ),
        BoxFramer=boxes.BoxFramer,
        Schema=boxes.Schema,
        encode_box=boxes.encode_box,
        decode_boxes=boxes.decode_boxes,
        BinaryBoxProtocol=bind(
            amp.BinaryBoxProtocol,
            _boxFramer=boxes.BoxFramer,
            _encodeBox=staticmethod(boxes.encode_box),
        ),
        AMP=bind(
            amp.AMP,
            _boxFramer=boxes.BoxFramer,
            _encodeBox=staticmethod(boxes.encode_box),
            _schemaType=boxes.Schema,
        ),
        ListFormatter=listing.ListFormatter,
        formatter=ftp.formatter,
        DTP=ftp.DTP,
        DTPFactory=ftp.DTPFactory,
        FTP=ftp.FTP,
        FTPFactory=ftp.FTPFactory,
    )


@pytest.fixture(
    scope="session",
    params=[pytest.param("compiled", marks=pytest.mark.compiled), "pure"],
)
def impl(request):
    """One implementation of txframe's framers, with protocol classes bound to it.

    Attributes: ``name``; the framers ``LineFramer``, ``PrefixFramer`` and
    ``NetstringFramer``; and the drop-in classes ``LineReceiver``, ``LineOnlyReceiver``,
    ``IntNStringReceiver``, ``Int32StringReceiver``, ``Int16StringReceiver``,
    ``Int8StringReceiver`` and ``NetstringReceiver`` (subclass them as you would
    Twisted's); the box codec ``BoxFramer``, ``Schema``, ``encode_box`` and
    ``decode_boxes``, and ``txframe.amp``'s ``BinaryBoxProtocol`` and ``AMP`` bound to
    it; the LIST formatter class ``ListFormatter``, an instance of it for Twisted's
    permission classes (``formatter``), and ``txframe.ftp``'s ``DTP``, ``DTPFactory``,
    ``FTP`` and ``FTPFactory`` bound to it (tests/ftp_classes.py).
    """
    return _implementation(request.param)
