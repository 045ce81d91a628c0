"""txframe.mapproto: Postfix's tcp_table and socketmap rules, sans I/O."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txframe import mapproto as m


def postfix_hex_quote(data: bytes) -> bytes:
    """Postfix's hex_quote() rule, written out byte by byte: printable ASCII but
    ``%`` and space stays, everything else is ``%XX`` (upper case)."""
    return b"".join(
        bytes([n]) if 0x21 <= n <= 0x7E and n != 0x25 else b"%%%02X" % n for n in data
    )


@given(st.binary(max_size=300))
def test_quote_is_postfixs_rule_and_unquote_undoes_it(data):
    quoted = m.quote(data)
    assert quoted == postfix_hex_quote(data)
    assert b" " not in quoted and b"\n" not in quoted and b"\t" not in quoted
    assert all(0x21 <= n <= 0x7E for n in quoted)
    assert m.unquote(quoted) == data
    lower_hex = re.sub(rb"%[0-9A-F]{2}", lambda escape: escape.group().lower(), quoted)
    assert m.unquote(lower_hex) == data


@given(st.text(max_size=100))
def test_text_is_quoted_as_utf8(text):
    assert m.quote(text) == postfix_hex_quote(text.encode("utf-8"))
    assert m.unquote(m.quote(text)).decode("utf-8") == text


def test_unquote_accepts_either_hex_case_and_double_percent():
    assert m.unquote(b"%c3%A9%41%%b") == b"\xc3\xa9A%b"
    assert m.unquote("caf%C3%A9") == "café".encode()
    assert m.unquote(b"plain") == b"plain"


@pytest.mark.parametrize("bad", [b"%", b"a%4", b"%G1", b"%4g", b"x%%%", b"%%%Z0", b"%\xff0"])
def test_unquote_rejects_malformed_escapes(bad):
    with pytest.raises(m.MalformedRequest):
        m.unquote(bad)


@pytest.mark.parametrize(
    ("line", "command", "params"),
    [
        (b"get a%20b", b"get", (b"a%20b",)),
        (b"get a%20b\r", b"get", (b"a%20b",)),
        (b"get", b"get", ()),
        (b"put k v", b"put", (b"k", b"v")),
        (b"  get   k  ", b"get", (b"k",)),
        (b"", b"", ()),
        (b"\x00\xff junk", b"\x00\xff", (b"junk",)),
    ],
)
def test_parse_tcp_request(line, command, params):
    request = m.parse_tcp_request(line)
    assert request == (command, params)


def test_tcp_key_decodes_exactly_one_key():
    assert m.tcp_key(m.parse_tcp_request(b"get user%40example.com%20x")) == b"user@example.com x"
    for line in (b"get", b"get a b"):
        with pytest.raises(m.MalformedRequest, match="takes 1 parameters"):
            m.tcp_key(m.parse_tcp_request(line))
    with pytest.raises(m.MalformedRequest):
        m.tcp_key(m.parse_tcp_request(b"get bad%zz"))


def test_tcp_replies():
    assert m.tcp_found(b"smtp:[mx.example.com] 100%") == b"200 smtp:[mx.example.com]%20100%25\n"
    assert m.tcp_found("café") == b"200 caf%C3%A9\n"
    assert m.tcp_reply(m.NOT_FOUND) == b"500 \n"
    assert m.tcp_found(b"") == b"500 \n"  # Postfix: an empty result "is not allowed"
    assert m.tcp_error(ValueError("naïve\nreason")) == b"400 na%C3%AFve%0Areason\n"


def test_tcp_found_at_the_4096_byte_limit():
    fits = b"v" * (m.TCP_REPLY_LIMIT - len(b"200 \n"))
    assert len(m.tcp_found(fits)) == m.TCP_REPLY_LIMIT
    assert m.tcp_found(fits + b"v").startswith(b"400 ")
    quoted = b" " * ((m.TCP_REPLY_LIMIT - 5) // 3 + 1)  # each byte becomes 3
    assert m.tcp_found(quoted).startswith(b"400 ")


@given(st.binary(max_size=20_000) | st.text(max_size=5_000))
def test_tcp_error_always_fits_on_one_line(reason):
    line = m.tcp_error(reason)
    assert line.startswith(b"400 ") and line.endswith(b"\n")
    assert line.count(b"\n") == 1 and len(line) <= m.TCP_REPLY_LIMIT


def test_as_value():
    assert m.as_value(None) is None
    assert m.as_value(b"x") == b"x"
    assert m.as_value("é") == "é".encode()
    assert m.as_value(bytearray(b"y")) == b"y"
    with pytest.raises(TypeError, match="must be bytes or str, not int"):
        m.as_value(42)


def test_socketmap_requests():
    assert m.parse_socketmap_request(b"aliases user@example.com") == (b"aliases", b"user@example.com")
    assert m.parse_socketmap_request(b"map key with spaces") == (b"map", b"key with spaces")
    assert m.parse_socketmap_request(b"map ") == (b"map", b"")
    for bad in (b"nospace", b" key", b""):
        with pytest.raises(m.MalformedRequest):
            m.parse_socketmap_request(bad)


def test_socketmap_replies_and_limit():
    assert m.socketmap_found(b"value 100%") == b"13:OK value 100%,"
    assert m.socketmap_found(None) == m.socketmap_found(b"") == b"9:NOTFOUND ,"
    assert m.socketmap_error("down\nnow") == b"13:TEMP down now,"
    assert m.socketmap_error(b"bad", b"PERM") == b"8:PERM bad,"
    fits = b"v" * (m.SOCKETMAP_REPLY_LIMIT - 3)
    assert m.socketmap_found(fits) == b"%d:OK %b," % (m.SOCKETMAP_REPLY_LIMIT, fits)
    assert m.socketmap_found(fits + b"v") == b"41:PERM value too long for a socketmap reply,"
    assert m.socketmap_found(b"12345", limit=7) == b"41:PERM value too long for a socketmap reply,"


def test_in_order_sends_replies_in_request_order():
    sent: list[bytes] = []
    queue = m.InOrder(sent.append)
    queue.send_now(b"a")
    first, second = queue.reserve(), queue.reserve()
    queue.send_now(b"d")  # ready, but behind two waiting replies
    queue.fill(second, b"c")
    assert sent == [b"a"] and len(queue) == 3
    queue.fill(first, b"b")
    assert sent == [b"a", b"bcd"] and len(queue) == 0
    queue.send_now(b"e")
    assert sent[-1] == b"e"
    with pytest.raises(ValueError):
        queue.fill(first, b"again")


@given(st.integers(1, 60), st.randoms(use_true_random=False))
def test_in_order_any_completion_order(count, rnd: random.Random):
    sent: list[bytes] = []
    queue = m.InOrder(sent.append)
    places = [queue.reserve() for _ in range(count)]
    order = list(range(count))
    rnd.shuffle(order)
    for index in order:
        queue.fill(places[index], b"%d," % index)
    assert b"".join(sent) == b"".join(b"%d," % i for i in range(count))
    assert len(queue) == 0
