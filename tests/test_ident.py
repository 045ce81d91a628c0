"""txframe.ident: the server, client and /proc lookups, on both line framers, against
Twisted's classes where Twisted's work (driven with ``str``, which is all they take).

Real sockets and a real peer (oidentd) are in test_ident_peers.py.
"""

from __future__ import annotations

import os
import socket
import struct
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.protocols import ident as twisted_ident
from twisted.python import failure

from peer_rule import unavailable

from txframe import ident, procnet

HYPOTHESIS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def bound(cls, impl):
    """*cls* on the line framer of *impl*."""
    base = impl.LineOnlyReceiver
    return type(cls.__name__, (cls,), {"_lineFramer": base._lineFramer, "dataReceived": base.dataReceived})


@pytest.fixture
def logged():
    """The error events Twisted logs during the test."""
    events: list[dict] = []

    def observe(event):
        if event.get("log_failure") is not None or event.get("log_level") is not None and event[
            "log_level"
        ].name in ("error", "critical"):
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def lookup_user(serverAddress, clientAddress):
    return ("UNIX", "u%d-%d" % (serverAddress[1], clientAddress[1]))


def make_server(impl, lookup=lookup_user, **attrs):
    # its idle timer on a clock of its own, not the global reactor
    attrs.setdefault("callLater", task.Clock().callLater)
    cls = type("Server", (bound(ident.IdentServer, impl),), {"lookup": staticmethod(lookup), **attrs})
    server = cls()
    transport = StringTransport()
    server.makeConnection(transport)
    return server, transport


def replies(transport) -> list[bytes]:
    data = transport.value()
    assert data == b"" or data.endswith(b"\r\n")
    return data.split(b"\r\n")[:-1]


# -- queries -----------------------------------------------------------------------------

VALID = [
    (b"22, 33\r\n", b"22, 33 : USERID : UNIX : u22-33"),
    (b"22,33\n", b"22, 33 : USERID : UNIX : u22-33"),
    (b"  22  ,  33  \r\n", b"22, 33 : USERID : UNIX : u22-33"),
    (b"\t1\t,\t65535\t\r\n", b"1, 65535 : USERID : UNIX : u1-65535"),
    (b"00022, 00033\r\n", b"22, 33 : USERID : UNIX : u22-33"),
]
INVALID = [
    (b"-1, 5", b"-1, 5"),
    (b"0, 5", b"0, 5"),
    (b"5, 0", b"5, 0"),
    (b"65536, 5", b"65536, 5"),
    (b"5, 99999", b"5, 99999"),
    (b"+22, 5", b"+22, 5"),
    (b"000022, 5", b"000022, 5"),  # RFC 1413: 1 to 5 digits
    (b"1e3, 5", b"1e3, 5"),
    (b" 22 ,", b"22, 0"),
    (b",", b"0, 0"),
    (b"abc", b"0, 0"),
    (b"", b"0, 0"),
    (b"1,2,3", b"0, 0"),
    (b"22:1, 5", b"0, 5"),
    (b"22 23, 5", b"0, 5"),
    (b"1_000, 5", b"1_000, 5"),
    (b"\xff\xfe, 5", b"0, 5"),
    (b"5, 6\x00", b"5, 0"),
    (b"x" * 998, b"0, 0"),
]


@pytest.mark.parametrize("query,reply", VALID)
def test_valid_queries(impl, query, reply):
    server, transport = make_server(impl)
    server.dataReceived(query)
    assert replies(transport) == [reply]
    assert not transport.disconnecting


@pytest.mark.parametrize("query,echo", INVALID)
def test_invalid_queries_get_invalid_port(impl, query, echo):
    """RFC 1413: a port out of range or not a number is INVALID-PORT; the port pair is
    echoed where it cannot break the reply's syntax; the connection stays up."""
    server, transport = make_server(impl)
    server.dataReceived(query + b"\r\n" + b"7, 8\r\n")
    assert replies(transport) == [echo + b" : ERROR : INVALID-PORT", b"7, 8 : USERID : UNIX : u7-8"]
    assert not transport.disconnecting


