"""``delimiter`` and ``MAX_LENGTH`` behave as plain attributes whatever carries them.

In a compiled build the line protocols declare them with ``framing.Setting`` so the
compiled framer is told of changes; these tests pin that this is invisible to users
and that every way of setting them reaches the framer from the next line on.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import pytest
from twisted.internet.testing import StringTransport

from txframe import basic, framing


def recorder(base, **attrs):
    def lineReceived(self, line):
        self.lines.append(line)
        action = self.actions.get(line)
        if action:
            action(self)

    def stringReceived(self, string):
        self.lines.append(string)

    namespace = {
        "lineReceived": lineReceived,
        "stringReceived": stringReceived,
        "lines": None,
        "actions": None,
    }
    namespace.update(attrs)
    cls = type("Recorder", (base,), namespace)
    return cls


def connect(cls):
    proto = cls()
    proto.lines = []
    proto.actions = {}
    proto.makeConnection(StringTransport())
    return proto


@pytest.fixture(params=["LineReceiver", "LineOnlyReceiver"])
def base(impl, request):
    return getattr(impl, request.param)


def test_defaults_read_like_twisted(base):
    assert base.delimiter == b"\r\n"
    assert base.MAX_LENGTH == 16384
    proto = connect(recorder(base))
    assert proto.delimiter == b"\r\n" and proto.MAX_LENGTH == 16384


def test_class_attribute_override(base):
    proto = connect(recorder(base, delimiter=b"\n", MAX_LENGTH=3))
    assert type(proto).delimiter == b"\n"
    proto.dataReceived(b"ab\nabc\nabcd\n")
    assert proto.lines == [b"ab", b"abc"]
    assert proto.transport.disconnecting  # abcd > MAX_LENGTH


def test_instance_assignment_inside_callback_applies_from_next_line(base):
    proto = connect(recorder(base))
    proto.actions[b"switch"] = lambda p: setattr(p, "delimiter", b";")
    proto.dataReceived(b"a\r\nswitch\r\nb;c;d\r\n")
    assert proto.lines == [b"a", b"switch", b"b", b"c"]
    assert proto.delimiter == b";" and type(proto).delimiter == b"\r\n"


def test_instance_max_length_inside_callback(base):
    proto = connect(recorder(base))
    proto.actions[b"tight"] = lambda p: setattr(p, "MAX_LENGTH", 2)
    proto.dataReceived(b"tight\r\nab\r\nabc\r\nz\r\n")
    assert proto.lines == [b"tight", b"ab"]
    assert proto.transport.disconnecting


def test_deleting_instance_value_restores_class_value(base):
    proto = connect(recorder(base))
    proto.delimiter = b"\n"
    proto.dataReceived(b"a\nb")
    del proto.delimiter
    proto.dataReceived(b"\nc\r\n")
    assert proto.lines == [b"a", b"b\nc"]


def test_deleting_without_own_value_says_what_python_says(base):
    proto = connect(recorder(base))

    class Plain:
        delimiter = b"\r\n"

    with pytest.raises(AttributeError) as plain:
        del Plain().delimiter
    with pytest.raises(AttributeError) as ours:
        del proto.delimiter
    assert "delimiter" in str(ours.value)
    if sys.version_info >= (3, 11):  # 3.10 says only the name
        assert str(ours.value) == str(plain.value).replace("Plain", type(proto).__name__)
    assert proto.delimiter == b"\r\n"


def test_invalid_class_delimiter_keeps_the_chunk(impl):
    """An empty delimiter is a ValueError, and the chunk is kept for when it is fixed
    (the compiled LineReceiver lost it before issue 16; Twisted buffers silently)."""
    cls = recorder(impl.LineReceiver, delimiter=b"")
    proto = connect(cls)
    with pytest.raises(ValueError, match="delimiter"):
        proto.dataReceived(b"a\r\nb")
    cls.delimiter = b"\r\n"
    proto.dataReceived(b"\r\nc")
    assert proto.lines == [b"a", b"b"]


def test_class_changed_after_creation(base):
    cls = recorder(base)
    proto = connect(cls)
    proto.dataReceived(b"a\r\nb")  # a framer now holds state
    cls.delimiter = b"|"
    proto.dataReceived(b"|c\r\n|")
    assert proto.lines == [b"a", b"b", b"c\r\n"]


def test_property_delimiter_is_read_after_every_line(base):
    class Switching(recorder(base)):
        count = 0

        @property
        def delimiter(self):
            return b"\n" if len(self.lines) >= 2 else b"\r\n"

    proto = connect(Switching)
    proto.dataReceived(b"a\r\nb\r\nc\nd\n")
    assert proto.lines == [b"a", b"b", b"c", b"d"]


def test_mixin_value_wins_as_in_python(base):
    class Mixin:
        delimiter = b"#"

    cls = type("Mixed", (Mixin, recorder(base)), {})
    proto = connect(cls)
    assert proto.delimiter == b"#"
    proto.dataReceived(b"a#b#")
    assert proto.lines == [b"a", b"b"]
    proto.delimiter = b"$"
    proto.dataReceived(b"c$")
    assert proto.lines == [b"a", b"b", b"c"]


def test_setting_kind_follows_the_framer(impl):
    cls = recorder(impl.LineReceiver, delimiter=b"\n")
    stored = vars(cls)["delimiter"]
    if framing.Setting is None or impl.name == "pure":
        assert stored == b"\n"
    else:
        assert type(stored) is framing.Setting


@pytest.mark.parametrize("bad, error", [("\n", TypeError), (b"", ValueError), (None, TypeError)])
def test_bad_delimiter_is_a_clear_error(base, bad, error):
    proto = connect(recorder(base, delimiter=bad))
    with pytest.raises(error, match="delimiter"):
        proto.dataReceived(b"abc\n")


def test_basic_module_has_twisted_names():
    from twisted.protocols import basic as twisted_basic

    for name in ("LineReceiver", "LineOnlyReceiver", "FileSender"):
        assert hasattr(basic, name)
        assert issubclass(getattr(basic, name), getattr(twisted_basic, name).__mro__[1]) or (
            getattr(basic, name) is getattr(twisted_basic, name)
        )


# -- Regressions: every way Twisted lets settings and modes be set ---------------------

def both(impl, name):
    from twisted.protocols import basic as twisted_basic

    return [("twisted", getattr(twisted_basic, name)), (impl.name, getattr(impl, name))]


def test_class_assignment_keeps_instance_values(impl):
    """An instance's own delimiter/MAX_LENGTH survive a later class-level assignment."""
    results = []
    for label, base in both(impl, "LineReceiver"):
        cls = recorder(base)
        proto = connect(cls)
        proto.MAX_LENGTH = 5
        proto.delimiter = b"\n"
        cls.MAX_LENGTH = 1000
        cls.delimiter = b"\r\n"
        proto.dataReceived(b"ab\n0123456789\n")
        results.append((label, proto.MAX_LENGTH, proto.delimiter, proto.lines, proto.transport.disconnecting))
    assert results[1][1:] == results[0][1:] == (5, b"\n", [b"ab"], True)


