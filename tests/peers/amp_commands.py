"""AMP Commands and test values shared by both sides of ``amp_peer.py`` and by
``tests/test_amp_interop.py``.

The Commands are ordinary Twisted Commands (some use txframe's LargeString and
LargeUnicode), so a Twisted peer and a txframe peer that import this module speak the
same schemas. Every value is built deterministically, so the test recomputes what
each side must have seen without trusting the peer processes.

Equality is :func:`canon`: a type-tagged canonical form (NaN equals NaN, ``-0.0`` is
not ``0.0``, ``Decimal("1.10")`` is not ``Decimal("1.1")``, a datetime keeps its UTC
offset, a FilePath its path type); :func:`seen_digest` hashes it, and every echo
responder answers with the digest of what it decoded.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import random
from typing import Any

from twisted.protocols import amp
from twisted.python.filepath import FilePath

from txframe.amp import LargeString, LargeUnicode

# -- errors ------------------------------------------------------------------------------


class KnownError(Exception):
    """Mapped to the error code KNOWN."""


class FatalError(Exception):
    """Mapped to the fatal error code FATAL."""


class SwitchRefused(Exception):
    """A refused ProtocolSwitchCommand."""


ERRORS = {KnownError: b"KNOWN"}
FATAL_ERRORS = {FatalError: b"FATAL"}

# The description of the deliberate unknown error: the responder's side logs it.
UNKNOWN_MARKER = "EXPECTED-unknown-error"
KNOWN_MESSAGE = "known: caf\u00e9 \u65e5\u672c \U0001f600"  # non-ASCII survives the trip
FATAL_MESSAGE = "fatal: stop"


# -- canonical form ----------------------------------------------------------------------


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canon(value: Any) -> str:
    """A type-tagged canonical text for *value*: equal iff the values are the same."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return f"bool:{value}"
    if isinstance(value, int):
        return f"int:{value:#x}"  # hex: no int-to-str digit limit
    if isinstance(value, float):
        return f"float:{value.hex()}"
    if isinstance(value, decimal.Decimal):
        return f"Decimal:{value}"
    if isinstance(value, datetime.datetime):
        return f"datetime:{value.isoformat()}:{value.utcoffset()}"
    if isinstance(value, FilePath):
        return f"FilePath:{value.path!r}"
    if isinstance(value, bytes):
        return f"bytes:{len(value)}:{_hash(value)}"
    if isinstance(value, str):
        return f"str:{len(value)}:{_hash(value.encode('utf-8', 'surrogatepass'))}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canon(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted((str(key), canon(item)) for key, item in value.items())
        return "{" + ",".join(f"{key}={item}" for key, item in items) + "}"
    return f"{type(value).__name__}:{value!r}"


def seen_digest(objects: dict) -> bytes:
    """What an echo responder reports about the arguments it decoded."""
    return _hash(canon(objects).encode()).encode()


# -- echo commands -----------------------------------------------------------------------

LATER = (b"later", amp.Boolean(optional=True))  # answer through a Deferred


def _echo(name: str, fields: list) -> type:
    """A Command whose responder answers its arguments back, plus ``seen``."""
    return type(
        name,
        (amp.Command,),
        {
            "arguments": [*fields, LATER],
            "response": [*fields, (b"seen", amp.String())],
            "__module__": __name__,
        },
    )


def _items(optional: bool = False) -> amp.AmpList:
    return amp.AmpList(
        [
            (b"a", amp.Integer()),
            (b"b", amp.Unicode(optional=True)),
            (b"c", amp.ListOf(amp.String())),
            (b"d", amp.Float()),
        ],
        optional=optional,
    )


def _tree() -> amp.AmpList:
    return amp.AmpList(
        [
            (b"name", amp.Unicode()),
            (b"children", amp.AmpList([(b"n", amp.Integer()), (b"when", amp.DateTime())])),
        ]
    )


KEY_255 = b"k" * 255
KEY_255_2 = b"z" * 254 + b"-"  # a dash: its Python name ends with "_"