def test_close_on_invalid_query_as_twisted(impl):
    """closeOnInvalidQuery: Twisted's behaviour (close on what int() cannot read), but
    after the replies to the queries before it."""
    answers: list[defer.Deferred] = []

    def later(s, c):
        answers.append(defer.Deferred())
        return answers[-1]

    server, transport = make_server(impl, later, closeOnInvalidQuery=True)
    server.dataReceived(b"1, 2\r\n-1, 5\r\nabc\r\n3, 4\r\n")
    assert transport.value() == b""  # the reply to 1, 2 is outstanding
    assert not transport.disconnecting
    answers[0].callback(("UNIX", "a"))
    # -1 is a number, as for Twisted: INVALID-PORT; abc: closed; 3, 4: never read
    assert replies(transport) == [b"1, 2 : USERID : UNIX : a", b"-1, 5 : ERROR : INVALID-PORT"]
    assert transport.disconnecting
    assert len(answers) == 1


def test_overlong_line_closes_after_earlier_replies(impl):
    server, transport = make_server(impl)
    server.dataReceived(b"1, 2\r\n" + b"x" * 1002)
    assert replies(transport) == [b"1, 2 : USERID : UNIX : u1-2"]
    assert transport.disconnecting
    server.dataReceived(b"\r\n3, 4\r\n")  # read and disregarded until the client closes
    assert len(replies(transport)) == 1


@pytest.mark.parametrize("end", [b"\r\n", b"\n"])
def test_line_limit_is_1000_bytes(impl, end):
    server, transport = make_server(impl)
    server.dataReceived(b" " * 994 + b"22, 33" + end)
    assert replies(transport) == [b"22, 33 : USERID : UNIX : u22-33"]
    server.dataReceived(b" " * 995 + b"22, 33" + end + b"1, 2\r\n")
    assert len(replies(transport)) == 1
    assert transport.disconnecting


# -- against Twisted's server ------------------------------------------------------------


class TwistedServer(twisted_ident.IdentServer):
    def lookup(self, serverAddress, clientAddress):
        return lookup_user(serverAddress, clientAddress)


def twisted_replies(lines: list[str]) -> list[bytes]:
    """What Twisted's server answers to *lines*, given as str (all it can take)."""
    server = TwistedServer()
    server.makeConnection(StringTransport())
    sent: list[str] = []
    server.sendLine = sent.append
    for line in lines:
        server.lineReceived(line)
    return [s.encode("ascii") for s in sent]


blank = st.sampled_from(["", " ", "  ", "\t", " \t "])
port = st.one_of(st.integers(1, 65535), st.integers(-5, 0), st.integers(65536, 99999))


@st.composite
def query_streams(draw):
    queries = draw(
        st.lists(
            st.tuples(port, port, blank, blank, blank, blank, st.sampled_from(["\r\n", "\n"])),
            min_size=1,
            max_size=12,
        )
    )
    lines = [f"{b1}{s}{b2},{b3}{c}{b4}" for s, c, b1, b2, b3, b4, _ in queries]
    data = "".join(line + end for line, (*_, end) in zip(lines, queries)).encode("ascii")
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=len(data))))
    return lines, data, cuts


@HYPOTHESIS
@given(stream=query_streams())
def test_same_replies_as_twisted(impl, stream):
    """Numeric queries (valid or out of range), with any spacing and CR LF or LF, in
    any chunking down to single bytes: the replies Twisted's server would send."""
    lines, data, cuts = stream
    server, transport = make_server(impl)
    for start, end in zip([0, *cuts], [*cuts, len(data)]):
        server.dataReceived(data[start:end])
    assert replies(transport) == twisted_replies(lines)


def test_one_byte_at_a_time(impl):
    data = b"".join(q for q, _ in VALID) + b"".join(q + b"\n" for q, _ in INVALID)
    whole, whole_transport = make_server(impl)
    whole.dataReceived(data)
    server, transport = make_server(impl)
    for i in range(len(data)):
        server.dataReceived(data[i : i + 1])
    assert transport.value() == whole_transport.value()
    assert len(replies(transport)) == len(VALID) + len(INVALID)


# -- lookup outcomes ---------------------------------------------------------------------


class XBanned(ident.IdentError):
    identDescription = "X-BANNED"


class NotAToken(ident.IdentError):
    identDescription = "NOT A TOKEN"