def test_mixin_setting_changed_later_is_seen(impl):
    class Limits:
        MAX_LENGTH = 100

    results = []
    for label, base in both(impl, "LineReceiver"):
        cls = type("Mixed", (Limits, recorder(base)), {})
        Limits.MAX_LENGTH = 100
        proto = connect(cls)
        proto.dataReceived(b"abcdef\r\n")
        Limits.MAX_LENGTH = 5
        proto.dataReceived(b"abcdef\r\nmore\r\n")
        results.append((proto.MAX_LENGTH, proto.lines, proto.transport.disconnecting))
    assert results[1] == results[0] == (5, [b"abcdef"], True)


def test_set_line_mode_before_data_in_a_raw_start_class(impl):
    results = []
    for label, base in both(impl, "LineReceiver"):

        class RawFirst(recorder(base)):
            line_mode = 0

            def connectionMade(self):
                self.setLineMode()

            def rawDataReceived(self, data):
                self.lines.append(("raw", data))

        proto = connect(RawFirst)
        proto.dataReceived(b"hello\r\n")
        results.append((proto.line_mode, proto.lines))
    assert results[1] == results[0] == (1, [b"hello"])


@pytest.mark.parametrize("name", ["LineReceiver", "LineOnlyReceiver", "Int8StringReceiver", "NetstringReceiver"])
def test_plain_paused_from_a_mixin_keeps_pausing_working(impl, name):
    class PauseMixin:
        paused = False

    results = []
    for label, base in both(impl, name):
        if label == "twisted" and not hasattr(base, "pauseProducing"):
            continue  # Twisted's LineOnlyReceiver and NetstringReceiver cannot pause
        cls = type("P", (PauseMixin, recorder(base)), {})
        proto = connect(cls)
        proto.pauseProducing()
        data = {"Int8StringReceiver": b"\x04held", "NetstringReceiver": b"4:held,"}.get(name, b"held\r\n")
        proto.dataReceived(data)
        held = list(proto.lines)
        proto.resumeProducing()
        results.append((bool(proto.paused), held, proto.lines))
    assert results[-1] == (False, [], [b"held"])
    assert all(result == results[-1] for result in results)


