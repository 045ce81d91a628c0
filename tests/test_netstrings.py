"""Tests of txframe's drop-in NetstringReceiver and of its NetstringFramer.

Every test that frames bytes takes the ``impl`` fixture, so it runs on both the compiled
and the pure framer. Parsing is checked against Twisted's own NetstringReceiver on
generated streams of valid and malformed netstrings in any chunking: the same strings
must be delivered, in the same order, and the peer found broken after the same one.
The deliberate differences are tested as txframe behaviour, each marked
``# Difference N`` (numbered as in test_strings.py):

2. an exception from ``stringReceived`` propagates and the next ``dataReceived`` goes on
   with the next string (as Twisted's NetstringReceiver does, too);
3. a ``dataReceived`` re-entered from ``stringReceived`` keeps the stream's order, and
   the strings it completes are delivered after the callback returns;
4. (#2851) a parse error calls ``netstringParseError(reason)`` once, with a
   ``NetstringParseError``; its default calls ``_handleParseError()`` (which drops the
   connection and sets ``brokenPeer``); everything received after it is disregarded;
5. pauseProducing / resumeProducing / stopProducing are honoured (Twisted's
   NetstringReceiver has none);
6. bytearray / memoryview data accepted, str data rejected with a TypeError.

Two Twisted quirks are kept out of the comparisons: ``MAX_LENGTH = 0`` crashes Twisted
(``log10(0)``; txframe accepts ``0:,``), and Twisted's partial-length pattern ends in
``$``, which also matches before a final ``b"\\n"`` — digits followed by ``b"\\n"`` at
the very end of the data received so far wait for more data there, where txframe
reports the malformed byte as soon as it arrives (see ``settle_newline_quirk``).
"""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.protocols import basic as twisted_basic

from scripted import Boom, as_kind, chunk_ops, exception_record
from txframe import basic as txframe_basic
from txframe.testing import chunks as cut_into

NetstringParseError = twisted_basic.NetstringParseError
TOO_LONG = twisted_basic.NetstringReceiver._TOO_LONG
MISSING_LENGTH = twisted_basic.NetstringReceiver._MISSING_LENGTH
MISSING_COMMA = twisted_basic.NetstringReceiver._MISSING_COMMA


def netstring(string):
    return b"%d:%b," % (len(string), string)


def netstrings(strings):
    return b"".join(netstring(s) for s in strings)


def chunkings(data):
    """*data* whole, split at every position, and one byte at a time."""
    yield [data]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    yield [data[k : k + 1] for k in range(len(data))]


# ---------------------------------------------------------------------------
# Recording subclasses for Twisted's class and txframe's.
# ---------------------------------------------------------------------------


class Recording:
    """Mixin (put it first) recording ``("string", s)`` and ``("parse error", reason)``.

    ``reason`` is the NetstringParseError's args (for Twisted's class, caught on its way
    to ``_handleParseError``). ``on_string(proto, string)``, if set on the instance, runs
    inside ``stringReceived``.
    """

    on_string = None
    reason = None

    def __init__(self):
        self.events = []

    def stringReceived(self, string):
        self.events.append(("string", type(string).__name__, string))
        if self.on_string is not None:
            self.on_string(self, string)

    def _handleParseError(self):
        self.events.append(("parse error", self.reason))
        super()._handleParseError()


class TwistedRecording(Recording, twisted_basic.NetstringReceiver):
    def _consumeData(self):
        try:
            return super()._consumeData()
        except NetstringParseError as exc:
            self.reason = exc.args
            raise


_CLASSES: dict = {}


def txframe_recording(impl, mixin=Recording):
    key = (impl.name, mixin)
    if key not in _CLASSES:

        def netstringParseError(self, reason):
            assert type(reason) is NetstringParseError
            self.reason = reason.args
            return impl.NetstringReceiver.netstringParseError(self, reason)

        _CLASSES[key] = type(
            f"Recording_{impl.name}_{mixin.__name__}",
            (mixin, impl.NetstringReceiver),
            {"netstringParseError": netstringParseError},
        )
    return _CLASSES[key]


_QUIRK = re.compile(rb"(0|[1-9]\d*)\n")


def settle_newline_quirk(proto):
    """Let Twisted report a parse error it holds back at the end of the stream.

    Twisted's ``_LENGTH_PREFIX`` (``(0|[1-9]\\d*)$``) matches digits followed by a final
    b"\\n", so Twisted waits for more data there; any further byte makes it report the
    error, as txframe did when the b"\\n" arrived. Call only when Twisted processed all
    the data it was given (its last call did not raise).
    """
    if (
        not proto.brokenPeer
        and proto._state == proto._PARSING_LENGTH
        and _QUIRK.fullmatch(proto._remainingData)
    ):
        proto.dataReceived(b"x")
        assert proto.brokenPeer


def connect(cls, transport=None, **attrs):
    proto = cls()
    for name, value in attrs.items():
        setattr(proto, name, value)
    transport = StringTransport() if transport is None else transport
    proto.makeConnection(transport)
    return proto, transport