ECHO = {
    name: _echo(name, fields)
    for name, fields in {
        "EchoInteger": [(b"value", amp.Integer())],
        "EchoString": [(b"value", amp.String())],
        "EchoUnicode": [(b"value", amp.Unicode())],
        "EchoBoolean": [(b"value", amp.Boolean())],
        "EchoFloat": [(b"value", amp.Float())],
        "EchoDecimal": [(b"value", amp.Decimal())],
        "EchoDateTime": [(b"value", amp.DateTime())],
        "EchoPath": [(b"value", amp.Path())],
        "EchoListOfInteger": [(b"value", amp.ListOf(amp.Integer()))],
        "EchoListOfString": [(b"value", amp.ListOf(amp.String()))],
        "EchoListOfUnicode": [(b"value", amp.ListOf(amp.Unicode()))],
        "EchoListOfFloat": [(b"value", amp.ListOf(amp.Float()))],
        "EchoListOfBoolean": [(b"value", amp.ListOf(amp.Boolean()))],
        "EchoListOfDecimal": [(b"value", amp.ListOf(amp.Decimal()))],
        "EchoListOfDateTime": [(b"value", amp.ListOf(amp.DateTime()))],
        "EchoListOfListOf": [(b"value", amp.ListOf(amp.ListOf(amp.Integer())))],
        "EchoAmpList": [(b"value", _items())],
        "EchoAmpListNested": [(b"value", _tree())],
        "EchoOptional": [
            (b"value", amp.Integer(optional=True)),
            (b"text", amp.Unicode(optional=True)),
            (b"list", amp.ListOf(amp.Integer(), optional=True)),
            (b"items", _items(optional=True)),
        ],
        "EchoAll": [
            (b"int", amp.Integer()),
            (b"bytes", amp.String()),
            (b"text", amp.Unicode()),
            (b"flag", amp.Boolean()),
            (b"float", amp.Float()),
            (b"dec", amp.Decimal()),
            (b"when", amp.DateTime()),
            (b"where", amp.Path()),
            (b"ints", amp.ListOf(amp.Integer())),
            (b"items", _items()),
            (b"from", amp.Unicode()),  # a Python keyword: the argument is "From"
            (b"with-dash", amp.Integer()),  # the argument is "with_dash"
            (b"maybe", amp.Integer(optional=True)),
            (b"absent", amp.String(optional=True)),
        ],
        "Limits": [(KEY_255, amp.String()), (KEY_255_2, amp.Unicode())],
        "EchoLargeString": [(b"value", LargeString())],
        "EchoLargeUnicode": [(b"value", LargeUnicode())],
        "EchoLargeOptional": [(b"value", LargeString(optional=True)), (b"tail", amp.String())],
    }.items()
}
globals().update(ECHO)


class Stats(amp.Command):
    """How many commands (but this one) the responder's side has run on this
    connection."""

    arguments: list = []
    response = [(b"commands", amp.Integer())]


class Fail(amp.Command):
    """The responder fails as *kind* says: ``known``, ``known-deferred``, ``fatal``,
    ``unknown``, ``unknown-deferred``, ``remote`` (a RemoteAmpError with an unmapped
    code) or ``bad-return`` (a response without its key); ``extra-keys`` answers
    with a key the response does not declare (ignored)."""

    arguments = [(b"kind", amp.Unicode())]
    response = [(b"never", amp.Integer())]
    errors = ERRORS
    fatalErrors = FATAL_ERRORS


class NotThere(amp.Command):
    """No responder anywhere has this one."""

    arguments = [(b"x", amp.Integer())]
    response: list = []


class Notify(amp.Command):
    """Not answered (requiresAnswer = False): the responder's side counts it."""

    arguments = [(b"n", amp.Integer()), (b"text", amp.Unicode())]
    response: list = []
    requiresAnswer = False


