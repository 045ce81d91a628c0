"""Compiled framers read their settings once per ``dataReceived``, not once per frame,
and a change still takes effect when the README says ("All receivers"):

- assigned on the instance (also in a callback): from the next frame;
- assigned on the class or a base class, however (``setattr``, ``type.__setattr__``,
  a metaclass's own ``__setattr__``): from the next ``dataReceived`` call;
- a property (or other descriptor of the user's): read before every frame.

On every CPython version: the per-version CI (ci/versions.sh) runs this module on each.
"""

from __future__ import annotations

import struct

import pytest
from twisted.internet.testing import StringTransport

from txframe import framing

# The Settings exist only where txframe's classes use the compiled framers (in the
# pure configuration, TXFRAME_NO_EXTENSIONS=1, every setting is a plain attribute and
# is read before every frame, as Twisted reads it).
pytestmark = [
    pytest.mark.compiled,
    pytest.mark.skipif(framing.Setting is None, reason="the pure configuration has no Settings"),
]


@pytest.fixture(scope="module")
def compiled():
    from conftest import _implementation

    return _implementation("compiled")


class Counted(int):
    """An int MAX_LENGTH that counts how often the framer works with it."""

    uses = 0

    def _count(name):
        def method(self, *args):
            Counted.uses += 1
            return getattr(int, name)(self, *args)

        return method

    for _name in ("__ge__", "__gt__", "__le__", "__lt__", "__add__", "__radd__", "__index__"):
        locals()[_name] = _count(_name)
    del _name, _count


KINDS = {
    "LineReceiver": lambda p: p + b"\r\n",
    "LineOnlyReceiver": lambda p: p + b"\r\n",
    "Int8StringReceiver": lambda p: struct.pack("!B", len(p)) + p,
    "Int16StringReceiver": lambda p: struct.pack("!H", len(p)) + p,
    "Int32StringReceiver": lambda p: struct.pack("!I", len(p)) + p,
    "NetstringReceiver": lambda p: b"%d:%b," % (len(p), p),
}


@pytest.fixture(params=list(KINDS))
def kind(request):
    return request.param


def protocol_class(compiled, kind, name="P", bases=(), meta=type, **attrs):
    """A subclass of the compiled *kind* recording ("ok", n) per frame and ("long",)
    per frame over MAX_LENGTH, never closing; ``hook(proto, n)`` runs after frame n."""

    def received(self, frame):
        self.events.append(("ok", len(self.events)))
        if self.hook is not None:
            self.hook(self, len(self.events) - 1)

    def too_long(self, *args):
        self.events.append(("long",))

    namespace = {
        "lineReceived": received,
        "stringReceived": received,
        "lineLengthExceeded": too_long,
        "lengthLimitExceeded": too_long,
        "netstringParseError": too_long,
        "hook": None,
        "events": None,
    }
    namespace.update(attrs)
    if namespace["hook"] is not None:
        namespace["hook"] = staticmethod(namespace["hook"])
    return meta(name, (*bases, getattr(compiled, kind)), namespace)


def connect(cls):
    proto = cls()
    proto.events = []
    proto.makeConnection(StringTransport())
    return proto


def frames(kind, n, size=6):
    return KINDS[kind](b"a" * size) * n


def uses_and_reads(proto, data):
    Counted.uses = 0
    before = framing_reads()
    proto.dataReceived(data)
    return Counted.uses, framing_reads() - before


def framing_reads():
    from txframe import _framer_c

    return _framer_c.reads()


def test_compiled_framers_are_in_use(compiled):
    from txframe import _framer_c

    assert compiled.name == "compiled" and compiled.LineFramer.__module__ == "txframe._lines_c"
    assert framing.Setting is None or framing.Setting is _framer_c.Setting


@pytest.mark.parametrize("how", ["class body", "type()", "mixin __init__", "metaclass"])
def test_settings_read_per_call_not_per_frame(compiled, kind, how):
    """Over N frames in one dataReceived the settings are read (and MAX_LENGTH
    worked with) a fixed number of times, whatever N."""

    class Mixin:
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.MAX_LENGTH = Counted(100)

    class Meta(type):
        def __setattr__(cls, name, value):
            super().__setattr__(name, value)

    attrs = {} if how == "mixin __init__" else {"MAX_LENGTH": Counted(100)}
    bases = (Mixin,) if how == "mixin __init__" else ()
    cls = protocol_class(compiled, kind, bases=bases, meta=Meta if how == "metaclass" else type, **attrs)
    if how == "class body":
        cls = type("Sub", (cls,), {})  # a class statement's subclass
    counts = []
    for n in (10, 1000):
        proto = connect(cls)
        counts.append(uses_and_reads(proto, frames(kind, n)))
        assert proto.events == [("ok", i) for i in range(n)]
    assert all(uses <= 10 and reads <= 3 for uses, reads in counts), counts  # O(1), not O(N)


