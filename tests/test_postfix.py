"""Tests of txframe.postfix: the tcp_table server (Twisted's drop-in) and socketmap.

Every test that frames bytes takes the ``impl`` fixture, so it runs on the compiled and
the pure framers, with the bytes delivered in chunks down to one byte. Where Twisted's
``PostfixTCPMapServer`` is correct (plain keys and values, not found, unknown command,
``get`` without a key, ``put``, an ASCII error) the bytes on the wire are compared with
it; where it is not (see the README's "Differences from Twisted") txframe's behaviour
is asserted:

1. keys are %XX-decoded (either hex case); values are encoded as Postfix decodes them;
2. one reply per request whatever the factory returns or raises: non-bytes values,
   non-ASCII or multi-line error messages, values too long for a reply (logged);
3. replies in request order, however the factory's Deferreds fire;
4. no idle timeout unless one is set, and none while a reply is outstanding;
5. an over-long request line gets a 400 reply and is skipped; the connection stays;
6. ``quote``/``unquote`` handle any bytes (Twisted's ``unquote`` fails on non-ASCII).

Requests are encoded by ``postfix_encode``, written here from Postfix's hex_quote()
(independently of txframe's ``quote``), and replies decoded by ``postfix_decode``, from
its hex_unquote().
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.protocols import postfix as twisted_postfix
from twisted.python.failure import Failure

from txframe import mapproto, postfix
from txframe.testing import chunks, deliver

SIZES = [1, 2, 3, 7, 64, 10**9]


# -- helpers -------------------------------------------------------------------------


def postfix_encode(key: bytes) -> bytes:
    """A key as Postfix's tcp client sends it: %XX (upper case) for every byte but
    printable ASCII, and for "%"."""
    return b"".join(
        bytes([b]) if 0x21 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in key
    )


def postfix_decode(text: bytes) -> bytes:
    """Reply text as Postfix's hex_unquote() reads it (None for a malformed one)."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == 0x25:
            digits = text[i + 1 : i + 3]
            if len(digits) != 2 or not all(chr(c) in "0123456789abcdefABCDEF" for c in digits):
                return None
            out.append(int(digits, 16))
            i += 3
        else:
            out.append(text[i])
            i += 1
    return bytes(out)


REPLY = re.compile(rb"([245]00) ([^\n]*)\n")