def feed(proto, chunks):
    """Feed chunks, stopping once the transport is disconnecting."""
    for chunk in chunks:
        if proto.transport.disconnecting:
            break
        proto.dataReceived(chunk)


def strings_of(proto):
    return [event[-1] for event in proto.events if event[0] == "string"]


def run_both(impl, chunks, messages=True, **attrs):
    """Feed *chunks* to Twisted's class and to txframe's; return both outcomes."""
    results = []
    for cls, twisted in ((TwistedRecording, True), (txframe_recording(impl), False)):
        proto, transport = connect(cls, **attrs)
        feed(proto, chunks)
        if twisted:
            settle_newline_quirk(proto)
        events = proto.events if messages else [e[:1] if e[0] == "parse error" else e for e in proto.events]
        results.append((events, proto.brokenPeer, transport.disconnecting))
    return results


# ---------------------------------------------------------------------------
# The scripted protocol for differential tests.
# ---------------------------------------------------------------------------

#: Upper-case letters in a received string script actions (see NetScripted).
NET_COMMANDS = b"MXEW"


class NetScripted(Recording):
    """Upper-case letters in a string are actions, run left to right: ``M`` swap
    ``MAX_LENGTH`` and ``other_max``; ``X`` transport.loseConnection(); ``E`` raise
    Boom; ``W`` sendString(the string)."""

    other_max = 5

    def stringReceived(self, string):
        super().stringReceived(string)
        for byte in string:
            if byte == 0x4D:  # M
                self.MAX_LENGTH, self.other_max = self.other_max, self.MAX_LENGTH
            elif byte == 0x58:  # X
                self.transport.loseConnection()
            elif byte == 0x45:  # E
                raise Boom(string)
            elif byte == 0x57:  # W
                self.sendString(string)


class TwistedScripted(NetScripted, TwistedRecording):
    pass


def drive_net(cls, scenario, twisted, messages):
    """Run *scenario* on a fresh instance of *cls*; return everything observable."""
    proto = cls()
    proto.MAX_LENGTH = scenario["max_length"]
    proto.other_max = scenario["other_max"]
    transport = StringTransport()
    proto.makeConnection(transport)
    events = proto.events
    raised = False  # the last call raised: data may be left unprocessed
    for op, arg in scenario["ops"]:
        if transport.disconnecting:
            break  # as a real transport would
        try:
            if op == "data":
                kind, chunk = arg
                # Twisted's takes bytes only; txframe any bytes-like (Difference 6)
                proto.dataReceived(chunk if twisted else as_kind(kind, chunk))
                raised = False
            elif op == "max":
                proto.MAX_LENGTH, proto.other_max = proto.other_max, proto.MAX_LENGTH
        except Boom as exc:  # as in Twisted, the next call goes on (Difference 2)
            events.append(exception_record(exc))
            raised = True
    if twisted and not raised:
        settle_newline_quirk(proto)
    if not messages:  # Twisted's message depends on how the bytes were chunked
        events = [e[:1] if e[0] == "parse error" else e for e in events]
    events.append(("end", proto.brokenPeer, transport.disconnecting, transport.value()))
    return events


def _lowercase(data):
    return bytes(b | 0x20 if 0x41 <= b <= 0x5A else b for b in data)


CORRUPTIONS = [
    "letter",
    "sign",
    "leading zero",
    "colon",
    "comma",
    "huge",
    "garbage",
    "off by one",
    "space",
    "newline",
    "empty length",
]


