"""Differential fuzz target: length-prefixed strings (IntNStringReceiver and
PrefixFramer) and netstrings (NetstringReceiver and NetstringFramer), compiled vs pure.

Hostile lengths come from the input (any prefix format, signed ones included, and
limits from -1 to 2**64); callbacks raise, re-enter dataReceived, swap ``recvd``,
disconnect, pause and resume, change MAX_LENGTH on the instance, and call the framer's
clear(), reset(), disregard() and buffered(); between chunks MAX_LENGTH and
structFormat change on the class too (also in ways that leave the compiled build's
Settings in place).
"""

from __future__ import annotations

from struct import calcsize

from twisted.internet.testing import StringTransport

from twins import (TWINS, Boom, Script, changes_class, class_change, compare, main,
                   outcome, subclass)

from txframe import basic

FORMATS = ["!I", "!H", "!B", "<I", ">H", "!i", "!h", "!Q", "!q", "<B", "=H", "@I", "!b",
           "!I", "!H", "!B", "!HH", "!"]
LIMITS = [0, 1, 2, 3, 5, 10, 99999, -1, 2**32 - 1, 2**63, 2**64 - 1, float("inf"),
          float("nan"), 2.5, -float("inf"), 4]
REPLACEMENTS = [b"", "", b"\x00\x00\x00\x01x", bytearray(b"\x00\x01y"), b"3:abc,", b"\x00"]
# Class-level changes are made between chunks only (see fuzz_lines.py: a change made on
# the class inside a callback is a documented difference of the twins).
IN_CALLBACK = ["raise", "feed", "recvd", "lose", "max", "max", "buffered", "pause",
               "resume", "clear", "reset", "disregard", "buffered", "feed", "max", "feed"]
BETWEEN = ["feed"] * 8 + ["pause", "resume", "max", "class_max", "class_fmt", "clear",
                          "reset", "disregard", "buffered", "recvd", "lose", "class_undo",
                          "class_touch"]


class Recording:
    """The callbacks of both protocols and of a framer's plain sink."""

    def stringReceived(self, string):
        self._fz.callback(self, "string", string)

    def lengthLimitExceeded(self, length):
        self._fz.callback(self, "exceeded", length, self._fz.buffered(self))

    def netstringParseError(self, reason):
        self._fz.callback(self, "parse error", str(reason))

    def _netstringParseError(self, message):  # a NetstringFramer's plain sink
        self._fz.callback(self, "parse error", message)


class Sink(Recording):
    """A framer's sink that is not a protocol: plain attributes, read every time."""

    structFormat = "!I"
    prefixLength = 4
    MAX_LENGTH = 99999

    def __init__(self, framer):
        self.framer = framer
        self.transport = StringTransport()

    # the framer's paused attribute stands for the protocol's producer calls
    def pauseProducing(self):
        self.framer.paused = True

    def resumeProducing(self):
        self.framer.paused = False
        return self.framer.feed(self, b"")


def bound(base, strings):
    return type(base.__name__, (Recording, base),
                {"_stringFramer": getattr(strings, base._stringFramer.__name__),
                 "dataReceived": strings.string_data_received})


CLASSES = {name: {"prefix": bound(basic.IntNStringReceiver, twin["strings"]),
                  "netstring": bound(basic.NetstringReceiver, twin["strings"]),
                  "PrefixFramer": twin["strings"].PrefixFramer,
                  "NetstringFramer": twin["strings"].NetstringFramer}
           for name, twin in TWINS}


class Run:
    def __init__(self, plan, framer):
        self.plan = plan
        self.framer = framer  # None: the protocol's own
        self.events = []
        self.count = 0
        self.plain = set()  # settings the script assigned on the class

    def framer_of(self, proto):
        return self.framer if self.framer is not None else proto._getFramer()

    def buffered(self, proto):
        if self.framer is None and hasattr(type(proto), "recvd"):
            return proto.recvd
        return self.framer_of(proto).buffered()

    def callback(self, proto, kind, *args):
        self.events.append((kind, *args))
        n = self.count
        self.count += 1
        step = self.plan.get(n)
        if step is not None:
            act(self, proto, *step)


def act(run, proto, action, arg):
    value = arg[0] if arg else 0
    cls = type(proto)
    events = run.events
    if action == "raise":
        raise Boom(arg)
    if action == "feed":
        events.append(("fed", outcome(feed, run, proto, arg[1:])))
    elif action == "recvd":
        new = REPLACEMENTS[value % len(REPLACEMENTS)] if value < 128 else arg[1:]
        if run.framer is not None:
            events.append(("replace", outcome(run.framer.replace, new)))
        else:
            events.append(("recvd", outcome(setattr, proto, "recvd", new)))
    elif action == "lose":
        proto.transport.loseConnection()
    elif action == "max":
        proto.MAX_LENGTH = LIMITS[value % len(LIMITS)]
    elif action == "class_max":
        cls.MAX_LENGTH = LIMITS[value % len(LIMITS)]
        run.plain.add("MAX_LENGTH")
    elif action == "class_fmt":
        fmt = FORMATS[value % len(FORMATS)]
        cls.structFormat, cls.prefixLength = fmt, calcsize(fmt) + (value >= 240)
        run.plain.update(("structFormat", "prefixLength"))
    elif action == "pause":
        events.append(("pause", outcome(proto.pauseProducing)))
    elif action == "resume":
        events.append(("resume", outcome(proto.resumeProducing)))
    elif action in ("clear", "reset", "disregard", "buffered"):
        events.append((action, outcome(getattr(run.framer_of(proto), action))))
    elif action in ("class_undo", "class_touch"):
        class_change(cls, action, value, ("MAX_LENGTH", "structFormat", "prefixLength"),
                     run.plain)


def feed(run, proto, data):
    if run.framer is not None:
        return run.framer.feed(proto, data)
    return proto.dataReceived(data)


def play(classes, script):
    kind, framer_level, namespace, plan, steps = script
    fresh = changes_class(plan, steps)
    if framer_level:
        framer = classes["PrefixFramer" if kind == "prefix" else "NetstringFramer"]()
        proto = subclass(Sink, namespace, fresh)(framer)
    else:
        framer = None
        cls = subclass(classes[kind], namespace, fresh)
        proto = cls()
        proto.makeConnection(StringTransport())
    run = Run(plan, framer)
    proto._fz = run
    for action, arg in steps:
        if action == "feed":
            run.events.append(("dataReceived", outcome(feed, run, proto, arg)))
        else:
            run.events.append(("between", action, outcome(act, run, proto, action, arg)))
    run.events.append(("end", proto.transport.disconnecting, run.buffered(proto)))
    return run.events


def read(data):
    s = Script(data)
    flags = s.byte()
    kind = "prefix" if flags & 1 else "netstring"
    namespace = {}
    if kind == "prefix":
        fmt = s.pick(FORMATS)
        namespace["structFormat"] = fmt
        namespace["prefixLength"] = calcsize(fmt) + (flags & 64 and 1)
    if flags & 2:
        namespace["MAX_LENGTH"] = s.pick(LIMITS)
    if flags & 4:
        namespace["paused"] = True
    plan = s.actions(IN_CALLBACK)
    steps = []
    while s.left() and len(steps) < 24:
        steps.append((s.pick(BETWEEN), s.bytes(40)))
    return kind, bool(flags & 8), namespace, plan, steps


def test_one_input(data):
    script = read(data)
    compare("strings", {name: play(CLASSES[name], script) for name, _ in TWINS})


if __name__ == "__main__":
    main(test_one_input)