def replies(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split tcp_table output into (code, decoded text), checking each reply is one
    well-formed line within Postfix's limit."""
    out = []
    pos = 0
    while pos < len(data):
        match = REPLY.match(data, pos)
        assert match, data[pos:]
        assert len(match.group(0)) <= mapproto.TCP_REPLY_LIMIT
        text = postfix_decode(match.group(2))
        assert text is not None, match.group(0)
        out.append((match.group(1), text))
        pos = match.end()
    return out


def netstrings(data: bytes) -> list[bytes]:
    """Split socketmap output into payloads."""
    out = []
    pos = 0
    while pos < len(data):
        colon = data.index(b":", pos)
        length = int(data[pos:colon])
        end = colon + 1 + length
        assert data[end : end + 1] == b",", data
        out.append(data[colon + 1 : end])
        pos = end + 1
    return out


def ns(payload: bytes) -> bytes:
    return b"%d:%b," % (len(payload), payload)


_BOUND: dict[str, SimpleNamespace] = {}


def bound(impl):
    """txframe's servers bound to one implementation of the framers, as conftest
    binds basic's classes (usable from hypothesis tests, where ``impl`` is too)."""
    if impl.name not in _BOUND:
        lines, strings = impl.LineReceiver, impl.NetstringReceiver

        class TCP(postfix.PostfixTCPMapServer):
            _lineFramer = vars(lines)["_lineFramer"]
            dataReceived = vars(lines)["dataReceived"]

        class Socketmap(postfix.PostfixSocketmapServer):
            _stringFramer = vars(strings)["_stringFramer"]
            dataReceived = vars(strings)["dataReceived"]

        _BOUND[impl.name] = SimpleNamespace(TCP=TCP, Socketmap=Socketmap)
    return _BOUND[impl.name]


@pytest.fixture
def servers(impl):
    return bound(impl)


def connect(cls, factory, clock=None, **attrs):
    proto = cls()
    proto.factory = factory
    proto.callLater = (clock or Clock()).callLater
    for name, value in attrs.items():
        setattr(proto, name, value)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def run(cls, factory, data, sizes=10**9, **attrs):
    """Feed *data* in chunks of *sizes*; return what was written."""
    proto, transport = connect(cls, factory, **attrs)
    deliver(proto, data, sizes)
    return transport.value()


class Recorder:
    """A tcp factory recording the keys it is asked for."""

    def __init__(self, data=None, result=None):
        self.data = data or {}
        self.asked = []
        self.result = result

    def get(self, key):
        self.asked.append(key)
        if self.result is not None:
            return self.result(key)
        return self.data.get(key)


class Pending:
    """A factory (tcp: get(key); socketmap: get(name, key)) whose lookups wait for
    the test to fire them."""

    def __init__(self):
        self.waiting = []

    def get(self, *args):
        d = defer.Deferred()
        self.waiting.append((args[-1], d))
        return d


# -- quote / unquote -----------------------------------------------------------------

TWISTED_QUOTE_DATA = [
    (b"foo", b"foo"),
    (b"foo bar", b"foo%20bar"),
    (b"foo\tbar", b"foo%09bar"),
    (b"foo\nbar", b"foo%0Abar", b"foo%0abar"),
    (b"foo\r\nbar", b"foo%0D%0Abar", b"foo%0D%0abar", b"foo%0d%0Abar", b"foo%0d%0abar"),
    (b"foo ", b"foo%20"),
    (b" foo", b"%20foo"),
]


@pytest.mark.parametrize("entry", TWISTED_QUOTE_DATA)
def test_quote_unquote_twisted_data(entry):
    raw, quoted = entry[0], entry[1:]
    assert postfix.quote(raw) == quoted[0] == twisted_postfix.quote(raw)
    for form in quoted:
        assert postfix.unquote(form) == raw == twisted_postfix.unquote(form)


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_quote_unquote_round_trip(raw):
    quoted = postfix.quote(raw)
    assert quoted == postfix_encode(raw)  # as Postfix encodes
    assert re.fullmatch(rb"[!-~]*", quoted)  # one word of printable ASCII
    assert postfix.unquote(quoted) == raw
    lower = re.sub(rb"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted)
    assert postfix.unquote(lower) == raw  # either hex case
    assert postfix_decode(quoted) == raw


def test_quote_and_unquote_take_text():
    assert postfix.quote("café") == b"caf%C3%A9"
    assert postfix.unquote("caf%c3%a9") == "café".encode()


def test_unquote_non_ascii():
    # Difference 6: Twisted's unquote encodes its result as ASCII.
    assert postfix.unquote(b"%C3%A9") == b"\xc3\xa9"
    assert postfix.unquote(b"caf\xc3\xa9") == b"caf\xc3\xa9"
    with pytest.raises(UnicodeEncodeError):
        twisted_postfix.unquote(b"%C3%A9")


@pytest.mark.parametrize("bad", [b"%", b"%4", b"a%zz", b"%g0", b"100%"])
def test_unquote_malformed(bad):
    with pytest.raises(postfix.MalformedRequest):
        postfix.unquote(bad)
    assert issubclass(postfix.MalformedRequest, ValueError)


# -- tcp_table: against Twisted ------------------------------------------------------

TWISTED_DATA = {b"foo": b"ThisIs Foo", b"bar": b" bar really is found\r\n"}
# Twisted's own chat (twisted/test/test_postfix.py) where Twisted is right; its
# b"get foo bar" (a key with an unencoded space) is tested below.
TWISTED_CHAT = [
    b"get",
    b"put",
    b"put foo",
    b"put foo bar baz",
    b"put foo bar",
    b"get foo",
    b"get bar",
    b"get baz",
    b"foo",
    b"",
    b"GET foo",
]


def twisted_run(factory, data, sizes):
    proto = twisted_postfix.PostfixTCPMapServer()
    proto.factory = factory
    proto.callLater = Clock().callLater
    transport = StringTransport()
    proto.makeConnection(transport)
    for piece in chunks(data, sizes):
        proto.dataReceived(piece)
    return transport.value()


@pytest.mark.parametrize("deferring", [False, True], ids=["dict", "deferring"])
@pytest.mark.parametrize("sizes", SIZES)
def test_chat_matches_twisted(servers, deferring, sizes):
    data = b"".join(line + b"\n" for line in TWISTED_CHAT)
    if deferring:
        mine = postfix.PostfixTCPMapDeferringDictServerFactory(TWISTED_DATA)
        theirs = twisted_postfix.PostfixTCPMapDeferringDictServerFactory(TWISTED_DATA)
    else:
        mine = postfix.PostfixTCPMapDictServerFactory(TWISTED_DATA)
        theirs = twisted_postfix.PostfixTCPMapDictServerFactory(TWISTED_DATA)
    expected = twisted_run(theirs, data, sizes)
    assert run(servers.TCP, mine, data, sizes) == expected
    assert len(replies(expected)) == len(TWISTED_CHAT)


def test_exception_matches_twisted(servers):
    class ErrorFactory:
        def get(self, key):
            raise Exception("This is a test error")

    with capturedLogs():
        out = run(servers.TCP, ErrorFactory(), b"get example\n")
    assert out == b"400 This is a test error\n"
    assert out == twisted_run(ErrorFactory(), b"get example\n", 100)


# Keys Twisted handles (it never decodes them, so: no "%"), values it encodes as
# Postfix does (urllib leaves letters, digits and "_.-~/" alone and encodes every
# other byte, as txframe does for the bytes below).
plain_keys = st.binary(min_size=1, max_size=12).map(
    lambda b: bytes(b"abcXYZ019_.-~/"[x % 14] for x in b)
)
twisted_values = st.binary(min_size=1, max_size=40).map(
    lambda b: bytes(x if x < 0x21 or x > 0x7E else b"aZ9_.-~/"[x % 8] for x in b)
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.dictionaries(plain_keys, twisted_values, max_size=6),
    asked=st.lists(plain_keys, max_size=12),
    deferring=st.booleans(),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=5),
)
def test_lookups_match_twisted(impl, data, asked, deferring, sizes):
    TCP = bound(impl).TCP
    keys = list(data)[:3] + asked
    stream = b"".join(b"get " + key + b"\n" for key in keys)
    kind = "PostfixTCPMap%sDictServerFactory" % ("Deferring" if deferring else "")
    expected = twisted_run(getattr(twisted_postfix, kind)(data), stream, sizes)
    assert run(TCP, getattr(postfix, kind)(data), stream, sizes) == expected
    assert [text for code, text in replies(expected) if code == b"200"] == [
        data[k] for k in keys if k in data
    ]


# -- tcp_table: what txframe fixes ---------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.binary(min_size=1, max_size=60), min_size=1, max_size=4),
    value=st.binary(max_size=60) | st.text(max_size=20),
    size=st.sampled_from([1, 3, 1000]),
)
def test_any_key_and_value_as_postfix_sends_and_reads_them(impl, keys, value, size):
    # Difference 1: the factory sees the raw key; the value comes back as it was.
    TCP = bound(impl).TCP
    factory = Recorder(result=lambda key: value)
    stream = b"".join(b"get " + postfix_encode(key) + b"\n" for key in keys)
    out = run(TCP, factory, stream, size)
    assert factory.asked == keys
    raw = value.encode() if isinstance(value, str) else value
    expected = (b"200", raw) if raw else (b"500", b"")  # an empty value is not found
    assert replies(out) == [expected] * len(keys)