@st.composite
def netstring_scenarios(draw, commands=NET_COMMANDS, corrupt=8, one_byte=False):
    """Streams of netstrings, about one in *corrupt* malformed, in random chunks."""
    max_length = draw(st.integers(1, 40))  # MAX_LENGTH = 0 crashes Twisted
    other_max = draw(st.integers(1, 40))
    parts = []
    for _ in range(draw(st.integers(1, 10))):
        if draw(st.integers(0, 4)):
            length = draw(st.integers(0, 8))
        else:  # around MAX_LENGTH
            length = max(0, max_length + draw(st.integers(-1, 1)))
        body = bytearray(_lowercase(draw(st.binary(min_size=length, max_size=length))))
        if body:
            for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
                body[draw(st.integers(0, len(body) - 1))] = draw(st.sampled_from(commands))
        digits, colon, comma = b"%d" % length, b":", b","
        how = draw(st.sampled_from(CORRUPTIONS)) if corrupt and not draw(st.integers(0, corrupt - 1)) else None
        if how == "letter":
            at = draw(st.integers(0, len(digits)))
            digits = digits[:at] + draw(st.sampled_from([b"a", b"x", b"e", b"\xff", b"\x00"])) + digits[at:]
        elif how == "sign":
            digits = draw(st.sampled_from([b"+", b"-"])) + digits
        elif how == "leading zero":
            digits = b"0" * draw(st.integers(1, 3)) + digits
        elif how == "colon":
            colon = draw(st.sampled_from([b"", b";", b" ", b"\n", b"x", b"::"]))
        elif how == "comma":
            comma = draw(st.sampled_from([b"", b";", b"\n", b"x", b"\x00", b",,"]))
        elif how == "huge":
            digits = b"1" + b"0" * draw(st.integers(2, 40))
        elif how == "garbage":
            digits, colon, comma = b"", b"", b""
            body = bytearray(draw(st.binary(min_size=1, max_size=12)))
        elif how == "off by one":
            digits = b"%d" % max(0, length + draw(st.sampled_from([-1, 1])))
        elif how == "space":
            digits = draw(st.sampled_from([b" ", b"\t", b"\r\n"])) + digits
        elif how == "newline":
            digits += b"\n"
        elif how == "empty length":
            digits = b""
        parts.append(digits + colon + bytes(body) + comma)
    stream = b"".join(parts)
    if draw(st.booleans()):  # truncated
        stream = stream[: draw(st.integers(0, len(stream)))]
    if one_byte:
        sizes = [1]
    else:
        sizes = draw(
            st.lists(st.one_of(st.integers(1, 4), st.integers(1, max(len(stream), 1))), min_size=1, max_size=20)
        )
    extras = draw(st.lists(st.sampled_from([None] * 8 + ["max", "empty"]), min_size=1, max_size=20))
    kinds = draw(st.lists(st.sampled_from(["bytes"] * 4 + ["bytearray", "memoryview"]), min_size=1, max_size=5))
    ops = chunk_ops(stream, sizes, extras, kinds)
    ops.append(("data", ("bytes", b"")))
    return {"max_length": max_length, "other_max": other_max, "ops": ops}


def txframe_scripted(impl):
    return txframe_recording(impl, NetScripted)


# ---------------------------------------------------------------------------
# A/B. Differential property tests against Twisted's NetstringReceiver.
# ---------------------------------------------------------------------------


@settings(max_examples=250, deadline=None)
@given(scenario=netstring_scenarios())
def test_netstring_receiver_matches_twisted(impl, scenario):
    expected = drive_net(TwistedScripted, scenario, twisted=True, messages=False)
    assert drive_net(txframe_scripted(impl), scenario, twisted=False, messages=False) == expected


@settings(max_examples=100, deadline=None)
@given(scenario=netstring_scenarios(one_byte=True))
def test_netstring_receiver_one_byte_at_a_time_matches_twisted_messages(impl, scenario):
    """Fed a byte at a time, Twisted also finds the first malformed byte, so even the
    NetstringParseError messages agree."""
    expected = drive_net(TwistedScripted, scenario, twisted=True, messages=True)
    assert drive_net(txframe_scripted(impl), scenario, twisted=False, messages=True) == expected


@settings(max_examples=60, deadline=None)
@given(scenario=netstring_scenarios(commands=b"MW", corrupt=0))
def test_uncorrupted_netstring_streams_match_twisted(impl, scenario):
    """No malformed netstrings (only lengths over MAX_LENGTH), so long runs go on."""
    expected = drive_net(TwistedScripted, scenario, twisted=True, messages=True)
    assert drive_net(txframe_scripted(impl), scenario, twisted=False, messages=True) == expected


# ---------------------------------------------------------------------------
# B. Parse rules, case by case, against Twisted.
# ---------------------------------------------------------------------------

VALID = netstrings([b"a", b"", b"bc"])