def test_settings_read_per_call_over_many_calls(compiled, kind):
    """N frames in K dataReceived calls: K reads of each setting, not N."""
    cls = protocol_class(compiled, kind)
    proto = connect(cls)
    data = frames(kind, 1000)
    before = framing_reads()
    for i in range(0, len(data), 1000):
        proto.dataReceived(data[i : i + 1000])
    calls = -(-len(data) // 1000)
    assert len(proto.events) == 1000
    assert framing_reads() - before <= 3 * calls


def test_property_is_read_before_every_frame(compiled, kind):
    cls = protocol_class(
        compiled, kind, MAX_LENGTH=property(lambda self: 100 if len(self.events) < 3 else 3)
    )
    proto = connect(cls)
    proto.dataReceived(frames(kind, 5))
    assert proto.events[:4] == [("ok", 0), ("ok", 1), ("ok", 2), ("long",)]


def test_instance_assignment_in_callback_applies_from_next_frame(compiled, kind):
    def hook(proto, n):
        if n == 2:
            proto.MAX_LENGTH = 3

    proto = connect(protocol_class(compiled, kind, hook=hook))
    proto.dataReceived(frames(kind, 5))
    assert proto.events[:4] == [("ok", 0), ("ok", 1), ("ok", 2), ("long",)]


def test_class_assignment_in_callback_applies_from_next_call(compiled, kind):
    def hook(proto, n):
        if n == 2:
            type(proto).MAX_LENGTH = 3

    proto = connect(protocol_class(compiled, kind, hook=hook))
    proto.dataReceived(frames(kind, 5))
    assert proto.events == [("ok", i) for i in range(5)]  # this call keeps what it read
    proto.dataReceived(frames(kind, 1))
    assert proto.events[5:] == [("long",)]


@pytest.mark.parametrize("how", ["setattr", "type.__setattr__", "metaclass __setattr__", "del"])
def test_shared_base_changed_mid_frame(compiled, kind, how):
    """A base class shared by live connections, changed while each is mid-frame:
    the rest of the frame arrives in the next call and is judged by the new value."""
    seen = []

    class Meta(type):
        def __setattr__(cls, name, value):
            seen.append(name)
            super().__setattr__(name, value)

        def __delattr__(cls, name):
            seen.append(name)
            super().__delattr__(name)

    shared = protocol_class(
        compiled, kind, name="Shared", meta=Meta if how.startswith("metaclass") else type,
        MAX_LENGTH=100,
    )
    if how == "del":  # the base's own value goes: the one of the class above shows
        middle = protocol_class(compiled, kind, name="Middle", MAX_LENGTH=3)
        shared = type("Shared", (middle,), {"MAX_LENGTH": 100})
    a, b = type("A", (shared,), {}), type("B", (shared,), {})
    conns = [connect(a), connect(b), connect(a)]
    data = frames(kind, 2)
    half = len(data) // 2 + 1  # one byte of the second frame (before its length is known)
    for proto in conns:
        proto.dataReceived(data[:half])
        assert proto.events == [("ok", 0)]
    seen.clear()
    if how == "setattr":
        shared.MAX_LENGTH = 3
    elif how == "type.__setattr__":
        type.__setattr__(shared, "MAX_LENGTH", 3)
    elif how == "metaclass __setattr__":
        shared.MAX_LENGTH = 3
        assert seen == ["MAX_LENGTH"]
    else:
        del shared.MAX_LENGTH
    for proto in conns:
        proto.dataReceived(data[half:])
        assert proto.events == [("ok", 0), ("long",)], how


def test_class_made_at_run_time_and_changed(compiled, kind):
    cls = type("Runtime", (protocol_class(compiled, kind),), {"MAX_LENGTH": 3})
    proto = connect(cls)
    proto.dataReceived(frames(kind, 1, size=2))
    cls.MAX_LENGTH = 1
    proto.dataReceived(frames(kind, 1, size=2))
    assert proto.events == [("ok", 0), ("long",)]