@pytest.mark.parametrize(
    "request_key, key",
    [
        (b"a%20b", b"a b"),
        (b"caf%C3%A9", "café".encode()),
        (b"caf%c3%a9", "café".encode()),
        (b"caf%C3%a9", "café".encode()),
        (b"100%25", b"100%"),
        (b"user+tag@example.com", b"user+tag@example.com"),
        (b"%09tab%0D%0A", b"\ttab\r\n"),
        (b"nul%00byte", b"nul\x00byte"),
    ],
)
def test_keys_are_decoded(servers, request_key, key):
    factory = Recorder({key: b"found"})
    out = run(servers.TCP, factory, b"get " + request_key + b"\n", 1)
    assert factory.asked == [key]
    assert out == b"200 found\n"
    # Twisted looks up the key as sent.
    theirs = Recorder({key: b"found"})
    twisted_run(theirs, b"get " + request_key + b"\n", 100)
    assert theirs.asked == [request_key]


def test_empty_key(servers):
    # Postfix sends "get " for an empty key; "get" alone has no key.
    factory = Recorder({b"": b"empty key"})
    out = run(servers.TCP, factory, b"get \nget\n")
    assert factory.asked == [b""]
    assert out == b"200 empty%20key\n400 Command 'get' takes 1 parameters.\n"


def test_trailing_carriage_return(servers):
    factory = Recorder({b"foo": b"bar"})
    assert run(servers.TCP, factory, b"get foo\r\nget\r\n", 1) == (
        b"200 bar\n400 Command 'get' takes 1 parameters.\n"
    )
    assert factory.asked == [b"foo"]


def test_unencoded_space_in_key(servers):
    # A key with an unencoded space is not a tcp_table request (Twisted looks up
    # b"foo bar").
    factory = Recorder()
    assert run(servers.TCP, factory, b"get foo bar\n") == (
        b"400 Command 'get' takes 1 parameters.\n"
    )
    assert factory.asked == []


@pytest.mark.parametrize(
    "value, line",
    [
        (b"100% a\tb\n", b"200 100%25%20a%09b%0A\n"),
        ("café €", b"200 caf%C3%A9%20%E2%82%AC\n"),
        (b"\xff\x00", b"200 %FF%00\n"),
        (bytearray(b"x y"), b"200 x%20y\n"),
        (b"user@example.com", b"200 user@example.com\n"),
    ],
)
def test_values_are_encoded(servers, value, line):
    assert run(servers.TCP, Recorder({b"k": value}), b"get k\n") == line


@pytest.mark.parametrize("value", [b"", ""])
def test_empty_value_is_not_found(servers, value):
    # Postfix warns that an empty result "is not allowed" (Twisted sends "200 ").
    data = {b"empty": value}
    assert run(servers.TCP, Recorder(data), b"get empty\n") == b"500 \n"
    assert twisted_run(Recorder(data), b"get empty\n", 100) == b"200 \n"
    factory = postfix.PostfixSocketmapDictServerFactory({b"m": data})
    assert netstrings(run(servers.Socketmap, factory, ns(b"m empty"))) == [b"NOTFOUND "]


@pytest.mark.parametrize("value", [42, 1.5, ["a"], object()])
def test_non_bytes_value(servers, value):
    # Difference 2: Twisted sends nothing at all (Postfix waits 100 s).
    factory = Recorder({b"bad": value, b"good": b"ok"})
    with capturedLogs() as events:
        out = run(servers.TCP, factory, b"get bad\nget good\n", 1)
    assert replies(out) == [
        (b"400", f"a map value must be bytes or str, not {type(value).__name__}".encode()),
        (b"200", b"ok"),
    ]
    assert any(e.get("key") == b"bad" for e in events)