class Reply(amp.Command):
    """Answered with *size* bytes (65,536 cannot be sent: the answering side drops
    the connection, as Twisted's does)."""

    arguments = [(b"size", amp.Integer())]
    response = [(b"data", amp.String())]


class CallMeBack(amp.Command):
    """The responder calls every echo case (and some large ones) back on the caller
    and answers how many it checked and which failed."""

    arguments: list = []
    response = [(b"checked", amp.Integer()), (b"failures", amp.ListOf(amp.Unicode()))]


class SwitchMe(amp.Command):
    """The responder answers, then calls Switch on the caller (the switch the other
    way round): its side becomes the line client."""

    arguments: list = []
    response: list = []


class Slow(amp.Command):
    """Answered after *delay* seconds (0: at once, without a Deferred); every
    ``n % FAIL_EVERY == 0`` fails with KnownError."""

    arguments = [(b"n", amp.Integer()), (b"delay", amp.Float())]
    response = [(b"n", amp.Integer()), (b"double", amp.Integer())]
    errors = ERRORS


class Hang(amp.Command):
    """Not answered until the connection is gone: once *count* calls wait, the
    responder's side drops the connection (``abortConnection`` if *abort*), then
    fires them all (answers after the loss must be dropped quietly)."""

    arguments = [(b"n", amp.Integer()), (b"count", amp.Integer()), (b"abort", amp.Boolean())]
    response = [(b"n", amp.Integer())]


class Switch(amp.ProtocolSwitchCommand):
    """Switch to a line protocol: the responder's side greets with *greeting* at
    once, answers each line ``echo:<line>``, and answers ``bye`` with ``bye`` and
    closes. The greeting ``refuse`` is refused with SwitchRefused."""

    arguments = [(b"greeting", amp.String())]
    response: list = []
    errors = {SwitchRefused: b"REFUSED"}


FAIL_EVERY = 97
CONCURRENT_CALLS = 1000
HANG_CALLS = 100
SWITCH_LINES = 500
EARLY_LINES = [b"early-1", b"early-2", b"early-3"]
GREETING = b"hello after the switch"


def slow_delay(n: int) -> float:
    """Answers come back in an order unrelated to the calls' (0 to 0.2 s)."""
    return 0.0 if n % 10 == 0 else ((n * 7919) % 1000) / 5000


def switch_lines() -> list[bytes]:
    return [b"line-%d %s" % (n, b"x" * (n % 50)) for n in range(SWITCH_LINES)]


def switch_expected() -> list[bytes]:
    """What the switching client must receive over the line protocol."""
    return (
        [GREETING]
        + [b"echo:" + line for line in EARLY_LINES]
        + [b"echo:" + line for line in switch_lines()]
        + [b"bye"]
    )


# -- values ------------------------------------------------------------------------------

TZ = datetime.timezone
TD = datetime.timedelta


def _exact_text(size: int) -> str:
    """Text of exactly *size* UTF-8 bytes, mostly 4-byte characters (so 65,535-byte
    pieces cut characters in half)."""
    pattern = "\U0001f600\U0001d11e\u00e9a"  # 4 + 4 + 2 + 1 bytes
    count = size // 11
    return pattern * count + "a" * (size - 11 * count)


def _dt(*args: int, offset: TD | None = TD(0)) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=None if offset is None else TZ(offset))


DATETIMES = [
    _dt(2024, 2, 29, 12, 30, 45, 123456),
    _dt(2024, 2, 29, 12, 30, 45, 0, offset=TD(hours=5, minutes=30)),
    _dt(1999, 12, 31, 23, 59, 59, 999999, offset=TD(hours=-8)),
    _dt(2000, 1, 1, 0, 0, 0, 1, offset=TD(hours=14)),
    _dt(2000, 1, 1, 0, 0, 0, 0, offset=TD(hours=-12)),
    _dt(2010, 6, 1, 8, 0, 0, 0, offset=TD(minutes=-30)),
    _dt(2010, 6, 1, 8, 0, 0, 0, offset=TD(hours=-9, minutes=-45)),
    _dt(1, 1, 1, 0, 0, 0, 0),
    _dt(9999, 12, 31, 23, 59, 59, 999999),
    datetime.datetime(2020, 5, 5, 5, 5, 5, 5, tzinfo=amp.utc),
]