@pytest.mark.parametrize(
    "error,token",
    [
        (ident.IdentError, b"UNKNOWN-ERROR"),
        (ident.NoUser, b"NO-USER"),
        (ident.InvalidPort, b"INVALID-PORT"),
        (ident.HiddenUser, b"HIDDEN-USER"),
        (twisted_ident.NoUser, b"NO-USER"),  # Twisted's, raised by shared code
        (twisted_ident.HiddenUser, b"HIDDEN-USER"),
        (XBanned, b"X-BANNED"),
        (NotAToken, b"UNKNOWN-ERROR"),
    ],
)
@pytest.mark.parametrize("how", ["raise", "deferred"])
def test_lookup_errors(impl, logged, error, token, how):
    def lookup(s, c):
        if how == "raise":
            raise error()
        return defer.fail(error())

    server, transport = make_server(impl, lookup)
    server.dataReceived(b"5, 6\r\n")
    assert replies(transport) == [b"5, 6 : ERROR : " + token]
    assert logged == []


@pytest.mark.parametrize("how", ["raise", "deferred"])
def test_unexpected_exception_is_unknown_error_and_logged(impl, logged, how):
    def lookup(s, c):
        if how == "raise":
            raise RuntimeError("boom")
        return defer.fail(RuntimeError("boom"))

    server, transport = make_server(impl, lookup)
    server.dataReceived(b"5, 6\r\n")
    assert replies(transport) == [b"5, 6 : ERROR : UNKNOWN-ERROR"]
    assert [e["log_failure"].type for e in logged] == [RuntimeError]


@pytest.mark.parametrize(
    "result,reply",
    [
        (("UNIX", "alice"), b"UNIX : alice"),
        ((b"UNIX", b"alice"), b"UNIX : alice"),
        (("OTHER", "a : b : c"), b"OTHER : a : b : c"),  # a user-id may hold colons
        (("UNIX", "jörg"), "UNIX,UTF-8 : jörg".encode()),
        (("UNIX,ISO-8859-1", b"j\xf6rg"), b"UNIX,ISO-8859-1 : j\xf6rg"),
        (("UNIX", "x" * 512), b"UNIX : " + b"x" * 512),
    ],
)
def test_userid_replies(impl, result, reply):
    server, transport = make_server(impl, lambda s, c: result)
    server.dataReceived(b"5, 6\r\n")
    assert replies(transport) == [b"5, 6 : USERID : " + reply]


@pytest.mark.parametrize(
    "result",
    [
        None,
        "alice",
        ("UNIX",),
        ("UNIX", "alice", "extra"),
        ("UNIX", 42),
        ("UN IX", "alice"),
        ("UNIX:", "alice"),
        ("", "alice"),
        ("UNIX", ""),
        ("UNIX", "a\r\nb"),
        ("UNIX", "a\0b"),
        ("UNIX", "x" * 513),
        ("ÜNIX", "alice"),
    ],
)
def test_results_rfc_1413_forbids_are_unknown_error_and_logged(impl, logged, result):
    server, transport = make_server(impl, lambda s, c: result)
    server.dataReceived(b"5, 6\r\n7, 8\r\n")
    assert replies(transport)[0] == b"5, 6 : ERROR : UNKNOWN-ERROR"
    assert len(replies(transport)) == 2
    assert len(logged) == 2


def test_deferred_lookups_answer_in_query_order(impl):
    answers: dict[int, defer.Deferred] = {}

    def lookup(s, c):
        if s[1] % 2:
            return ("UNIX", f"now{s[1]}")
        answers[s[1]] = defer.Deferred()
        return answers[s[1]]

    server, transport = make_server(impl, lookup)
    server.dataReceived(b"".join(b"%d, 1\r\n" % p for p in range(1, 9)))
    assert replies(transport) == [b"1, 1 : USERID : UNIX : now1"]
    for p in (8, 4, 6):
        answers[p].callback(("UNIX", f"late{p}"))
    assert len(replies(transport)) == 1
    answers[2].errback(ident.NoUser())
    assert replies(transport) == [
        b"1, 1 : USERID : UNIX : now1",
        b"2, 1 : ERROR : NO-USER",
        b"3, 1 : USERID : UNIX : now3",
        b"4, 1 : USERID : UNIX : late4",
        b"5, 1 : USERID : UNIX : now5",
        b"6, 1 : USERID : UNIX : late6",
        b"7, 1 : USERID : UNIX : now7",
        b"8, 1 : USERID : UNIX : late8",
    ]