@pytest.mark.parametrize(
    "error, text",
    [
        (ValueError("réessayez plus tard"), "réessayez plus tard".encode()),
        (ValueError("line1\nline2"), b"line1\nline2"),
        (ValueError("100% broken"), b"100% broken"),
        (KeyError(), b"KeyError"),
        (ValueError("x" * 10000), b"x" * (mapproto.TCP_REPLY_LIMIT - 5)),
        (ValueError("é" * 5000), None),
    ],
)
@pytest.mark.parametrize("how", ["raise", "fail", "Failure", "coroutine"])
def test_failures(servers, error, text, how):
    # Difference 2: Twisted sends nothing for a non-ASCII message, and sends a
    # message with a newline as two lines.
    def get(key):
        if key == b"ok":
            return b"fine"
        if how == "raise":
            raise error
        if how == "fail":
            return defer.fail(error)
        if how == "Failure":
            return Failure(error)

        async def lookup():
            raise error

        return lookup()

    with capturedLogs() as events:
        out = run(servers.TCP, Recorder(result=get), b"get boom\nget ok\n", 3)
    got = replies(out)
    assert [code for code, _ in got] == [b"400", b"200"]
    if text is not None:
        assert got[0][1] == text
    else:  # cut to fit
        assert got[0][1].startswith("é".encode() * 100)
    assert got[1][1] == b"fine"
    assert [e["log_failure"].value for e in events if "log_failure" in e] == [error]


def test_map_error_is_not_logged(servers):
    def get(key):
        raise postfix.PostfixMapError("try later")

    with capturedLogs() as events:
        assert run(servers.TCP, Recorder(result=get), b"get x\n") == b"400 try later\n"
    assert events == []


def test_coroutine_value(servers):
    async def lookup():
        return b"from a coroutine"

    out = run(servers.TCP, Recorder(result=lambda key: lookup()), b"get x\n")
    assert out == b"200 from%20a%20coroutine\n"


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]])
def test_replies_in_request_order(servers, order):
    # Difference 3: Twisted replies as the Deferreds fire.
    factory = Pending()
    proto, transport = connect(servers.TCP, factory)
    deliver(proto, b"get k0\nget k1\nget k2\nget k3\n", 5)
    assert [key for key, _ in factory.waiting] == [b"k0", b"k1", b"k2", b"k3"]
    assert transport.value() == b""
    sent = []
    for i in order:
        factory.waiting[i][1].callback(b"v%d" % i)
        sent = [text for _, text in replies(transport.value())]
        # Only a prefix, in order: nothing overtakes an earlier request.
        assert sent == [b"v%d" % n for n in range(len(sent))]
    assert len(sent) == 4


def test_sync_replies_wait_for_earlier_deferred_ones(servers):
    factory = Pending()
    factory.get = lambda key: (b"now" if key == b"sync" else Pending.get(factory, key))
    proto, transport = connect(servers.TCP, factory)
    proto.dataReceived(b"get slow\nget sync\nfoo\nget\nput a b\n")
    assert transport.value() == b""
    factory.waiting[0][1].callback(None)
    assert transport.value() == (
        b"500 \n200 now\n400 unknown command\n"
        b"400 Command 'get' takes 1 parameters.\n500 put is not implemented yet.\n"
    )


@pytest.mark.parametrize(
    "data, request_line",
    [
        ({b"int": 42}, b"get int\n"),
        (None, b"get boom\n"),
    ],
    ids=["non-bytes value", "non-ASCII error"],
)
def test_twisted_sends_no_reply(data, request_line):
    # What difference 2 fixes: Postfix would wait 100 s, ten times.
    def boom(key):
        raise ValueError("réessayez")

    factory = Recorder(data) if data else Recorder(result=boom)
    with capturedLogs():
        assert twisted_run(factory, request_line, 100) == b""


def test_twisted_drops_the_connection_on_a_long_line():
    # What difference 5 fixes.
    proto = twisted_postfix.PostfixTCPMapServer()
    proto.callLater = Clock().callLater
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"get " + b"k" * 20000 + b"\n")
    assert transport.value() == b"" and transport.disconnecting


def test_twisted_replies_out_of_order():
    # What difference 3 fixes.
    factory = Pending()
    proto = twisted_postfix.PostfixTCPMapServer()
    proto.factory = factory
    proto.callLater = Clock().callLater
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"get a\nget b\n")
    factory.waiting[1][1].callback(b"B")
    factory.waiting[0][1].callback(b"A")
    assert transport.value() == b"200 B\n200 A\n"