#: name -> (data, strings delivered, broken peer, message)
CASES = {
    "valid": (VALID, [b"a", b"", b"bc"], 0, None),
    "empty string": (b"0:,", [b""], 0, None),
    "nested": (netstring(netstring(b"ab")), [netstring(b"ab")], 0, None),
    "comma and colon in payload": (netstring(b"1:,:"), [b"1:,:"], 0, None),
    "truncated length": (VALID + b"5", [b"a", b"", b"bc"], 0, None),
    "truncated payload": (VALID + b"3:ab", [b"a", b"", b"bc"], 0, None),
    "truncated before comma": (VALID + b"3:abc", [b"a", b"", b"bc"], 0, None),
    "letter": (VALID + b"x:b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "letter in length": (VALID + b"1x1:b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "hex length": (VALID + b"0x1:b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "plus sign": (VALID + b"+1:b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "minus sign": (VALID + b"-1:b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "leading zero": (VALID + b"01:b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "two zeros": (VALID + b"00:,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "no length": (VALID + b":b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "no colon": (VALID + b"1b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "semicolon": (VALID + b"1;b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "space before length": (VALID + b" 1:b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "space after length": (VALID + b"1 :b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "no comma": (VALID + b"1:bc", [b"a", b"", b"bc"], 1, MISSING_COMMA),
    "no comma at end": (VALID + b"1:b;", [b"a", b"", b"bc"], 1, MISSING_COMMA),
    "payload longer than declared": (VALID + b"1:bb,", [b"a", b"", b"bc"], 1, MISSING_COMMA),
    "payload shorter than declared": (VALID + b"3:bb,1:c,", [b"a", b"", b"bc"], 1, MISSING_COMMA),
    "double comma": (b"1:a,,1:b,", [b"a"], 1, MISSING_LENGTH),
    "too long": (VALID + b"6:abcdef,", [b"a", b"", b"bc"], 1, TOO_LONG % 5),
    "too many digits": (VALID + b"100:", [b"a", b"", b"bc"], 1, TOO_LONG % 5),
    "10**30": (VALID + b"1" + b"0" * 30 + b":", [b"a", b"", b"bc"], 1, TOO_LONG % 5),
    "binary garbage": (VALID + b"\xff\xfe\x00\x01", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "newline after length, then more": (VALID + b"1\n:b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "crlf": (VALID + b"\r\n1:b,", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    # Twisted reports these only when another byte comes: see settle_newline_quirk
    "newline after length at end": (VALID + b"1\n", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
    "newline after zero at end": (VALID + b"0\n", [b"a", b"", b"bc"], 1, MISSING_LENGTH),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_parse_rules_match_twisted(impl, name):
    data, strings, broken, message = CASES[name]
    for index, chunks in enumerate(chunkings(data)):
        one_byte = index == len(data)  # the last chunking: one byte at a time
        # Messages are compared one byte at a time only: given several bytes at once,
        # Twisted's message can name a later fault (e.g. "1000x" with MAX_LENGTH 99 is
        # a missing length to Twisted, too long to txframe, which stops at "100").
        results = run_both(impl, chunks, messages=one_byte, MAX_LENGTH=5)
        assert results[1] == results[0], chunks
        events, broken_peer, disconnecting = results[1]
        assert [e[-1] for e in events if e[0] == "string"] == strings
        assert broken_peer == broken and disconnecting == bool(broken)
        if one_byte and broken:
            assert events[-1] == ("parse error", (message,))


@pytest.mark.parametrize("name", sorted(CASES))
def test_parse_error_reason(impl, name):
    # Difference 4: netstringParseError(reason) once, with the message for the first
    # malformed byte.
    data, strings, broken, message = CASES[name]
    for chunks in ([data], [data[k : k + 1] for k in range(len(data))]):
        reasons = []

        class P(impl.NetstringReceiver):
            def stringReceived(self, string):
                pass

            def netstringParseError(self, reason):
                reasons.append(reason)
                super().netstringParseError(reason)

        proto, transport = connect(P, MAX_LENGTH=5)
        for chunk in chunks:
            proto.dataReceived(chunk)
        if broken:
            assert len(reasons) == 1
            assert type(reasons[0]) is NetstringParseError
            assert reasons[0].args == (message,)
            assert proto.brokenPeer == 1 and transport.disconnecting
        else:
            assert reasons == [] and proto.brokenPeer == 0


def test_newline_after_length_at_end_is_an_error_at_once(impl):
    # Twisted's `$` matches before a final b"\n", so it waits for another byte before
    # reporting this; txframe reports a malformed byte as soon as it arrives.
    for data in (b"1:a,12\n", b"0\n", b"1:a,1\n"):
        proto, transport = connect(txframe_recording(impl))
        proto.dataReceived(data)
        assert strings_of(proto) == ([b"a"] if data.startswith(b"1:a,") else [])
        assert proto.events[-1] == ("parse error", (MISSING_LENGTH,))
        assert proto.brokenPeer == 1 and transport.disconnecting


def test_max_length_zero(impl):
    # Twisted's NetstringReceiver crashes on MAX_LENGTH = 0 (log10(0)); txframe takes
    # it at its word: only empty strings.
    proto, transport = connect(txframe_recording(impl), MAX_LENGTH=0)
    proto.dataReceived(b"0:,0:,")
    assert strings_of(proto) == [b"", b""] and not transport.disconnecting
    proto.dataReceived(b"1:a,")
    assert proto.events[-1] == ("parse error", (TOO_LONG % 0,))
    assert proto.brokenPeer == 1 and strings_of(proto) == [b"", b""]


@pytest.mark.parametrize("max_length", [1, 5, 9, 10, 11, 99, 100, 1000, 99999])
def test_max_length_boundaries_match_twisted(impl, max_length):
    for delta in (-1, 0, 1):
        data = netstring(b"m" * (max_length + delta)) + netstring(b"after")
        for chunks in ([data], [data[:2], data[2:]], [data[k : k + 997] for k in range(0, len(data), 997)]):
            results = run_both(impl, chunks, MAX_LENGTH=max_length)
            assert results[1] == results[0], (max_length, delta, len(chunks))
            events, broken, _ = results[1]
            if delta <= 0:
                assert len(strings_of_events(events)) == (2 if max_length >= 5 else 1) and (broken == (max_length < 5))
            else:
                assert strings_of_events(events) == [] and broken == 1
                assert events[-1] == ("parse error", (TOO_LONG % max_length,))


@pytest.mark.parametrize("max_length", [1, 2.5, Fraction(7, 2), True, 10**6, 2**70], ids=repr)
def test_max_length_edge_values_match_twisted(impl, max_length):
    data = netstrings([b"", b"a", b"abc", b"abcd", b"x" * 20]) + b"2:y"
    for chunks in chunkings(data):
        results = run_both(impl, chunks, messages=len(chunks) == len(data), MAX_LENGTH=max_length)
        assert results[1] == results[0], (max_length, chunks)


@pytest.mark.parametrize(
    "max_length,delivered",
    [(float("inf"), 5), (float("nan"), 5), (-1, 0), (float("-inf"), 0), (-(2**70), 0)],
    ids=repr,
)
def test_max_length_values_twisted_cannot_use(impl, max_length, delivered):
    # Twisted's length-digit check takes log10 and ceil of MAX_LENGTH, which raise for
    # these; txframe compares as Twisted's `length > self.MAX_LENGTH` does.
    data = netstrings([b"", b"a", b"abc", b"abcd", b"x" * 20])
    for chunks in ([data], [data[k : k + 1] for k in range(len(data))]):
        proto, transport = connect(txframe_recording(impl), MAX_LENGTH=max_length)
        feed(proto, chunks)
        assert strings_of(proto) == [b"", b"a", b"abc", b"abcd", b"x" * 20][:delivered]
        assert proto.brokenPeer == (0 if delivered else 1)
        if not delivered:
            assert proto.events == [("parse error", (TOO_LONG % (max_length,),))]


def strings_of_events(events):
    return [e[-1] for e in events if e[0] == "string"]


def test_max_length_change_in_callback_matches_twisted(impl):
    data = netstrings([b"shrink", b"abc", b"abcd", b"x"])
    for chunks in chunkings(data):
        results = []
        for cls in (TwistedRecording, txframe_recording(impl)):
            proto, transport = connect(cls, MAX_LENGTH=10)
            proto.on_string = lambda proto, s: setattr(proto, "MAX_LENGTH", 3) if s == b"shrink" else None
            feed(proto, chunks)
            results.append(([e[:1] if e[0] == "parse error" else e for e in proto.events], proto.brokenPeer))
        assert results[1] == results[0]
        assert results[1] == ([("string", "bytes", b"shrink"), ("string", "bytes", b"abc"), ("parse error",)], 1)


@pytest.mark.parametrize("where", ["class", "instance", "deleted"])
def test_ways_of_setting_max_length_match_twisted(impl, where):
    data = netstrings([b"abc", b"abcdef"])
    results = []
    for base in (TwistedRecording, txframe_recording(impl)):
        cls = type("Sub", (base,), {"MAX_LENGTH": 5}) if where == "class" else base
        proto, transport = connect(cls)
        if where == "instance":
            proto.MAX_LENGTH = 5
        elif where == "deleted":
            proto.MAX_LENGTH = 2
            del proto.MAX_LENGTH
        proto.dataReceived(data)
        results.append((proto.events, proto.brokenPeer, proto.MAX_LENGTH))
    assert results[1] == results[0]
    assert results[1][1] == (0 if where == "deleted" else 1)


def test_new_connection_starts_afresh_like_twisted(impl):
    results = []
    for cls in (TwistedRecording, txframe_recording(impl)):
        proto, transport = connect(cls)
        proto.dataReceived(b"1:a,3:bc")
        proto.dataReceived(b"x")  # a parse error
        first = (list(proto.events), proto.brokenPeer)
        proto.makeConnection(StringTransport())
        assert proto.brokenPeer == 0
        proto.dataReceived(b"1:z,2:y")
        results.append((first, proto.events, proto.brokenPeer, proto.transport.disconnecting))
    assert results[1] == results[0]
    assert results[1][1][-1] == ("string", "bytes", b"z")


# ---------------------------------------------------------------------------
# C. sendString.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "string", [b"", b"a", b"hello, world", b"1:a,", bytes(range(256)), b"x" * 100_000], ids=lambda s: str(len(s))
)
def test_send_string_matches_twisted(impl, string):
    outputs = []
    for cls in (twisted_basic.NetstringReceiver, impl.NetstringReceiver):
        proto, transport = connect(cls)
        assert proto.sendString(string) is None
        proto.sendString(b"second")
        outputs.append(transport.value())
    assert outputs[1] == outputs[0] == b"%d:%b,6:second," % (len(string), string)


def test_send_and_receive_round_trip(impl):
    sender, transport = connect(impl.NetstringReceiver)
    strings = [b"", b",", b":", b"0:,", bytes(range(256)) * 3]
    for s in strings:
        sender.sendString(s)
    receiver, _ = connect(txframe_recording(impl))
    receiver.dataReceived(transport.value())
    assert strings_of(receiver) == strings


def test_class_attributes_match_twisted(impl):
    assert impl.NetstringReceiver.MAX_LENGTH == twisted_basic.NetstringReceiver.MAX_LENGTH == 99999
    proto, _ = connect(impl.NetstringReceiver)
    assert proto.brokenPeer == 0 and proto.MAX_LENGTH == 99999 and not proto.paused
    assert issubclass(impl.NetstringReceiver, txframe_basic.NetstringReceiver)
    with pytest.raises(NotImplementedError):
        proto.dataReceived(b"1:a,")


# ---------------------------------------------------------------------------
# Difference 4 (#2851): netstringParseError.
# ---------------------------------------------------------------------------


def test_parse_error_default_drops_the_connection(impl):
    # Difference 4
    calls = []

    class P(impl.NetstringReceiver):
        def stringReceived(self, string):
            calls.append(("string", string))

        def _handleParseError(self):
            calls.append(("handle", self.brokenPeer, self.transport.disconnecting))
            super()._handleParseError()

    proto, transport = connect(P)
    proto.dataReceived(b"1:a,2:b;1:c,")
    assert calls == [("string", b"a"), ("handle", 0, False)]
    assert proto.brokenPeer == 1 and transport.disconnecting
    proto.dataReceived(b"1:d,")  # disregarded, and not reported again
    assert calls == [("string", b"a"), ("handle", 0, False)]


def test_overriding_handle_parse_error_alone_still_works(impl):
    # Difference 4: code written for Twisted overrides _handleParseError.
    calls = []

    class P(impl.NetstringReceiver):
        def stringReceived(self, string):
            calls.append(("string", string))

        def _handleParseError(self):
            calls.append("handled")

    proto, transport = connect(P)
    proto.dataReceived(b"1:a,x")
    proto.dataReceived(b"1:b,")
    assert calls == [("string", b"a"), "handled"]
    assert proto.brokenPeer == 0 and not transport.disconnecting


def test_parse_error_kept_open_disregards_the_rest(impl):
    # Difference 4: after the error nothing more is delivered or buffered.
    reasons = []

    class P(impl.NetstringReceiver):
        def stringReceived(self, string):
            reasons.append(("string", string))

        def netstringParseError(self, reason):
            reasons.append(reason)
            self.transport.write(b"bye")

    proto, transport = connect(P)
    proto.dataReceived(b"1:a,1:bX")
    assert reasons[0] == ("string", b"a")
    assert len(reasons) == 2 and type(reasons[1]) is NetstringParseError
    assert reasons[1].args == (MISSING_COMMA,)
    assert not transport.disconnecting and proto.brokenPeer == 0
    assert transport.value() == b"bye"
    chunk = netstring(b"z" * 1000)
    for _ in range(10 * 1024):  # 10 MB
        proto.dataReceived(chunk)
        assert proto._framer.buffered() == b""
    assert len(reasons) == 2


def test_parse_error_without_transport(impl):
    # Difference 4, and no transport needed
    proto = txframe_recording(impl)()
    proto.dataReceived(b"1:a,-")
    assert proto.events == [("string", "bytes", b"a"), ("parse error", (MISSING_LENGTH,))]
    assert proto.brokenPeer == 1


def test_long_run_of_digits_is_rejected_at_once(impl):
    # E: no buffering of an endless length
    proto, transport = connect(txframe_recording(impl))
    proto.dataReceived(b"1:a," + b"9" * 5)
    assert proto.events == [("string", "bytes", b"a")]
    assert proto._framer.buffered() == b"9" * 5
    proto.dataReceived(b"9")  # 999999 > 99999
    assert proto.events[-1] == ("parse error", (TOO_LONG % 99999,))
    for _ in range(100):
        proto.dataReceived(b"9" * 100_000)
    assert proto._framer.buffered() == b""
    # with a huge MAX_LENGTH, a length no memory could hold is refused all the same
    proto, transport = connect(txframe_recording(impl), MAX_LENGTH=2**80)
    for _ in range(1000):
        if transport.disconnecting:
            break
        proto.dataReceived(b"1" * 1000)
    assert proto.brokenPeer == 1 and proto._framer.buffered() == b""


# ---------------------------------------------------------------------------
# Difference 2, 3, 5, 6.
# ---------------------------------------------------------------------------


def test_exception_propagates_and_next_call_continues_like_twisted(impl):
    # Difference 2 (Twisted's NetstringReceiver behaves the same)
    data = netstrings([b"a", b"bad1", b"b", b"bad2", b"c"]) + b"1:"
    results = []
    for cls in (TwistedRecording, txframe_recording(impl)):
        proto, _ = connect(cls)

        def bad(proto, string):
            if string.startswith(b"bad"):
                raise Boom(string)

        proto.on_string = bad
        raised = []
        for chunk in (data, b"", b"d,"):
            try:
                proto.dataReceived(chunk)
            except Boom as exc:
                raised.append(exc.args)
        results.append((strings_of(proto), raised))
    assert results[1] == results[0]
    assert results[1] == ([b"a", b"bad1", b"b", b"bad2", b"c", b"d"], [(b"bad1",), (b"bad2",)])


@pytest.mark.parametrize("exc_type", [NetstringParseError, twisted_basic.IncompleteNetstring])
def test_parsing_exception_from_string_received_matches_twisted(impl, exc_type):
    """Twisted's dataReceived catches NetstringParseError (a parse error: the connection
    is dropped) and IncompleteNetstring (the rest waits for the next call) wherever they
    come from, stringReceived included."""
    data = netstrings([b"a", b"bad", b"b"])
    results = []
    for cls in (TwistedRecording, txframe_recording(impl)):
        proto, transport = connect(cls)

        def bad(proto, string):
            if string == b"bad":
                raise exc_type("from stringReceived")

        proto.on_string = bad
        try:
            proto.dataReceived(data)
            outcome = "returned"
        except exc_type:
            outcome = "raised"
        results.append((outcome, strings_of(proto), proto.brokenPeer, transport.disconnecting))
    assert results[1] == results[0]


def test_reentrant_data_received_keeps_order(impl):
    # Difference 3: the strings the inner call completes come after the outer chunk's
    # (Twisted delivers them from inside the callback).
    proto, _ = connect(txframe_recording(impl))

    def on_string(proto, string):
        if string == b"feed":
            assert proto.dataReceived(netstrings([b"x", b"y"]) + b"1:") is None
            proto.events.append(("back",))

    proto.on_string = on_string
    proto.dataReceived(netstrings([b"a", b"feed", b"b", b"c"]))
    assert proto.events == [
        ("string", "bytes", b"a"),
        ("string", "bytes", b"feed"),
        ("back",),
        ("string", "bytes", b"b"),
        ("string", "bytes", b"c"),
        ("string", "bytes", b"x"),
        ("string", "bytes", b"y"),
    ]
    proto.dataReceived(b"z,")
    assert strings_of(proto)[-1] == b"z"


def test_reentrant_data_received_with_parse_error(impl):
    # Difference 3 and 4: a malformed netstring fed from inside a callback is reported
    # in stream order, once
    proto, transport = connect(txframe_recording(impl))
    proto.on_string = lambda proto, s: proto.dataReceived(b"x") if s == b"feed" else None
    proto.dataReceived(netstrings([b"feed", b"b"]))
    assert proto.events == [
        ("string", "bytes", b"feed"),
        ("string", "bytes", b"b"),
        ("parse error", (MISSING_LENGTH,)),
    ]


def test_pause_resume_stop_producing(impl):
    # Difference 5
    proto, transport = connect(txframe_recording(impl))
    proto.dataReceived(b"1:a,")
    proto.pauseProducing()
    assert proto.paused and transport.producerState == "paused"
    proto.dataReceived(b"1:b,1:c,1:")
    assert strings_of(proto) == [b"a"]
    proto.resumeProducing()
    assert not proto.paused and transport.producerState == "producing"
    assert strings_of(proto) == [b"a", b"b", b"c"]
    proto.dataReceived(b"d,")
    assert strings_of(proto) == [b"a", b"b", b"c", b"d"]
    proto.stopProducing()
    assert proto.paused and transport.producerState == "stopped"
    proto.dataReceived(b"1:e,")
    assert strings_of(proto) == [b"a", b"b", b"c", b"d"]
    proto.paused = False
    proto.dataReceived(b"")
    assert strings_of(proto)[-1] == b"e"


def test_pause_inside_string_received(impl):
    # Difference 5: a malformed netstring behind the pause is reported on resuming.
    proto, transport = connect(txframe_recording(impl))
    proto.on_string = lambda proto, s: proto.pauseProducing() if s == b"pause" else None
    proto.dataReceived(netstrings([b"a", b"pause", b"b"]) + b"x")
    assert strings_of(proto) == [b"a", b"pause"]
    assert proto.brokenPeer == 0 and proto.paused
    proto.dataReceived(b"1:c,")
    assert strings_of(proto) == [b"a", b"pause"]
    proto.resumeProducing()
    assert strings_of(proto) == [b"a", b"pause", b"b"]
    assert proto.events[-1] == ("parse error", (MISSING_LENGTH,)) and proto.brokenPeer == 1


def test_pause_without_transport(impl):
    # Difference 5
    proto = txframe_recording(impl)()
    proto.pauseProducing()
    proto.dataReceived(b"1:a,")
    assert strings_of(proto) == []
    proto.resumeProducing()
    assert strings_of(proto) == [b"a"]


def test_bytes_like_data(impl):
    # Difference 6
    proto, _ = connect(txframe_recording(impl))
    proto.dataReceived(bytearray(b"2:ab,1"))
    proto.dataReceived(memoryview(b":c,"))
    proto.dataReceived(memoryview(b"xx0:,")[2:])
    assert strings_of(proto) == [b"ab", b"c", b""]
    assert all(type(s) is bytes for s in strings_of(proto))


def test_str_data_is_rejected(impl):
    # Difference 6
    proto, transport = connect(txframe_recording(impl))
    proto.dataReceived(b"1:a,2:b")
    with pytest.raises(TypeError, match="bytes"):
        proto.dataReceived("c,")
    with pytest.raises(TypeError, match="bytes"):
        proto.dataReceived(None)
    proto.dataReceived(b"c,")
    assert strings_of(proto) == [b"a", b"bc"]
    assert proto.brokenPeer == 0


# ---------------------------------------------------------------------------
# F. NetstringFramer with a tiny sink.
# ---------------------------------------------------------------------------


class Sink:
    MAX_LENGTH = 99999
    transport = None

    def __init__(self):
        self.events = []
        self.on_string = None

    def stringReceived(self, string):
        self.events.append(("string", string))
        if self.on_string is not None:
            self.on_string(string)

    def _netstringParseError(self, message):
        self.events.append(("error", message))


def feed_framer(framer, sink, data, step):
    for k in range(0, len(data), step):
        framer.feed(sink, data[k : k + step])


@pytest.mark.parametrize("step", [1, 2, 5, 1000])
def test_netstring_framer_feed_and_buffered(impl, step):
    framer = impl.NetstringFramer()
    sink = Sink()
    assert framer.buffered() == b"" and not framer.paused
    feed_framer(framer, sink, netstrings([b"abc", b"", b"de"]) + b"12", step)
    assert sink.events == [("string", b"abc"), ("string", b""), ("string", b"de")]
    assert framer.buffered() == b"12" and type(framer.buffered()) is bytes
    framer.feed(sink, b":hello world!,")
    assert sink.events[-1] == ("string", b"hello world!") and framer.buffered() == b""


def test_netstring_framer_clear_and_replace(impl):
    framer = impl.NetstringFramer()
    sink = Sink()
    framer.feed(sink, b"1:a,12")
    assert framer.clear() == b"12"
    assert framer.buffered() == b"" and framer.clear() == b""
    framer.feed(sink, b"2:bc,")
    framer.replace(b"3:d")
    assert framer.buffered() == b"3:d"
    framer.feed(sink, b"ef,")
    framer.replace(bytearray(b"1:"))
    framer.feed(sink, memoryview(b"g,"))
    framer.replace("")
    framer.feed(sink, b"1:h,")
    assert sink.events == [("string", b"a"), ("string", b"bc"), ("string", b"def"), ("string", b"g"), ("string", b"h")]


def test_netstring_framer_paused(impl):
    framer = impl.NetstringFramer()
    sink = Sink()
    framer.paused = 1
    assert framer.paused is True
    framer.feed(sink, b"1:a,1:b,x")
    assert sink.events == [] and framer.buffered() == b"1:a,1:b,x"
    framer.paused = False
    framer.feed(sink, b"")
    assert sink.events == [("string", b"a"), ("string", b"b"), ("error", MISSING_LENGTH)]


def test_netstring_framer_errors(impl):
    for data, message in [
        (b"1:a,1:bc", MISSING_COMMA),
        (b"1:a,x", MISSING_LENGTH),
        (b"1:a,01:b,", MISSING_LENGTH),
        (b"1:a,6:", TOO_LONG % 5),
        (b"1:a," + b"9" * 40, TOO_LONG % 5),
    ]:
        for step in (1, len(data)):
            framer = impl.NetstringFramer()
            sink = Sink()
            sink.MAX_LENGTH = 5
            feed_framer(framer, sink, data, step)
            assert sink.events == [("string", b"a"), ("error", message)], (data, step)
            assert framer.buffered() == b""
            framer.feed(sink, b"1:z,")  # disregarded
            assert len(sink.events) == 2 and framer.buffered() == b""


def test_netstring_framer_reads_max_length(impl):
    framer = impl.NetstringFramer()
    sink = Sink()
    sink.MAX_LENGTH = 3
    framer.feed(sink, b"3:abc,")
    sink.MAX_LENGTH = 2
    framer.feed(sink, b"3:abc,")
    assert sink.events == [("string", b"abc"), ("error", TOO_LONG % 2)]


def test_netstring_framer_reentrant_feed_and_exceptions(impl):
    framer = impl.NetstringFramer()
    sink = Sink()

    def on_string(string):
        if string == b"feed":
            framer.feed(sink, b"1:n,")
        if string == b"boom":
            raise Boom(string)

    sink.on_string = on_string
    framer.feed(sink, netstrings([b"feed", b"a"]))
    assert sink.events == [("string", b"feed"), ("string", b"a"), ("string", b"n")]
    with pytest.raises(Boom):
        framer.feed(sink, netstrings([b"boom", b"b"]))
    assert framer.buffered() == netstring(b"b")
    framer.feed(sink, b"")
    assert sink.events[-1] == ("string", b"b")
    with pytest.raises(TypeError, match="bytes"):
        framer.feed(sink, "1:x,")


@settings(max_examples=60, deadline=None)
@given(
    strings=st.lists(st.binary(max_size=40), max_size=12),
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=10),
)
def test_netstring_framer_splits_any_chunking(impl, strings, sizes):
    framer = impl.NetstringFramer()
    sink = Sink()
    stream = netstrings(strings) + b"1"
    for piece in cut_into(stream, sizes):
        framer.feed(sink, piece)
    assert sink.events == [("string", s) for s in strings]
    assert framer.buffered() == b"1"