def test_plain_line_mode_from_a_mixin_keeps_mode_switches_working(impl):
    class ModeMixin:
        line_mode = 1

    results = []
    for label, base in both(impl, "LineReceiver"):

        def lineReceived(self, line):
            self.lines.append(("line", line))
            if line == b"HEADER":
                self.setRawMode()

        def rawDataReceived(self, data):
            self.lines.append(("raw", data))

        cls = type("P", (ModeMixin, recorder(base)), {"lineReceived": lineReceived, "rawDataReceived": rawDataReceived})
        proto = connect(cls)
        proto.dataReceived(b"HEADER\r\nbody\r\nmore")
        results.append(proto.lines)
    assert results[1] == results[0] == [("line", b"HEADER"), ("raw", b"body\r\nmore")]


def test_netstring_reconnect_keeps_instance_settings(impl):
    proto = connect(recorder(impl.NetstringReceiver))
    proto.MAX_LENGTH = 3
    proto.dataReceived(b"2:ab,5:")  # half a netstring pending
    proto.makeConnection(StringTransport())  # a fresh connection: fresh parser
    proto.dataReceived(b"3:abc,4:abcd,")
    assert proto.MAX_LENGTH == 3
    assert proto.lines == [b"ab", b"abc"]
    assert proto.brokenPeer == 1 and proto.transport.disconnecting


@pytest.mark.parametrize(
    "limit",
    [-10, -3, -2, -1, 0, 1, 2, 2.5, -0.5, Fraction(7, 2), math.inf, -math.inf, math.nan, 10**30],
    ids=repr,
)
def test_max_length_edge_values_match_twisted(impl, limit):
    """Both of Twisted's tests, len(line) > MAX_LENGTH and (unterminated)
    len(buffer) >= MAX_LENGTH + len(delimiter), for any real MAX_LENGTH."""
    from twisted.protocols import basic as twisted_basic

    for delimiter in (b"\n", b"\r\n", b"abc"):
        for data in (b"x", b"xy", b"xyz", b"xyzw", b"xx" + delimiter, b"xxxx" + delimiter + b"y"):
            results = []
            for base in (twisted_basic.LineReceiver, impl.LineReceiver):

                class Recorder(base):
                    def lineReceived(self, line):
                        self.events.append(("line", line))

                    def lineLengthExceeded(self, line):
                        self.events.append(("exceeded", line))

                proto = Recorder()
                proto.events = []
                proto.MAX_LENGTH = limit
                proto.delimiter = delimiter
                proto.makeConnection(StringTransport())
                proto.dataReceived(data)
                results.append(proto.events)
            assert results[1] == results[0], (delimiter, data)