@pytest.mark.parametrize("deferred", [False, True])
def test_value_too_long(servers, deferred):
    longest = b"v" * (mapproto.TCP_REPLY_LIMIT - 5)  # "200 " + value + "\n" = 4096
    data = {b"fits": longest, b"long": longest + b"v", b"spaces": b" " * 1400}
    factory = (
        postfix.PostfixTCPMapDeferringDictServerFactory(data)
        if deferred
        else postfix.PostfixTCPMapDictServerFactory(data)
    )
    with capturedLogs() as events:
        out = run(servers.TCP, factory, b"get fits\nget long\nget spaces\n", 1000)
    assert replies(out) == [
        (b"200", longest),
        (b"400", b"value too long for a tcp_table reply"),
        (b"400", b"value too long for a tcp_table reply"),
    ]
    assert out.startswith(b"200 " + longest + b"\n")
    assert [e["key"] for e in events] == [b"long", b"spaces"]


def test_custom_command_and_its_failure(servers):
    class Server(servers.TCP):
        def do_ping(self, params):
            self.sendCode(200, b"pong " + (params or b""))

        def do_fail(self, params):
            raise RuntimeError("nope é")

        def do_multi(self, params):
            self.sendCode(250, "two\r\nlines")

    factory = Pending()
    proto, transport = connect(Server, factory)
    proto.dataReceived(b"get x\nping a b\nfail\nmulti\n")
    factory.waiting[0][1].callback(b"X")
    assert transport.value() == (
        b"200 X\n200 pong a b\n400 Command%20fail%20failed:%20nope%20%C3%A9\n"
        b"250 two%0D%0Alines\n"
    )


# -- timeouts ------------------------------------------------------------------------


def test_no_timeout_by_default(servers):
    # Difference 4: Twisted closes after 600 s idle.
    clock = Clock()
    proto, transport = connect(servers.TCP, Recorder(), clock)
    assert proto.timeout is None
    assert clock.getDelayedCalls() == []
    clock.advance(10**7)
    proto.dataReceived(b"get x\n")
    clock.advance(10**7)
    assert not transport.disconnecting
    assert transport.value() == b"500 \n"

    theirs = twisted_postfix.PostfixTCPMapServer()
    theirs.callLater = clock.callLater
    theirs.makeConnection(StringTransport())
    clock.advance(600)
    assert theirs.transport.disconnecting


def test_timeout_when_set(servers):
    clock = Clock()
    proto, transport = connect(servers.TCP, Recorder(), clock, timeout=30)
    clock.advance(29)
    proto.dataReceived(b"get x\n")  # activity restarts the period
    clock.advance(29)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting


def test_timeout_waits_for_outstanding_replies(servers):
    clock = Clock()
    factory = Pending()

    class Server(servers.TCP):
        timeout = 30

    proto, transport = connect(Server, factory, clock)
    proto.dataReceived(b"get slow\n")
    clock.advance(100)
    assert not transport.disconnecting  # still looking up
    factory.waiting[0][1].callback(b"late")
    assert transport.value() == b"200 late\n"
    clock.advance(29)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting


def test_connection_lost_cancels_timer_and_late_replies(servers):
    clock = Clock()
    factory = Pending()
    proto, transport = connect(servers.TCP, factory, clock, timeout=30)
    proto.dataReceived(b"get slow\nget fo")  # half a line, then the client goes
    proto.connectionLost(Failure(ConnectionError()))
    assert clock.getDelayedCalls() == []
    factory.waiting[0][1].callback(b"too late")
    assert transport.value() == b""


# -- tcp_table: bad input ------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [b"", b" ", b"foo", b"GET x", b"\xff x", b"\x00", b"get\x00 x", b"do_get x", b"-"],
)
@pytest.mark.parametrize("sizes", [1, 100])
def test_unknown_commands(servers, line, sizes):
    factory = Recorder({b"ok": b"yes"})
    out = run(servers.TCP, factory, line + b"\nget ok\n", sizes)
    assert out == b"400 unknown command\n200 yes\n"


@pytest.mark.parametrize("key", [b"%", b"a%", b"%4", b"a%4", b"%zz", b"%g0", b"%4g", b"%%%"])
def test_malformed_escapes(servers, key):
    factory = Recorder({b"ok": b"yes"})
    out = run(servers.TCP, factory, b"get " + key + b"\nget ok\n", 1)
    assert replies(out) == [(b"400", b"malformed hex escape"), (b"200", b"yes")]
    assert factory.asked == [b"ok"]


@pytest.mark.parametrize("sizes", [1, 7, 4096, 10**9])
def test_line_of_max_length(servers, sizes):
    limit = servers.TCP.MAX_LENGTH
    key = b"k" * (limit - 4)
    factory = Recorder({key: b"long key"})
    out = run(servers.TCP, factory, b"get " + key + b"\n", sizes)
    assert out == b"200 long%20key\n"
    assert factory.asked == [key]


@pytest.mark.parametrize("sizes", [1, 7, 4096, [30005, 1], 10**9])
@pytest.mark.parametrize("over", [1, 2, 100, 1_000_000])
def test_line_too_long_then_next_request(servers, sizes, over):
    # Difference 5: Twisted drops the connection; Postfix then retries 10 times.
    limit = servers.TCP.MAX_LENGTH
    factory = Recorder({b"ok": b"yes"})
    proto, transport = connect(servers.TCP, factory)
    with capturedLogs() as events:
        deliver(proto, b"get " + b"k" * (limit - 4 + over) + b"\n", sizes)
    assert [e["limit"] for e in events] == [limit]
    assert transport.value() == b"400 request line too long\n"
    assert not transport.disconnecting
    assert len(proto.clearLineBuffer()) <= limit  # nothing piles up
    deliver(proto, b"get ok\n", sizes)
    assert transport.value() == b"400 request line too long\n200 yes\n"
    assert factory.asked == [b"ok"]


