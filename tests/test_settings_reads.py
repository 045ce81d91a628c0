"""Compiled framers read their settings once per ``dataReceived``, not once per frame,
and a change still takes effect when the README says ("All receivers"):

- assigned on the instance (also in a callback): from the next frame;
- assigned on the class or a base class, however (``setattr``, ``type.__setattr__``,
  a metaclass's own ``__setattr__``): from the next ``dataReceived`` call;
- a property (or other descriptor of the user's): read before every frame.

From CPython 3.12 a framer is told of changes to its protocol's class and bases (type
watchers), and reads its settings again only after one; before 3.12 it reads them at
the start of every ``dataReceived`` call.

On every CPython version: the per-version CI (ci/versions.sh) runs this module on each.
"""

from __future__ import annotations

import ctypes
import struct
import subprocess
import sys
import textwrap

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


WATCHERS = sys.version_info >= (3, 12)  # PyType_AddWatcher and friends are public from 3.12


def watching():
    from txframe import _framer_c

    return _framer_c.watching()


def reads_per_call(proto, kind, calls):
    """Settings read in each of *calls* dataReceived calls, each with one frame."""
    counts = []
    for _ in range(calls):
        before = framing_reads()
        proto.dataReceived(frames(kind, 1))
        counts.append(framing_reads() - before)
    return counts


def test_settings_read_again_only_after_a_class_change(compiled, kind):
    """3.12+: with the class unchanged, no call after the first reads a setting; a
    change to the class, or any base, makes the next call read them once. Before
    3.12: every call reads them."""
    base = protocol_class(compiled, kind, name="Base")
    cls = type("Leaf", (base,), {})
    proto = connect(cls)
    proto.dataReceived(frames(kind, 1))
    assert watching() is WATCHERS
    if not WATCHERS:
        assert all(reads >= 1 for reads in reads_per_call(proto, kind, 5))
        return
    assert reads_per_call(proto, kind, 5) == [0] * 5
    base.unrelated = 1  # any change to a base: one read, then none again
    assert reads_per_call(proto, kind, 3)[1:] == [0, 0]
    assert reads_per_call(proto, kind, 1) == [0]
    cls.MAX_LENGTH = 3
    proto.dataReceived(frames(kind, 1, size=4))
    assert proto.events[-1] == ("long",)


class OwnMro(type):
    """A metaclass with its own mro(): CPython then drops a class's version tag on a
    __bases__ assignment without reporting the change to type watchers."""

    def mro(cls):
        return super().mro()


@pytest.mark.parametrize(
    "how",
    ["__bases__", "__bases__ under a metaclass's mro()", "__class__", "del", "two changes",
     "type cache cleared"],
)
def test_class_change_between_calls_is_seen(compiled, kind, how):
    """Changes that keep every setting a Setting (so the framer may keep what it
    read) take effect from the next call, also for a new connection."""
    strict = protocol_class(compiled, kind, name="Strict", MAX_LENGTH=3)
    loose = protocol_class(compiled, kind, name="Loose", MAX_LENGTH=100)
    cls = type("Leaf", (loose,), {})
    if how == "del":
        cls = type("Leaf", (strict,), {"MAX_LENGTH": 100})
    elif how.endswith("mro()"):
        cls = OwnMro("Leaf", (loose,), {})
    proto = connect(cls)
    proto.dataReceived(frames(kind, 2, size=4))
    if how.startswith("__bases__"):
        cls.__bases__ = (strict,)
    elif how == "__class__":
        proto.__class__ = type("Other", (strict,), {})
    elif how == "del":
        del cls.MAX_LENGTH
    elif how == "two changes":  # CPython reports the second one to no one
        cls.unrelated = 1
        cls.__bases__ = (strict,)
    else:
        sys._clear_type_cache()
        cls.__bases__ = (strict,)
    proto.dataReceived(frames(kind, 1, size=4))
    assert proto.events == [("ok", 0), ("ok", 1), ("long",)]
    fresh = connect(type(proto))
    fresh.dataReceived(frames(kind, 1, size=4))
    assert fresh.events == [("long",)]


def test_instance_format_assigned_in_callback_applies_from_next_call(compiled):
    """An instance's structFormat assigned in a callback (while the class stays
    unchanged) is used from the next call, as Twisted reads it once per call."""

    def hook(proto, n):
        if n == 0:
            proto.structFormat, proto.prefixLength = "!H", 2

    proto = connect(protocol_class(compiled, "Int32StringReceiver", hook=hook))
    proto.dataReceived(frames("Int32StringReceiver", 2))
    assert proto.events == [("ok", 0), ("ok", 1)]  # this call keeps the format it read
    proto.dataReceived(frames("Int16StringReceiver", 1))
    assert proto.events == [("ok", 0), ("ok", 1), ("ok", 2)]
    assert proto.recvd == b""


def test_every_change_seen_past_the_version_tags_a_class_gets(compiled, kind):
    """CPython 3.13 gives a class about 1,000 version tags in its life, and reports
    no change to a class without one: from then on the framer must read its
    settings at every call."""
    strict = protocol_class(compiled, kind, name="Strict", MAX_LENGTH=3)
    cls = type("Leaf", (strict,), {"MAX_LENGTH": 100})
    proto = connect(cls)
    for i in range(1200):  # each change, then a call (whose lookups give a new tag)
        cls.unrelated = i
        proto.dataReceived(frames(kind, 1, size=4))
    assert proto.events == [("ok", i) for i in range(1200)]
    if sys.version_info[:2] == (3, 13):  # what this test is about
        tag = ctypes.pythonapi.PyUnstable_Type_AssignVersionTag
        tag.argtypes = [ctypes.py_object]
        assert tag(cls) == 0
    del cls.MAX_LENGTH
    proto.dataReceived(frames(kind, 1, size=4))
    assert proto.events[-1] == ("long",)


@pytest.mark.skipif(not WATCHERS, reason="type watchers are public from CPython 3.12")
def test_no_type_watcher_left(compiled):
    """With every type-watcher slot taken before txframe asks for one, the framers
    read their settings at the start of every call, and see every change."""
    script = textwrap.dedent(
        """
        import ctypes, struct
        api = ctypes.pythonapi
        Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.py_object)
        api.PyType_AddWatcher.argtypes = [Callback]
        keep = [Callback(lambda t: 0) for _ in range(64)]
        taken = 0
        for callback in keep:
            try:
                api.PyType_AddWatcher(callback)
            except RuntimeError:  # "no more type watcher IDs available"
                break
            taken += 1
        from twisted.internet.testing import StringTransport
        from txframe import _framer_c, basic
        class P(basic.Int32StringReceiver):
            def stringReceived(self, s): self.got.append(s)
            def lengthLimitExceeded(self, n): self.got.append(n)
        p = P(); p.got = []; p.makeConnection(StringTransport())
        frame = struct.pack("!I", 4) + b"abcd"
        counts = []
        for _ in range(3):
            before = _framer_c.reads()
            p.dataReceived(frame)
            counts.append(_framer_c.reads() - before)
        P.MAX_LENGTH = 3
        p.dataReceived(frame)
        print(taken, _framer_c.watching(), counts, p.got)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split(" ", 2)
    assert int(out[0]) > 0
    assert out[1:] == ["False", "[3, 3, 3] [b'abcd', b'abcd', b'abcd', 4]\n"]