INF = float("inf")
NAN = float("nan")
D = decimal.Decimal


def _items_value() -> list:
    return [
        {"a": 1, "b": "x\u00e9", "c": [b"q", b""], "d": 0.5},
        {"a": -(2**80), "b": None, "c": [], "d": NAN},
        {"a": 0, "b": "", "c": [b"\x00\x00"] * 3, "d": -INF},
    ]


def echo_cases() -> list[tuple[str, str, dict, dict]]:
    """(case id, command name, arguments, the arguments the answer must carry)."""
    rng = random.Random(4242)
    cases: list[tuple[str, str, dict, dict | None]] = []

    def add(case: str, command: str, kw: dict, expected: dict | None = None) -> None:
        cases.append((case, command, kw, kw if expected is None else expected))

    for i, v in enumerate(
        [0, 1, -1, 2**31, 2**63 - 1, -(2**63), 2**64, -(2**64) - 1, 2**1000]
        + [10**4299 + 7, -(10**4299)]  # 4,300 digits: Python's int/str limit
    ):
        add(f"integer-{i}", "EchoInteger", {"value": v})
    for i, v in enumerate(
        [b"", b"\x00", b"\x00\x00", bytes(range(256)), rng.randbytes(65535), b"\xff" * 65535]
    ):
        add(f"string-{i}", "EchoString", {"value": v})
    for i, v in enumerate(
        [
            "",
            "ascii",
            "caf\u00e9",
            "\u65e5\u672c\u8a9e",
            "\U0001f600\U0001d11e\U0010ffff",
            "\x00",
            "\ufeffBOM",
            _exact_text(65535),
        ]
    ):
        add(f"unicode-{i}", "EchoUnicode", {"value": v})
    add("integer-given-float", "EchoInteger", {"value": 1.9}, {"value": 1})  # b"%d"
    add("integer-given-bool", "EchoInteger", {"value": True}, {"value": 1})
    add("string-bytearray", "EchoString", {"value": bytearray(b"abc")}, {"value": b"abc"})
    add("string-memoryview", "EchoString", {"value": memoryview(b"\x00mv")}, {"value": b"\x00mv"})
    add("boolean-true", "EchoBoolean", {"value": True})
    add("boolean-truthy", "EchoBoolean", {"value": 2}, {"value": True})
    add("boolean-falsy", "EchoBoolean", {"value": []}, {"value": False})
    add("boolean-false", "EchoBoolean", {"value": False})
    for i, v in enumerate(
        [0.0, -0.0, 1.5, -2.5e-300, 1.7976931348623157e308, 5e-324]
        + [INF, -INF, NAN, 0.1 + 0.2, 1 / 3]
    ):
        add(f"float-{i}", "EchoFloat", {"value": v})
    for i, v in enumerate(
        [
            "0",
            "-0",
            "1.10",
            "1E+100",
            "-1.23456789012345678901234567890123456789",
            "1E-1000000",
            "Infinity",
            "-Infinity",
            "NaN",
            "-NaN",
            "sNaN",
            "123456789" * 100,
        ]
    ):
        add(f"decimal-{i}", "EchoDecimal", {"value": D(v)})
    for i, v in enumerate(DATETIMES):
        add(f"datetime-{i}", "EchoDateTime", {"value": v})
    add("path-ascii", "EchoPath", {"value": FilePath("/tmp/txframe/x")})
    add("path-unicode", "EchoPath", {"value": FilePath("/tmp/\u65e5\u672c \u8a9e/\U0001f600")})
    add(
        "path-bytes",
        "EchoPath",
        {"value": FilePath(b"/tmp/bytes path")},
        {"value": FilePath("/tmp/bytes path")},  # Path sends text
    )
    add("listof-integer-empty", "EchoListOfInteger", {"value": []})
    add("listof-integer", "EchoListOfInteger", {"value": [0, -1, 2**100, -(2**100)]})
    add("listof-integer-5000", "EchoListOfInteger", {"value": list(range(-2500, 2500))})
    add("listof-string", "EchoListOfString", {"value": [b"", b"a", b"\x00\x00", bytes(range(256))]})
    add("listof-string-empties", "EchoListOfString", {"value": [b""] * 100})
    add("listof-string-65535", "EchoListOfString", {"value": [b"m" * 65533]})  # 2 + 65,533
    add(
        "listof-string-bytearray",
        "EchoListOfString",
        {"value": [bytearray(b"ba"), b"b"]},
        {"value": [b"ba", b"b"]},
    )
    add("listof-unicode", "EchoListOfUnicode", {"value": ["", "\u00e9", "\U0001f600", "x" * 1000]})
    add("listof-float", "EchoListOfFloat", {"value": [INF, -INF, -0.0, NAN, 1e-300]})
    add("listof-boolean", "EchoListOfBoolean", {"value": [True, False, True]})
    add("listof-decimal", "EchoListOfDecimal", {"value": [D("1.10"), D("NaN"), D("-0"), D("1E+5")]})
    add("listof-datetime", "EchoListOfDateTime", {"value": DATETIMES[:5]})
    add("listof-listof", "EchoListOfListOf", {"value": [[], [1], [2, 3], [-(2**70)]]})
    add("amplist-empty", "EchoAmpList", {"value": []})
    add("amplist", "EchoAmpList", {"value": _items_value()})
    add(
        "amplist-nested",
        "EchoAmpListNested",
        {
            "value": [
                {
                    "name": "root",
                    "children": [{"n": 1, "when": DATETIMES[1]}, {"n": 2, "when": DATETIMES[2]}],
                },
                {"name": "\U0001f600", "children": []},
            ]
        },
    )
    none = {"value": None, "text": None, "list": None, "items": None}
    add("optional-all-none", "EchoOptional", dict(none))
    add("optional-omitted", "EchoOptional", {}, none)
    add(
        "optional-given",
        "EchoOptional",
        {"value": 0, "text": "", "list": [], "items": [{"a": 1, "b": None, "c": [], "d": 1.0}]},
    )
    add(
        "all",
        "EchoAll",
        {
            "int": -(2**200),
            "bytes": b"\x00bytes\xff",
            "text": "t\u00e9xt \U0001f600",
            "flag": True,
            "float": -0.0,
            "dec": D("-1.500"),
            "when": DATETIMES[6],
            "where": FilePath("/srv/\u00e9"),
            "ints": [1, 2, 3],
            "items": _items_value(),
            "From": "keyword",
            "with_dash": 7,
            "maybe": None,
            "absent": None,
        },
    )
    add(
        "limits-max",
        "Limits",
        {KEY_255.decode(): rng.randbytes(65535), "z" * 254 + "_": _exact_text(65535)},
    )
    add("limits-empty", "Limits", {KEY_255.decode(): b"", "z" * 254 + "_": ""})
    return cases  # type: ignore[return-value]