def test_line_too_long_with_requests_behind_it(servers):
    # Requests pipelined behind a long line in one read: replies up to it, then the
    # connection is closed.
    limit = servers.TCP.MAX_LENGTH
    factory = Pending()
    proto, transport = connect(servers.TCP, factory)
    proto.dataReceived(b"get first\n" + b"x" * (limit + 1) + b"\nget lost\n")
    assert transport.value() == b"" and not transport.disconnecting
    proto.dataReceived(b"get ignored\n")
    factory.waiting[0][1].callback(b"1")
    assert transport.value() == b"200 1\n400 request line too long\n"
    assert transport.disconnecting
    assert [key for key, _ in factory.waiting] == [b"first"]


@settings(max_examples=150, deadline=None)
@given(
    garbage=st.binary(max_size=600)
    | st.lists(st.sampled_from([b"get ", b"put ", b"%", b"%4", b"\n", b"\r", b" ", b"\xff", b"k"]))
    .map(b"".join),
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=4),
)
def test_garbage_gets_one_reply_per_line(impl, garbage, sizes):
    TCP = bound(impl).TCP
    factory = Recorder({b"k": b"v"})
    proto, transport = connect(TCP, factory)
    deliver(proto, garbage, sizes)
    got = replies(transport.value())  # every reply well-formed
    assert len(got) == garbage.count(b"\n")
    assert not transport.disconnecting
    deliver(proto, b"\nget k\n", sizes)  # still serving
    assert replies(transport.value())[-1] == (b"200", b"v")


def test_many_outstanding_lookups_pause_reading(servers):
    factory = Pending()
    proto, transport = connect(servers.TCP, factory, MAX_PENDING=4)
    proto.dataReceived(b"".join(b"get k%d\n" % i for i in range(10)))
    assert len(factory.waiting) == 4
    assert transport.producerState == "paused"
    for _, d in factory.waiting[:2]:
        d.callback(b"v")
    assert len(factory.waiting) == 6  # half sent: read again, and paused again
    assert transport.producerState == "paused"
    assert len(replies(transport.value())) == 2
    while any(not d.called for _, d in factory.waiting):
        for _, d in factory.waiting:
            if not d.called:
                d.callback(b"v")
    assert len(replies(transport.value())) == 10
    assert transport.producerState == "producing"


# -- factories -----------------------------------------------------------------------


def test_tcp_factories():
    factory = postfix.PostfixTCPMapDictServerFactory({b"a": b"1"})
    factory[b"b"] = "2"
    assert factory.get(b"a") == b"1" and factory.get(b"zz") is None
    assert isinstance(factory.buildProtocol(None), postfix.PostfixTCPMapServer)
    assert repr(factory) == "<PostfixTCPMapDictServerFactory of 2 keys>"  # logged at start
    deferring = postfix.PostfixTCPMapDeferringDictServerFactory({b"a": b"1"})
    assert deferring.data == {b"a": b"1"}
    assert isinstance(deferring.get(b"a"), defer.Deferred)
    assert deferring.get(b"a").result == b"1"
    assert deferring.protocol is postfix.PostfixTCPMapServer


def test_defaults():
    assert postfix.PostfixTCPMapServer.delimiter == b"\n"
    assert postfix.PostfixTCPMapServer.MAX_LENGTH == 30_004  # 10,000 bytes, all encoded
    assert postfix.PostfixTCPMapServer.timeout is None
    assert postfix.PostfixSocketmapServer.MAX_LENGTH == 10_000
    assert postfix.PostfixSocketmapServer.replyLimit == 100_000


# -- socketmap -----------------------------------------------------------------------

MAPS = {b"virtual": {b"a b": b"x y", b"u@example.com": "ü"}, "access": {b"1.2.3.4": b"REJECT"}}
SOCKETMAP_CHAT = [
    (b"virtual a b", b"OK x y"),
    (b"virtual u@example.com", "OK ü".encode()),
    (b"virtual nope", b"NOTFOUND "),
    (b"access 1.2.3.4", b"OK REJECT"),
    (b"access ", b"NOTFOUND "),
    (b"other key", b"PERM unknown map name: other"),
    (b"nospace", b"PERM malformed request: expected 'name key'"),
    (b" key", b"PERM malformed request: expected 'name key'"),
]


@pytest.mark.parametrize("deferring", [False, True], ids=["dict", "deferring"])
@pytest.mark.parametrize("sizes", SIZES)
def test_socketmap_chat(servers, deferring, sizes):
    cls = (
        postfix.PostfixSocketmapDeferringDictServerFactory
        if deferring
        else postfix.PostfixSocketmapDictServerFactory
    )
    stream = b"".join(ns(request) for request, _ in SOCKETMAP_CHAT)
    with capturedLogs() as events:
        out = run(servers.Socketmap, cls(MAPS), stream, sizes)
    assert netstrings(out) == [reply for _, reply in SOCKETMAP_CHAT]
    assert events == []  # unknown maps and malformed requests are answers, not failures