def test_lookup_is_given_both_addresses(impl):
    seen = []
    server, transport = make_server(impl, lambda s, c: seen.append((s, c)) or ("UNIX", "a"))
    server.dataReceived(b"113, 4242\r\n")
    host, peer = transport.getHost(), transport.getPeer()
    assert seen == [((host.host, 113), (peer.host, 4242))]


# -- bounded memory ------------------------------------------------------------------------


def test_reading_stops_while_many_lookups_are_outstanding(impl):
    answers: list[defer.Deferred] = []

    def lookup(s, c):
        answers.append(defer.Deferred())
        return answers[-1]

    server, transport = make_server(impl, lookup, MAX_PENDING=10)
    server.dataReceived(b"".join(b"%d, 1\r\n" % p for p in range(1, 31)))
    assert len(answers) == 10  # the rest wait, unread, in the framer
    assert transport.producerState == "paused"
    for d in answers[:4]:
        d.callback(("UNIX", "a"))
    assert len(answers) == 10 and transport.producerState == "paused"
    answers[4].callback(("UNIX", "a"))  # half of them answered: read again
    assert len(answers) == 15 and transport.producerState == "paused"
    while not all(d.called for d in answers):
        next(d for d in answers if not d.called).callback(("UNIX", "a"))
    assert len(answers) == 30 and transport.producerState == "producing"
    assert [r.split(b",")[0] for r in replies(transport)] == [b"%d" % p for p in range(1, 31)]


def test_reading_stops_while_many_replies_wait_behind_a_slow_lookup(impl):
    """Replies ready at once but held up behind a slow one count too."""
    slow = defer.Deferred()
    server, transport = make_server(impl, lambda s, c: slow if s[1] == 1 else ("UNIX", "a"), MAX_PENDING=10)
    server.dataReceived(b"1, 1\r\n" + b"2, 2\r\n" * 100 + b"abc\r\n" * 100)
    assert transport.producerState == "paused"
    assert len(server._order) <= 10  # the rest wait unread
    assert transport.value() == b""
    slow.callback(("UNIX", "slow"))
    assert transport.producerState == "producing"
    assert replies(transport) == (
        [b"1, 1 : USERID : UNIX : slow"] + [b"2, 2 : USERID : UNIX : a"] * 100 + [b"0, 0 : ERROR : INVALID-PORT"] * 100
    )


def test_overlong_lines_after_closing_are_disregarded(impl, logged):
    warnings: list[dict] = []
    globalLogPublisher.addObserver(warnings.append)
    try:
        server, transport = make_server(impl)
        for _ in range(5):
            server.dataReceived(b"x" * 1500)
    finally:
        globalLogPublisher.removeObserver(warnings.append)
    assert transport.disconnecting
    assert sum("longer than" in str(e.get("log_format", "")) for e in warnings) == 1


def test_a_client_not_reading_replies_stops_reading_queries(impl):
    """The transport pauses its producer when its write buffer is full: then no more
    queries are read (nor answered) until it drains; none is lost."""
    server, transport = make_server(impl)
    valve = transport.producer
    assert valve is not None and transport.streaming
    server.dataReceived(b"1, 2\r\n")
    valve.pauseProducing()  # what a full write buffer does
    assert transport.producerState == "paused"
    server.dataReceived(b"3, 4\r\n5, 6\r\n")
    assert len(replies(transport)) == 1
    valve.resumeProducing()
    assert transport.producerState == "producing"
    assert [r.split(b" :")[0] for r in replies(transport)] == [b"1, 2", b"3, 4", b"5, 6"]


def test_valve_lets_go_when_the_connection_is_being_closed(impl):
    server, transport = make_server(impl)
    valve = transport.producer
    valve.pauseProducing()
    transport.loseConnection()
    valve.resumeProducing()  # the write buffer drained: now it may close
    assert transport.producer is None


# -- idle timeout ----------------------------------------------------------------------------


