"""Differential fuzz target: LineReceiver and LineOnlyReceiver, compiled vs pure.

Mode switches, pausing, delimiter and MAX_LENGTH changes (valid and not; on the instance
from callbacks and between chunks, on the class between chunks, also ones that leave
the compiled build's Settings in place), return values, exceptions, disconnects,
clearLineBuffer and re-entered dataReceived.
"""

from __future__ import annotations

from twisted.internet.testing import StringTransport

from twins import (TWINS, Boom, Script, changes_class, class_change, compare, main,
                   outcome, subclass)

from txframe import basic

DELIMITERS = [b"\r\n", b"\n", b"|", b"ab", b"aa", b"\r\n\r\n", b"\n", b"|", b"", "\n",
              bytearray(b"\r\n"), None]
LIMITS = [0, 1, 2, 3, 5, 8, 16384, -1, 2**63, 2**64, float("inf"), float("nan"), 2.5,
          -float("inf"), 3, 4]
# Class-level changes are made between chunks only: one made inside a callback takes
# effect from the next dataReceived in the compiled build and from the next line in the
# pure one (README, "Differences from Twisted": a documented difference of the twins).
IN_CALLBACK = ["raise", "return", "feed", "raw", "line", "pause", "resume", "delim",
               "delim", "max", "max", "del", "lose", "clear", "feed", "line"]
BETWEEN = ["feed"] * 8 + ["pause", "resume", "delim", "class_delim", "max", "class_max",
                          "raw", "line", "clear", "del", "lose", "class_undo", "class_touch"]


class Recording:
    """The callbacks: record, then do what the script says for this callback."""

    def lineReceived(self, line):
        return self._fz.callback(self, "line", line)

    def rawDataReceived(self, data):
        return self._fz.callback(self, "raw", data)

    def lineLengthExceeded(self, line):
        return self._fz.callback(self, "exceeded", line)


def bound(base, lines):
    return type(base.__name__, (Recording, base),
                {"_lineFramer": lines.LineFramer, "dataReceived": lines.data_received})


CLASSES = {name: {kind: bound(getattr(basic, kind), twin["lines"])
                  for kind in ("LineReceiver", "LineOnlyReceiver")}
           for name, twin in TWINS}


class Run:
    def __init__(self, plan):
        self.plan = plan
        self.events = []
        self.count = 0
        self.plain = set()  # settings the script assigned on the class

    def callback(self, proto, kind, arg):
        self.events.append((kind, arg))
        n = self.count
        self.count += 1
        step = self.plan.get(n)
        if step is not None:
            return act(self, proto, *step)
        return None


def act(run, proto, action, arg):
    cls = type(proto)
    value = arg[0] if arg else 0
    events = run.events
    if action == "raise":
        raise Boom(arg)
    if action == "return":
        return arg or 1
    if action == "feed":
        events.append(("fed", outcome(proto.dataReceived, arg[1:])))
    elif action == "raw":
        events.append(("raw mode", outcome(getattr(proto, "setRawMode", lambda: None))))
    elif action == "line":
        mode = getattr(proto, "setLineMode", lambda extra: None)
        events.append(("line mode", outcome(mode, arg[1:])))
    elif action == "pause":
        events.append(("pause", outcome(proto.pauseProducing)))
    elif action == "resume":
        events.append(("resume", outcome(proto.resumeProducing)))
    elif action == "delim":
        proto.delimiter = DELIMITERS[value % len(DELIMITERS)]
    elif action == "class_delim":
        cls.delimiter = DELIMITERS[value % len(DELIMITERS)]
        run.plain.add("delimiter")
    elif action == "max":
        proto.MAX_LENGTH = LIMITS[value % len(LIMITS)]
    elif action == "class_max":
        cls.MAX_LENGTH = LIMITS[value % len(LIMITS)]
        run.plain.add("MAX_LENGTH")
    elif action == "del":
        events.append(("del", outcome(delattr, proto, "delimiter")))
    elif action == "lose":
        proto.transport.loseConnection()
    elif action == "clear":
        events.append(("cleared", proto.clearLineBuffer()))
    elif action in ("class_undo", "class_touch"):
        class_change(cls, action, value, ("delimiter", "MAX_LENGTH"), run.plain)
    return None


def play(classes, script):
    kind, namespace, plan, steps = script
    cls = subclass(classes[kind], namespace, changes_class(plan, steps))
    run = Run(plan)
    proto = cls()
    proto._fz = run
    proto.makeConnection(StringTransport())
    for action, arg in steps:
        if action == "feed":
            run.events.append(("dataReceived", outcome(proto.dataReceived, arg)))
        else:
            run.events.append(("between", action, outcome(act, run, proto, action, arg)))
    run.events.append(("end", proto.line_mode if kind == "LineReceiver" else None,
                       proto.paused, proto.transport.disconnecting,
                       outcome(proto.clearLineBuffer)))
    return run.events


def read(data):
    s = Script(data)
    kind = s.pick(["LineReceiver", "LineOnlyReceiver"])
    namespace = {}
    flags = s.byte()
    if flags & 1:
        namespace["delimiter"] = s.pick(DELIMITERS[:8])
    if flags & 2:
        namespace["MAX_LENGTH"] = s.pick(LIMITS)
    if flags & 4 and kind == "LineReceiver":
        namespace["line_mode"] = 0
    if flags & 8:
        namespace["paused"] = True
    plan = s.actions(IN_CALLBACK)
    steps = []
    while s.left() and len(steps) < 24:
        steps.append((s.pick(BETWEEN), s.bytes(40)))
    return kind, namespace, plan, steps


def test_one_input(data):
    script = read(data)
    compare("lines", {name: play(CLASSES[name], script) for name, _ in TWINS})


if __name__ == "__main__":
    main(test_one_input)
