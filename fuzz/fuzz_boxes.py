"""Differential fuzz target: AMP boxes, compiled vs pure.

The BoxFramer on a stream (callbacks raise, re-enter feed, replace or clear the
buffer, pause, reset, change the limits), decode_boxes and encode_box on boxes with
hostile keys and values, and Schema encode / decode with fields of every kind
(nested AmpLists, ListOf, a custom Argument) and values of the wrong type.
"""

from __future__ import annotations

from twins import COMPILED, PURE, TWINS, Boom, Script, compare, main, outcome

from txframe.framing import BOOLEAN, BOXES, FLOAT, INTEGER, LIST, METHOD, STRING, UNICODE

LIMITS = [0, 1, 2, 5, 40, 255, 65535, 100, -1, float("inf"), 2**64, 64]
REPLACEMENTS = [b"", "", b"\x00\x01a\x00\x01b\x00\x00", bytearray(b"\x00\x00"), b"\x00"]
IN_CALLBACK = ["raise", "feed", "replace", "clear", "reset", "disregard", "pause",
               "resume", "max_box", "max_value", "buffered", "feed"]
BETWEEN = ["feed"] * 8 + ["replace", "clear", "reset", "disregard", "pause", "resume",
                          "max_box", "max_value", "buffered"]


class Sink:
    """What a BoxFramer reads and calls (BinaryBoxProtocol's names)."""

    _MAX_KEY_LENGTH = 255
    _MAX_VALUE_LENGTH = 65535
    MAX_BOX_LENGTH = 1000

    def __init__(self, framer, run):
        self.framer = framer
        self.boxReceiver = self
        self.run = run

    def ampBoxReceived(self, box):
        self.run.callback(self, "box", type(box).__name__, sorted(box.items()))

    def lengthLimitExceeded(self, length):
        self.run.callback(self, "too long", length)

    def boxLengthExceeded(self, length):
        self.run.callback(self, "box too long", length)


class Run:
    def __init__(self, plan):
        self.plan = plan
        self.events = []
        self.count = 0

    def callback(self, sink, kind, *args):
        self.events.append((kind, *args))
        n = self.count
        self.count += 1
        step = self.plan.get(n)
        if step is not None:
            act(self, sink, *step)


def act(run, sink, action, arg):
    framer = sink.framer
    value = arg[0] if arg else 0
    if action == "raise":
        raise Boom(arg)
    if action == "feed":
        run.events.append(("fed", outcome(framer.feed, sink, arg[1:])))
    elif action == "replace":
        new = REPLACEMENTS[value % len(REPLACEMENTS)] if value < 128 else arg[1:]
        run.events.append(("replace", outcome(framer.replace, new)))
    elif action in ("clear", "reset", "disregard", "buffered"):
        run.events.append((action, outcome(getattr(framer, action))))
    elif action == "pause":
        framer.paused = True
    elif action == "resume":
        framer.paused = False
        run.events.append(("resumed", outcome(framer.feed, sink, b"")))
    elif action == "max_box":
        sink.MAX_BOX_LENGTH = LIMITS[value % len(LIMITS)]
    elif action == "max_value":
        sink._MAX_VALUE_LENGTH = LIMITS[value % len(LIMITS)]


class Arg:
    """A custom Argument (METHOD) for Schema: converts through str, and may fail."""

    def toStringProto(self, value, proto):
        if value == 13:
            raise Boom("to")
        return str(value).encode()

    def fromStringProto(self, string, proto):
        if string == b"13":
            raise Boom("from")
        return string[::-1]

    def toString(self, value):
        return self.toStringProto(value, None)

    def fromString(self, string):
        return self.fromStringProto(string, None)