def test_idle_timeout(impl):
    clock = task.Clock()
    answers: list[defer.Deferred] = []

    def lookup(s, c):
        if s[1] == 9:
            answers.append(defer.Deferred())
            return answers[-1]
        return ("UNIX", "a")

    cls = type("Server", (bound(ident.IdentServer, impl),), {"lookup": staticmethod(lookup), "callLater": clock.callLater})
    server = cls()
    transport = StringTransport()
    server.makeConnection(transport)
    assert 60 <= server.timeOut <= 180
    clock.advance(100)
    server.dataReceived(b"1, 2\r\n")  # a query restarts the period
    clock.advance(100)
    assert not transport.disconnecting
    server.dataReceived(b"9, 2\r\n")
    clock.advance(500)  # never while a reply is outstanding
    assert not transport.disconnecting
    answers[0].callback(("UNIX", "b"))
    clock.advance(121)
    assert transport.disconnecting
    assert len(replies(transport)) == 2


def test_timeout_is_configurable(impl):
    clock = task.Clock()
    cls = type("Server", (bound(ident.IdentServer, impl),), {"timeout": 60, "callLater": clock.callLater})
    server = cls()
    transport = StringTransport()
    server.makeConnection(transport)
    clock.advance(59)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting


# -- client ----------------------------------------------------------------------------------


def make_client(impl):
    client = bound(ident.IdentClient, impl)()
    transport = StringTransport()
    client.makeConnection(transport)
    return client, transport


def outcome(d: defer.Deferred):
    results: list = []
    d.addBoth(results.append)
    assert results, "not fired"
    result = results[0]
    if isinstance(result, failure.Failure):
        return result.value
    return result


@pytest.mark.parametrize(
    "reply,expected",
    [
        (b"123, 456 : USERID : UNIX : alice\r\n", ("USERID", "UNIX : alice")),
        (b"123,456:USERID:UNIX:alice\r\n", ("USERID", "UNIX:alice")),  # oidentd's spacing
        (b"123 , 456 : USERID : OTHER : a : b\n", ("USERID", "OTHER : a : b")),
        (b"123, 456 : USERID : UNIX,UTF-8 : j\xc3\xb6rg\r\n", ("USERID", "UNIX,UTF-8 : jörg")),
        (b"123, 456 : USERID : UNIX,ISO-8859-1 : j\xf6rg\r\n", ("USERID", "UNIX,ISO-8859-1 : jörg")),
        (b"123, 456 : USERID : UNIX : j\xf6rg\r\n", ("USERID", "UNIX : j\udcf6rg")),
        (b"123, 456 : USERID : UNIX,hex : ab\r\n", ("USERID", "UNIX,hex : ab")),  # not text codecs
        (b"123, 456 : USERID : UNIX,base64 : ab\r\n", ("USERID", "UNIX,base64 : ab")),
        (b"123, 456 : USERID : UNIX,UTF-16 : ab\r\n", ("USERID", "UNIX,UTF-16 : ab")),
        (b"123, 456 : USERID : UNIX,idna : \xff\r\n", ("USERID", "UNIX,idna : \udcff")),
        (b"123, 456 : USERID : UNIX,cp037 : \x81\r\n", ("USERID", "UNIX,cp037 : a")),
        (b"123, 456 : USERID : UNIX,no-such-charset : ab\r\n", ("USERID", "UNIX,no-such-charset : ab")),
        (b"123, 456 : ERROR : UNKNOWN-ERROR\r\n", ident.IdentError),
        (b"123, 456 : ERROR : NO-USER\r\n", ident.NoUser),
        (b"123, 456 :  ERROR : INVALID-PORT\r\n", ident.InvalidPort),
        (b"123, 456 : ERROR : HIDDEN-USER\r\n", ident.HiddenUser),
        (b"123, 456 : ERROR : X-BANNED\r\n", ident.IdentError),
        (b"123, 456 : USERID\r\n", ident.IdentError),
        (b"garbage\r\n", ident.IdentError),
        (b"124, 456 : USERID : UNIX : mallory\r\n", ident.IdentError),  # another pair
    ],
)
def test_client_replies(impl, reply, expected):
    client, transport = make_client(impl)
    d = client.lookup(123, 456)
    assert transport.value() == b"123, 456\r\n"
    client.dataReceived(reply)
    result = outcome(d)
    if isinstance(expected, tuple):
        assert result == expected
    else:
        assert type(result) is expected
        assert isinstance(result, twisted_ident.IdentError)  # Twisted's catch it too