MIB = 1 << 20
LARGE_SIZES = [0, 65535, 65536, 65535 * 2, 65535 * 2 + 1, MIB, 10 * MIB]


def large_value(size: int) -> bytes:
    """*size* bytes with every position distinct enough that a misplaced piece shows."""
    block = hashlib.sha256(b"%d" % size).digest() * 2048  # 64 KiB
    counter = bytes(range(256)) * 5
    out = bytearray()
    i = 0
    while len(out) < size:
        out += block[: min(len(block), size - len(out))]
        out += counter[i % 256 : i % 256 + 7]
        i += 1
    return bytes(out[:size])


#: A LargeString this long cannot reach a txframe receiver (MAX_BOX_LENGTH is 16 MiB).
OVER_LIMIT = 17 * MIB


def large_cases() -> list[tuple[str, str, dict, dict]]:
    """LargeString / LargeUnicode values across the 65,535-byte boundaries."""
    cases = []
    for size in LARGE_SIZES:
        value = large_value(size)
        cases.append((f"largestring-{size}", "EchoLargeString", {"value": value}, {"value": value}))
    for size in [0, 65535, 65536, MIB, 10 * MIB]:
        text = _exact_text(size) if size else ""
        cases.append((f"largeunicode-{size}", "EchoLargeUnicode", {"value": text}, {"value": text}))
    for size in [0, 65536]:
        value = large_value(size)
        kw = {"value": value, "tail": b"after"}
        cases.append((f"largeoptional-{size}", "EchoLargeOptional", kw, kw))
    kw = {"value": None, "tail": b"after"}
    cases.append(("largeoptional-none", "EchoLargeOptional", kw, kw))
    return cases