def test_socketmap_every_split_point(servers):
    stream = b"".join(ns(request) for request, _ in SOCKETMAP_CHAT[:4])
    factory = postfix.PostfixSocketmapDictServerFactory(MAPS)
    expected = run(servers.Socketmap, factory, stream)
    for cut in range(1, len(stream)):
        assert run(servers.Socketmap, factory, stream, [cut, 10**9]) == expected


@settings(max_examples=150, deadline=None)
@given(
    name=st.binary(min_size=1, max_size=10).filter(lambda b: b" " not in b),
    key=st.binary(max_size=60),
    value=st.binary(max_size=60),
    size=st.sampled_from([1, 4, 1000]),
)
def test_socketmap_any_key(impl, name, key, value, size):
    Socketmap = bound(impl).Socketmap
    factory = postfix.PostfixSocketmapDictServerFactory({name: {key: value}})
    out = run(Socketmap, factory, ns(name + b" " + key) * 2, size)
    assert netstrings(out) == [b"OK " + value if value else b"NOTFOUND "] * 2


@pytest.mark.parametrize(
    "error, reply",
    [
        (ValueError("db down"), b"TEMP db down"),
        (ValueError("réessayez\r\nplus tard"), "TEMP réessayez  plus tard".encode()),
        (TimeoutError("slow"), b"TIMEOUT slow"),
        (defer.TimeoutError("slow"), b"TIMEOUT slow"),
        (postfix.PostfixMapError("nope", b"PERM"), b"PERM nope"),
        (postfix.PostfixMapError(b"later"), b"TEMP later"),
        (postfix.PostfixMapError("slow", b"TIMEOUT"), b"TIMEOUT slow"),
        (postfix.UnknownMapError(b"zz"), b"PERM unknown map name: zz"),
    ],
)
@pytest.mark.parametrize("how", ["raise", "fail"])
def test_socketmap_failures(servers, error, reply, how):
    class Factory:
        def get(self, name, key):
            if key == b"ok":
                return b"fine"
            if how == "raise":
                raise error
            return defer.fail(error)

    with capturedLogs() as events:
        out = run(servers.Socketmap, Factory(), ns(b"m boom") + ns(b"m ok"), 2)
    assert netstrings(out) == [reply, b"OK fine"]
    logged = [e["log_failure"].value for e in events if "log_failure" in e]
    assert logged == ([] if isinstance(error, postfix.PostfixMapError) else [error])


def test_socketmap_map_error_status_checked():
    with pytest.raises(ValueError):
        postfix.PostfixMapError("x", b"OK")


@pytest.mark.parametrize("value", [42, None.__class__, ["x"]])
def test_socketmap_non_bytes_value(servers, value):
    factory = postfix.PostfixSocketmapDictServerFactory({b"m": {b"bad": value, b"ok": b"1"}})
    with capturedLogs() as events:
        out = run(servers.Socketmap, factory, ns(b"m bad") + ns(b"m ok"), 1)
    assert netstrings(out) == [
        f"TEMP a map value must be bytes or str, not {type(value).__name__}".encode(),
        b"OK 1",
    ]
    assert [e["key"] for e in events] == [b"bad"]


@pytest.mark.parametrize("limit", [None, 50])
def test_socketmap_reply_limit(servers, limit):
    cls = servers.Socketmap
    if limit is not None:
        cls = type("Limited", (cls,), {"replyLimit": limit})
    limit = limit or mapproto.SOCKETMAP_REPLY_LIMIT
    fits = b"v" * (limit - 3)  # "OK " + value
    table = {b"fits": fits, b"long": fits + b"v"}
    factory = postfix.PostfixSocketmapDictServerFactory({b"m": table})
    with capturedLogs() as events:
        out = run(cls, factory, ns(b"m fits") + ns(b"m long"))
    assert netstrings(out) == [b"OK " + fits, b"PERM value too long for a socketmap reply"]
    assert [e["key"] for e in events] == [b"long"]


@pytest.mark.parametrize("sizes", [1, 1000, 10**9])
def test_socketmap_request_of_max_length(servers, sizes):
    limit = servers.Socketmap.MAX_LENGTH
    key = b"k" * (limit - 2)
    factory = postfix.PostfixSocketmapDictServerFactory({b"m": {key: b"yes"}})
    proto, transport = connect(servers.Socketmap, factory)
    deliver(proto, ns(b"m " + key), sizes)
    assert netstrings(transport.value()) == [b"OK yes"]
    assert not transport.disconnecting