def test_client_error_token(impl):
    client, _ = make_client(impl)
    d = client.lookup(1, 2)
    client.dataReceived(b"1, 2 : ERROR : X-BANNED\r\n")
    error = outcome(d)
    assert str(error) == error.identDescription == "X-BANNED"
    assert error.args == ("1, 2 : ERROR : X-BANNED",)


def test_client_sends_one_query_at_a_time_in_order(impl):
    client, transport = make_client(impl)
    ds = [client.lookup(p, 100 + p) for p in (1, 2, 3)]
    assert transport.value() == b"1, 101\r\n"
    client.dataReceived(b"1, 101 : USERID : UNIX : a\r\n")
    assert transport.value() == b"1, 101\r\n2, 102\r\n"
    client.dataReceived(b"2, 102 : ERROR : NO-USER\r\n3, 103 : USERID : UNIX : c\r\n")
    assert transport.value() == b"1, 101\r\n2, 102\r\n3, 103\r\n"
    assert outcome(ds[0]) == ("USERID", "UNIX : a")
    assert type(outcome(ds[1])) is ident.NoUser
    assert outcome(ds[2]) == ("USERID", "UNIX : c")
    assert client.queries == []


def test_client_fails_outstanding_queries_on_connection_loss(impl):
    client, transport = make_client(impl)
    ds = [client.lookup(p, p) for p in (1, 2)]
    client.connectionLost(failure.Failure(ConnectionResetError()))
    assert [type(outcome(d)) for d in ds] == [ident.IdentError, ident.IdentError]
    assert type(outcome(client.lookup(3, 3))) is ident.IdentError  # and later ones


def test_client_queries_before_the_connection_is_made(impl):
    client = bound(ident.IdentClient, impl)()
    d = client.lookup(1, 2)
    transport = StringTransport()
    client.makeConnection(transport)
    assert transport.value() == b"1, 2\r\n"
    client.dataReceived(b"1, 2 : USERID : UNIX : a\r\n")
    assert outcome(d) == ("USERID", "UNIX : a")


@pytest.mark.parametrize("ports", [(0, 1), (1, 65536), (-1, 5), ("1", 2), (1.0, 2)])
def test_client_refuses_invalid_ports(impl, ports):
    client, transport = make_client(impl)
    assert type(outcome(client.lookup(*ports))) is ident.InvalidPort
    assert transport.value() == b""


def test_client_overlong_reply_closes(impl):
    client, transport = make_client(impl)
    d = client.lookup(1, 2)
    client.dataReceived(b"1, 2 : USERID : UNIX : " + b"x" * 1000 + b"\r\n")
    assert transport.disconnecting
    client.connectionLost(failure.Failure(ConnectionResetError()))
    assert type(outcome(d)) is ident.IdentError


def test_client_unexpected_reply_is_logged_not_fatal(impl):
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        client, transport = make_client(impl)
        client.dataReceived(b"1, 2 : USERID : UNIX : a\r\n")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert any("unexpected" in str(e.get("log_format", "")) for e in events)
    assert not transport.disconnecting


@HYPOTHESIS
@given(
    info=st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters="\r\n"), max_size=40),
    kind=st.sampled_from(["USERID", "ERROR", "OTHER"]),
    spaces=st.tuples(blank, blank, blank, blank),
    data=st.data(),
)
def test_client_same_results_as_twisted(impl, info, kind, spaces, data):
    """Replies about the asked ports, in any chunking: Twisted's client results (it
    takes str lines) or its exception classes."""
    a, b, c, d = spaces
    line = f"7,{a}8{b}:{c}{kind}{d}:{info}"
    reference = twisted_ident.IdentClient()
    expected_d = defer.Deferred()
    reference.parseResponse(expected_d, line)
    expected = outcome(expected_d)

    client, _ = make_client(impl)
    got_d = client.lookup(7, 8)
    payload = line.encode("ascii") + b"\r\n"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=len(payload))))
    for start, end in zip([0, *cuts], [*cuts, len(payload)]):
        client.dataReceived(payload[start:end])
    got = outcome(got_d)
    if isinstance(expected, tuple):
        assert got == expected
    else:
        assert isinstance(got, type(expected)) and type(got).__name__ == type(expected).__name__
        assert got.args == expected.args