ARG = Arg()
KINDS = [STRING, INTEGER, UNICODE, BOOLEAN, FLOAT, METHOD, LIST, BOXES]
VALUES = [b"", b"abc", b"x" * 300, "text", "\udc80", "\u00e9", 0, -1, 2**70, True, False,
          1.5, float("nan"), float("inf"), -0.0, None, [b"a", b"b"], [1, 2], ["x"], [],
          [{"a": b"1"}], [{}], 13, b"13", bytearray(b"ba"), memoryview(b"mv"), object(),
          [1.5, True]]
BIG = [b"x" * 65535, b"x" * 65536]  # for encode_box only: an AmpList would iterate them
KEYS = [b"a", b"b", b"key", b"_ask", b"k" * 255, b"k" * 256, b"", "a", "b",
        memoryview(b"d"), 7, b"z", b"\x00"]


def schema(twin, s, depth=0):
    fields = []
    for i in range(s.fdp.ConsumeIntInRange(0, 4)):
        kind = s.pick(KINDS if depth < 2 else KINDS[:7])
        detail = None
        if kind == METHOD:
            detail = ARG
        elif kind == LIST:
            element = s.pick([STRING, INTEGER, UNICODE, BOOLEAN, FLOAT, METHOD])
            detail = (element, ARG if element == METHOD else None)
        elif kind == BOXES:
            detail = schema(twin, s, depth + 1)
        wire = b"f%d" % i
        fields.append((wire, "f%d" % i, kind, s.byte() & 1 == 1, detail))
    return (fields, s.byte())


def build(twin, spec):
    fields, flags = spec
    made = []
    for wire, name, kind, optional, detail in fields:
        if kind == BOXES:
            detail = build(twin, detail)
        made.append((wire, name, kind, optional, detail))
    kwargs = {"tag_key": b"_ask"} if flags & 1 else {}
    if flags & 2:
        kwargs["constants"] = [(b"_command", b"Cmd")]
    return twin["boxes"].Schema(made, **kwargs)


def play(twin, script):
    plan, steps, box, spec, objects, wire, tag = script
    run = Run(plan)
    framer = twin["boxes"].BoxFramer(dict)
    sink = Sink(framer, run)
    for action, arg in steps:
        if action == "feed":
            run.events.append(("feed", outcome(framer.feed, sink, arg)))
        else:
            run.events.append(("between", action, outcome(act, run, sink, action, arg)))
    run.events.append(("end", framer.buffered()))
    boxes = twin["boxes"]
    run.events.append(("decode_boxes", outcome(boxes.decode_boxes, wire)))
    run.events.append(("encode_box", outcome(boxes.encode_box, box)))
    made = build(twin, spec)
    encoded = outcome(made.encode, objects, None, tag)
    run.events.append(("Schema.encode", encoded))
    if encoded[0] == "returned":
        decoded = boxes.decode_boxes(encoded[1])
        for b in decoded[:1]:
            run.events.append(("Schema.decode", repr(outcome(made.decode, b, None))))
    try:
        mine = boxes.decode_boxes(wire)
    except Exception:
        mine = []
    for b in mine[:2]:
        run.events.append(("Schema.decode wire", repr(outcome(made.decode, b, None))))
    return run.events


def read(data):
    s = Script(data)
    plan = s.actions(IN_CALLBACK)
    box = {s.pick(KEYS): s.pick(VALUES + BIG) for _ in range(s.fdp.ConsumeIntInRange(0, 4))}
    spec = schema(None, s)
    objects = {f"f{i}": s.pick(VALUES) for i in range(s.fdp.ConsumeIntInRange(0, 5))}
    tag = s.pick([None, b"1", b"tag"])
    wire = s.bytes(200)
    steps = []
    while s.left() and len(steps) < 16:
        steps.append((s.pick(BETWEEN), s.bytes(60)))
    return plan, steps, box, spec, objects, wire, tag


def test_one_input(data):
    script = read(data)
    compare("boxes", {name: play(twin, script) for name, twin in TWINS})


if __name__ == "__main__":
    assert COMPILED and PURE
    main(test_one_input)