@pytest.mark.parametrize(
    "request_bytes",
    [
        ns(b"m " + b"k" * 9_999),  # one byte over
        b"4294967295:",
        b"99999999999999999999999999:",
        b"10001",
    ],
)
@pytest.mark.parametrize("sizes", [1, 10**9])
def test_socketmap_request_too_long(servers, request_bytes, sizes):
    factory = postfix.PostfixSocketmapDictServerFactory({b"m": {b"a": b"1"}})
    proto, transport = connect(servers.Socketmap, factory)
    with capturedLogs() as events:
        deliver(proto, ns(b"m a") + request_bytes, sizes)
    assert len(events) == 1
    assert netstrings(transport.value()) == [b"OK 1", b"PERM request longer than 10000 bytes"]
    assert transport.disconnecting and proto.brokenPeer
    assert len(transport.value()) < 100


def test_socketmap_max_length_configurable(servers):
    class Small(servers.Socketmap):
        MAX_LENGTH = 5

    factory = postfix.PostfixSocketmapDictServerFactory({b"m": {b"abc": b"1"}})
    assert netstrings(run(Small, factory, ns(b"m abc") + ns(b"m abcd"))) == [
        b"OK 1",
        b"PERM request longer than 5 bytes",
    ]


@pytest.mark.parametrize(
    "garbage", [b"abc", b"5:m abc;", b"05:m abc,", b":", b"-1:", b" 5:m abc,", b"\x00"]
)
@pytest.mark.parametrize("sizes", [1, 10**9])
def test_socketmap_malformed_netstrings(servers, garbage, sizes):
    factory = Pending()
    proto, transport = connect(servers.Socketmap, factory)
    deliver(proto, ns(b"m first") + garbage + ns(b"m never"), sizes)
    assert transport.value() == b"" and not transport.disconnecting  # waits for "first"
    factory.waiting[0][1].callback(b"1")
    assert netstrings(transport.value()) == [b"OK 1", b"PERM malformed netstring"]
    assert transport.disconnecting
    assert [key for key, _ in factory.waiting] == [b"first"]


def test_socketmap_half_closes_where_it_can(servers):
    class HalfClosing(StringTransport):
        halfClosed = False

        def loseWriteConnection(self):
            self.halfClosed = True

    clock = Clock()
    proto = servers.Socketmap()
    proto.factory = postfix.PostfixSocketmapDictServerFactory({})
    proto.callLater = clock.callLater
    transport = HalfClosing()
    proto.makeConnection(transport)
    proto.dataReceived(b"99999999:" + b"x" * 1000)
    assert transport.halfClosed and not transport.disconnecting
    proto.dataReceived(b"y" * 100_000)  # the rest is read and disregarded
    assert netstrings(transport.value()) == [b"PERM request longer than 10000 bytes"]
    clock.advance(9)
    assert not transport.disconnecting
    clock.advance(1)  # but not for ever
    assert transport.disconnecting


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 2, 0]])
def test_socketmap_replies_in_request_order(servers, order):
    factory = Pending()
    proto, transport = connect(servers.Socketmap, factory)
    deliver(proto, ns(b"m k0") + ns(b"m k1") + ns(b"m k2"), 3)
    for i in order:
        factory.waiting[i][1].callback(None if i == 1 else b"v%d" % i)
    assert netstrings(transport.value()) == [b"OK v0", b"NOTFOUND ", b"OK v2"]


def test_socketmap_timeout(servers):
    clock = Clock()
    factory = postfix.PostfixSocketmapDictServerFactory({})
    proto, transport = connect(servers.Socketmap, factory, clock)
    clock.advance(10**7)
    assert not transport.disconnecting and clock.getDelayedCalls() == []
    proto, transport = connect(servers.Socketmap, factory, clock, timeout=10)
    clock.advance(9)
    proto.dataReceived(ns(b"m k"))
    clock.advance(9)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting


def test_socketmap_connection_lost(servers):
    factory = Pending()
    proto, transport = connect(servers.Socketmap, factory)
    proto.dataReceived(ns(b"m k") + b"20:m hal")
    proto.connectionLost(Failure(ConnectionError()))
    factory.waiting[0][1].callback(b"late")
    assert transport.value() == b""


def test_socketmap_factories():
    factory = postfix.PostfixSocketmapDictServerFactory({"text": {b"k": b"v"}, b"raw": {}})
    assert set(factory.maps) == {b"text", b"raw"}
    assert factory.get(b"text", b"k") == b"v" and factory.get(b"raw", b"k") is None
    with pytest.raises(postfix.UnknownMapError):
        factory.get(b"none", b"k")
    factory.maps[b"new"] = {b"k": b"w"}  # maps may change at any time
    assert factory.get(b"new", b"k") == b"w"
    assert isinstance(factory.buildProtocol(None), postfix.PostfixSocketmapServer)
    deferring = postfix.PostfixSocketmapDeferringDictServerFactory({b"m": {b"k": b"v"}})
    assert deferring.get(b"m", b"k").result == b"v"
    failed = deferring.get(b"none", b"k")
    assert failed.result.check(postfix.UnknownMapError)
    failed.addErrback(lambda f: None)


def test_send_reply(servers):
    class Server(servers.Socketmap):
        def stringReceived(self, request):
            self.sendReply(b"OK", "é")

    out = run(Server, None, ns(b"m k"))
    assert netstrings(out) == ["OK é".encode()]