# -- /proc lookups ---------------------------------------------------------------------------


def hexhost(host: str) -> str:
    packed = socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    return "".join("%08X" % struct.unpack("=L", packed[i : i + 4]) for i in range(0, len(packed), 4))


def table_line(local, remote, uid=1000, inode=4242, state="01"):
    return (
        f"0: {hexhost(local[0])}:{local[1]:04X} {hexhost(remote[0])}:{remote[1]:04X} {state} "
        f"00000000:00000000 00:00000000 00000000 {uid:5d} 0 {inode} 1 0000000000000000 20 4 30 10 -1"
    )


@pytest.mark.parametrize(
    "host,shown",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("10.1.2.3", "10.1.2.3"),
        ("::1", "::1"),
        ("2001:db8::1:2", "2001:db8::1:2"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # IPv4-mapped: as IPv4
        ("fe80::1", "fe80::1"),
    ],
)
def test_table_addresses(host, shown):
    mixin = ident.ProcServerMixin()
    assert mixin.unpackAddress(f"{hexhost(host)}:0019") == (shown, 25)
    assert procnet.canonical_host(host) == shown


@pytest.mark.skipif(sys.byteorder != "little", reason="the kernel's text is in host byte order")
@pytest.mark.parametrize(
    "text,address",
    [
        ("0100007F:0019", ("127.0.0.1", 25)),  # as a little-endian kernel writes them
        ("0202000A:0071", ("10.0.2.2", 113)),
        ("00000000000000000000000001000000:0277", ("::1", 631)),
        ("0000000000000000FFFF00000100007F:1F90", ("127.0.0.1", 8080)),
        ("B80D0120000000000000000001000000:01BB", ("2001:db8::1", 443)),
    ],
)
def test_kernel_text(text, address):
    assert ident.ProcServerMixin().unpackAddress(text) == address


def test_twisted_hooks_are_used():
    """Lines read by a subclass's own entries() and parseLine(), as with Twisted's."""

    class Custom(ident.ProcServerMixin):
        def entries(self):
            return iter(["alice 10.0.0.1 113 10.0.0.2 4000", "bob 10.0.0.1 113 10.0.0.2 4001"])

        def parseLine(self, line):
            user, host, port, peer, peer_port = line.split()
            return (host, int(port)), (peer, int(peer_port)), {"alice": 1001, "bob": 1002}[user]

        def getUsername(self, uid):
            return {1001: "alice", 1002: "bob"}[uid]

        def homeDirectory(self, uid):
            return None

    assert Custom().lookup(("10.0.0.1", 113), ("10.0.0.2", 4001)) == ("LINUX", "bob")
    with pytest.raises(ident.NoUser):
        Custom().lookup(("10.0.0.1", 113), ("10.0.0.2", 4002))


def test_parse_line_as_twisted():
    line = table_line(("127.0.0.1", 25), ("1.2.3.4", 762), uid=0)
    assert ident.ProcServerMixin().parseLine(line) == (("127.0.0.1", 25), ("1.2.3.4", 762), 0)
    assert twisted_ident.ProcServerMixin().parseLine(line) == (("127.0.0.1", 25), ("1.2.3.4", 762), 0)


@pytest.mark.parametrize(
    "server,client,found",
    [
        (("127.0.0.1", 25), ("1.2.3.4", 762), 1001),
        (("::ffff:127.0.0.1", 25), ("::ffff:1.2.3.4", 762), 1001),  # via a dual-stack socket
        (("127.0.0.2", 25), ("1.2.3.4", 762), None),  # other local address (Twisted: found)
        (("127.0.0.1", 26), ("1.2.3.4", 762), None),
        (("127.0.0.1", 25), ("1.2.3.5", 762), None),
        (("127.0.0.1", 25), ("1.2.3.4", 763), None),
        (("2001:db8::1", 443), ("2001:db8::2", 5000), 1002),
        (("2001:db8::1", 443), ("2001:db8::2", 5001), None),
        (("10.0.0.1", 113), ("10.0.0.2", 7000), 1003),  # IPv4-mapped in tcp6
        (("10.0.0.1", 80), ("10.0.0.2", 7000), None),  # TIME-WAIT: no owner
    ],
)
def test_lookup_in_tables(server, client, found):
    lines = [
        table_line(("0.0.0.0", 25), ("0.0.0.0", 0), uid=0, state="0A"),
        table_line(("127.0.0.1", 25), ("1.2.3.4", 762), uid=1001),
        table_line(("2001:db8::1", 443), ("2001:db8::2", 5000), uid=1002),
        table_line(("::ffff:10.0.0.1", 113), ("::ffff:10.0.0.2", 7000), uid=1003),
        table_line(("10.0.0.1", 80), ("10.0.0.2", 7000), uid=0, inode=0, state="06"),
    ]
    mixin = ident.ProcServerMixin()
    mixin.entries = lambda: iter(lines)
    mixin.getUsername = lambda uid: f"user{uid}"
    mixin.homeDirectory = lambda uid: None
    if found is None:
        with pytest.raises(ident.NoUser):
            mixin.lookup(server, client)
    else:
        assert mixin.lookup(server, client) == ("LINUX", f"user{found}")