def local_error_cases() -> list[tuple[str, str, dict]]:
    """Calls the caller's side must refuse before writing anything."""
    return [
        ("string-65536", "EchoString", {"value": b"x" * 65536}),
        ("unicode-65536", "EchoUnicode", {"value": "\u00e9" * 32768}),
        ("limits-65536", "Limits", {KEY_255.decode(): b"y" * 65536, "z" * 254 + "_": ""}),
        ("listof-65536", "EchoListOfString", {"value": [b"x" * 65534]}),
        ("integer-4301-digits", "EchoInteger", {"value": 10**4300}),
        ("float-not-float", "EchoFloat", {"value": 1}),
        ("decimal-not-decimal", "EchoDecimal", {"value": 1.5}),
        ("datetime-naive", "EchoDateTime", {"value": datetime.datetime(2020, 1, 1)}),
        ("unicode-surrogate", "EchoUnicode", {"value": "\ud800"}),
        ("string-given-str", "EchoString", {"value": "text"}),
        ("listof-element-65536", "EchoListOfString", {"value": [b"x" * 65536]}),
        ("unicode-given-bytes", "EchoUnicode", {"value": b"bytes"}),
        ("integer-given-str", "EchoInteger", {"value": "5"}),
        ("boolean-missing", "EchoBoolean", {"later": True}),
        ("missing-argument", "EchoString", {}),
        ("unknown-argument", "EchoString", {"value": b"", "bogus": 1}),
    ]


def callback_cases() -> list[tuple[str, str, dict, dict]]:
    """What CallMeBack's responder calls back: every echo case, and some large ones."""
    wanted = ("largestring-65536", "largeunicode-1048576")
    large = [case for case in large_cases() if case[0] in wanted]
    return echo_cases() + large


def raw_box_padded(items: dict, total: int, overhead: int) -> bytes:
    """A box holding *items* plus padding pairs (keys the Command ignores), whose size
    as txframe's receiver counts it (4 + key + value + *overhead* a pair) is exactly
    *total*. Returns the wire bytes (its end included)."""
    def pair(key: bytes, value: bytes) -> bytes:
        return len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value

    def cost(key: bytes, value_length: int) -> int:
        return 4 + len(key) + value_length + overhead

    out = [pair(key, value) for key, value in items.items()]
    left = total - sum(cost(key, len(value)) for key, value in items.items())
    number = 0
    while left > 0:
        key = b"pad%05d" % number
        length = min(65535, left - cost(key, 0))
        if length < 0:  # too little left for a pair: make this one shorter
            raise ValueError("cannot pad to exactly %d" % total)
        if left - cost(key, length) != 0 and left - cost(key, length) < cost(key, 0):
            length -= cost(key, 0)  # leave room for one last pair
        out.append(pair(key, b"p" * length))
        left -= cost(key, length)
        number += 1
    assert left == 0
    return b"".join(out) + b"\x00\x00"


# -- TLS -----------------------------------------------------------------------------------

TLS_COMMON_NAME = "txframe-amp-interop"


def certificate_pem() -> bytes:
    """A fresh self-signed certificate and its key (EC P-256: fast), as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_COMMON_NAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