def test_unknown_uid_is_reported_as_a_number():
    mixin = ident.ProcServerMixin()
    unused = next(uid for uid in range(54321, 60000) if not _has_user(uid))
    assert mixin.getUsername(unused) == str(unused)
    assert mixin.homeDirectory(unused) is None
    assert not mixin.isHidden(unused)


def _has_user(uid):
    import pwd

    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


@pytest.fixture(params=["ipv4", "ipv6", "dual-stack"])
def live_connection(request):
    """A connection on loopback, made by this process: (connector address, listener
    address) as its ident server would be asked about them."""
    family = socket.AF_INET if request.param == "ipv4" else socket.AF_INET6
    host = {"ipv4": "127.0.0.1", "ipv6": "::1", "dual-stack": "::"}[request.param]
    listener = socket.socket(family)
    try:
        listener.bind((host, 0))
    except OSError:
        unavailable(f"no {request.param} loopback")
    listener.listen()
    port = listener.getsockname()[1]
    target = "127.0.0.1" if request.param != "ipv6" else "::1"
    connector = socket.create_connection((target, port))
    accepted, _ = listener.accept()
    yield connector.getsockname()[:2], accepted.getsockname()[:2]
    for s in (connector, accepted, listener):
        s.close()


def test_live_lookups(live_connection, tmp_path):
    """The real tables: this process owns both ends; the connector's end is found
    from its own address and port, the accepting end from its own."""
    (c_host, c_port), (a_host, a_port) = live_connection
    mixin = ident.ProcServerMixin()
    me = mixin.getUsername(os.getuid())
    assert mixin.lookup((c_host, c_port), (a_host, a_port)) == ("LINUX", me)
    assert mixin.lookup((a_host, a_port), (c_host, c_port)) == ("LINUX", me)
    with pytest.raises(ident.NoUser):
        mixin.lookup((c_host, c_port), (a_host, c_port))
    # ~/.noident hides the user
    mixin.homeDirectory = lambda uid: str(tmp_path)
    assert mixin.lookup((c_host, c_port), (a_host, a_port)) == ("LINUX", me)
    (tmp_path / ".noident").touch()
    with pytest.raises(ident.HiddenUser):
        mixin.lookup((c_host, c_port), (a_host, a_port))


def test_server_with_proc_lookups(impl, live_connection):
    (c_host, c_port), (a_host, a_port) = live_connection
    cls = type("Server", (ident.ProcServerMixin, bound(ident.IdentServer, impl)), {"callLater": task.Clock().callLater})
    server = cls()
    from twisted.internet.address import IPv4Address, IPv6Address

    def address(host, port):
        return (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)

    transport = StringTransport(hostAddress=address(c_host, 113), peerAddress=address(a_host, 5555))
    server.makeConnection(transport)
    server.dataReceived(b"%d , %d\r\n%d,%d\n%d, %d\r\n" % (c_port, a_port, a_port, c_port, c_port, c_port))
    me = ident.ProcServerMixin().getUsername(os.getuid()).encode()
    assert replies(transport) == [
        b"%d, %d : USERID : LINUX : %s" % (c_port, a_port, me),
        b"%d, %d : USERID : LINUX : %s" % (a_port, c_port, me),  # loopback: both ends here
        b"%d, %d : ERROR : NO-USER" % (c_port, c_port),
    ]
