"""The benchmark workloads and implementations, shared by compare.py and the pytest suites.

A :class:`Workload` is a stream of bytes for one protocol class (``LineReceiver``,
``LineOnlyReceiver``, ``Int32StringReceiver``, ``Int16StringReceiver``,
``Int8StringReceiver`` or ``NetstringReceiver``), pre-cut into the chunks that are fed to
``dataReceived``, with the ``MAX_LENGTH`` to set and the frames (lines or strings)
expected: how many, and the last one exactly.

:func:`standard_workloads` builds the line workloads of the issue:

* 1000 lines of 52 bytes (50 + CRLF) in 16, 64, 256, 1024 and 65536-byte chunks, to
  each line class;
* one ``dataReceived`` of about 1 MiB of such lines (20164 whole lines), to each class;
* one 4 MiB line in 1 KiB chunks to ``LineReceiver`` (``MAX_LENGTH`` raised above it),
  and the same with 8 MiB, whose time ratio shows whether buffering is linear.

:func:`string_workloads` builds the string workloads:

* 10,000 strings of 30 payload bytes (distinct) to ``Int32StringReceiver``,
  ``Int16StringReceiver``, ``Int8StringReceiver`` (34, 32 and 31 bytes framed) and
  ``NetstringReceiver`` (``b"30:" + payload + b","``, 34 bytes), in 4 KiB and 64 KiB
  chunks;
* one 10 MiB string in 1 KiB chunks to ``Int32StringReceiver`` (``MAX_LENGTH`` raised
  above it), and the same with 20 MiB, for the linearity ratio.

The sizes of the big ones can be scaled down (Twisted is quadratic there): the pytest
suites and ``compare.py --quick`` do so. With ``twisted_on_largest=False`` the larger
case of each linearity pair (the 8 MiB line, the 20 MiB string) is marked to be
skipped on Twisted (:attr:`Workload.skip`), because Twisted alone would spend about a
minute on each; the linearity targets are about txframe.

An *implementation* is one of :data:`IMPLEMENTATIONS`: ``"twisted"``
(``twisted.protocols.basic``), ``"compiled"`` (``txframe.basic`` bound to the Cython
framers) or ``"pure"`` (``txframe.basic`` bound to the pure-Python framers), bound the
way ``tests/conftest.py`` does it: a subclass setting both the framer type
(``_lineFramer`` / ``_stringFramer``) and ``dataReceived`` (the implementation's
``data_received`` / ``string_data_received``), so that no call crosses from one
implementation into the other.
"""

from __future__ import annotations

import importlib
import struct
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from twisted.internet.testing import StringTransport
from twisted.protocols import basic as twisted_basic

from txframe import basic as txframe_basic

KIB = 1024
MIB = 1024 * KIB

IMPLEMENTATIONS = ("twisted", "compiled", "pure")

# -- lines -------------------------------------------------------------------------

LINE_KINDS = ("LineReceiver", "LineOnlyReceiver")
KINDS = LINE_KINDS  # the name the line suites and older callers use
CHUNK_SIZES = (16, 64, 256, 1024, 65536)
#: plus one line per dataReceived (LINE_SIZE-byte chunks): a lock-step client, such as
#: Postfix querying a map, sends exactly that
LOCKSTEP = "lockstep"

LINE_COUNT = 1000
LINE_BODY = 50  # bytes per line before the delimiter
DELIMITER = b"\r\n"
LINE_SIZE = LINE_BODY + len(DELIMITER)  # 52

#: compare.py's sizes: one ~1 MiB chunk of lines, and a 4 MiB and an 8 MiB line
FULL_ONE_CHUNK = MIB
FULL_BIG_LINES = (4 * MIB, 8 * MIB)
#: the pytest suite's (and ``compare.py --quick``'s): Twisted needs ~0.7 s for one 1 MiB
#: chunk to LineReceiver and ~12 s / ~48 s for the 4 / 8 MiB lines on a 2.5 GHz Xeon,
#: far too long for a test body; these keep its slowest body near 0.2 s.
SMALL_ONE_CHUNK = 256 * KIB
SMALL_BIG_LINES = (256 * KIB, 512 * KIB)
BIG_LINE_CHUNK = KIB

# -- strings -----------------------------------------------------------------------

#: the string protocol classes, and the short names the workload ids use
STRING_KINDS = (
    "Int32StringReceiver",
    "Int16StringReceiver",
    "Int8StringReceiver",
    "NetstringReceiver",
)
SHORT_NAMES = {
    "Int32StringReceiver": "Int32",
    "Int16StringReceiver": "Int16",
    "Int8StringReceiver": "Int8",
    "NetstringReceiver": "Netstring",
}
PREFIX_FORMATS = {
    "Int32StringReceiver": "!I",
    "Int16StringReceiver": "!H",
    "Int8StringReceiver": "!B",
}
STRING_CHUNK_SIZES = (4 * KIB, 64 * KIB)
STRING_COUNT = 10_000
STRING_PAYLOAD = 30  # bytes per string, framing excluded

#: compare.py's sizes: one 10 MiB and one 20 MiB string (Int32StringReceiver)
FULL_BIG_STRINGS = (10 * MIB, 20 * MIB)
#: the pytest suite's (and ``compare.py --quick``'s): Twisted re-copies its whole buffer
#: for every chunk, ~20 s for the 10 MiB string on a 2.5 GHz Xeon; with these its
#: slowest body takes ~0.1 s.
SMALL_BIG_STRINGS = (512 * KIB, MIB)
BIG_STRING_CHUNK = KIB

#: the groups of workloads, by family
LINE_GROUPS = ("lines", "one-chunk", "big-line")
STRING_GROUPS = ("strings", "big-string")
#: the groups whose two workloads (small, large) make a linearity ratio
BIG_GROUPS = ("big-line", "big-string")

#: why a workload marks Twisted skipped (``twisted_on_largest=False``)
TWISTED_SKIPPED = "skipped on Twisted: quadratic, about a minute for this case alone"


def size_label(n: int) -> str:
    """``4194304`` -> ``"4MiB"``, ``262144`` -> ``"256KiB"``, ``1000`` -> ``"1000B"``."""
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB}MiB"
    if n >= KIB and n % KIB == 0:
        return f"{n // KIB}KiB"
    return f"{n}B"


def pretty_size(n: int) -> str:
    """``4194304`` -> ``"4 MiB"``, ``1000`` -> ``"1000 B"``."""
    label = size_label(n)
    return f"{label[:-3]} {label[-3:]}" if label.endswith("iB") else f"{label[:-1]} B"


_FILLER = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def make_lines(count: int) -> bytes:
    """*count* distinct lines of 50 printable bytes, each followed by CRLF."""
    out = []
    for i in range(count):
        body = (b"%06d " % i + _FILLER[i % 10 :])[:LINE_BODY]
        out.append(body + DELIMITER)
    return b"".join(out)


def make_payloads(count: int, length: int = STRING_PAYLOAD) -> list[bytes]:
    """*count* distinct payloads of *length* printable bytes."""
    return [(b"%06d " % i + _FILLER[i % 10 :] + _FILLER)[:length] for i in range(count)]


def frame(kind: str, payload: bytes) -> bytes:
    """*payload* framed for the string protocol *kind*."""
    if kind == "NetstringReceiver":
        return b"%d:%b," % (len(payload), payload)
    return struct.pack(PREFIX_FORMATS[kind], len(payload)) + payload


@dataclass
class Workload:
    """One stream of bytes for one protocol class."""

    name: str  # short id, e.g. "LineReceiver-1024" or "Int32-4096" (also the pytest id)
    title: str  # for tables
    kind: str  # the protocol class, e.g. "LineReceiver" or "NetstringReceiver"
    data: bytes
    chunk_size: int
    count: int  # frames (lines or strings) the protocol must receive
    length: int  # length of each frame, framing excluded
    last: bytes  # the last frame the protocol must receive, framing excluded
    max_length: int | None = None  # MAX_LENGTH to set on the instance, if any
    unit: str = "lines"  # rate reported in "lines", "strings" or "bytes" per second
    group: str = "lines"  # see LINE_GROUPS and STRING_GROUPS
    nominal: int = 0  # one-chunk: the size asked for; big-*: the frame's length
    skip: frozenset[str] = frozenset()  # implementations not to run it on
    skip_reason: str = ""
    _chunks: tuple[bytes, ...] | None = field(default=None, repr=False)

    @property
    def family(self) -> str:
        """``"lines"`` or ``"strings"``."""
        return "strings" if self.kind in STRING_KINDS else "lines"

    @property
    def lines(self) -> int:  # the line suites' name for count
        return self.count

    @property
    def line_length(self) -> int:  # the line suites' name for length
        return self.length

    @property
    def chunks(self) -> tuple[bytes, ...]:
        """The data cut into ``chunk_size`` pieces (cut once, then reused)."""
        if self._chunks is None:
            data, size = self.data, self.chunk_size
            self._chunks = tuple(data[i : i + size] for i in range(0, len(data), size))
        return self._chunks

    def amount(self) -> int:
        """What one run processes, in :attr:`unit`."""
        return len(self.data) if self.unit == "bytes" else self.count

    def runs_on(self, impl: str) -> bool:
        return impl not in self.skip


def standard_workloads(
    *,
    one_chunk: int = FULL_ONE_CHUNK,
    big_lines: tuple[int, ...] = FULL_BIG_LINES,
    twisted_on_largest: bool = True,
) -> list[Workload]:
    """The issue's line workloads; *one_chunk* and *big_lines* set the sizes of the big
    ones; ``twisted_on_largest=False`` skips Twisted on the longest line."""
    lines = make_lines(LINE_COUNT)
    last_line = lines[-LINE_SIZE : -len(DELIMITER)]
    result = []
    for kind in LINE_KINDS:
        for size in CHUNK_SIZES + (LINE_SIZE,):
            lockstep = size == LINE_SIZE
            result.append(
                Workload(
                    name=f"{kind}-{LOCKSTEP if lockstep else size}",
                    title=f"{kind}, {LINE_COUNT} × {LINE_SIZE} B lines, "
                    + ("one line per dataReceived" if lockstep else f"{size} B chunks"),
                    kind=kind,
                    data=lines,
                    chunk_size=size,
                    count=LINE_COUNT,
                    length=LINE_BODY,
                    last=last_line,
                )
            )
    count = one_chunk // LINE_SIZE  # whole lines only
    many = make_lines(count)
    for kind in LINE_KINDS:
        result.append(
            Workload(
                name=f"{kind}-{size_label(one_chunk)}",
                title=f"{kind}, {count} × {LINE_SIZE} B lines, one "
                f"{pretty_size(one_chunk)} chunk",
                kind=kind,
                data=many,
                chunk_size=len(many),
                count=count,
                length=LINE_BODY,
                last=many[-LINE_SIZE : -len(DELIMITER)],
                group="one-chunk",
                nominal=one_chunk,
            )
        )
    for length in big_lines:
        skip = not twisted_on_largest and length == max(big_lines) and len(big_lines) > 1
        result.append(
            Workload(
                name=f"LineReceiver-line-{size_label(length)}",
                title=f"LineReceiver, one {pretty_size(length)} line, "
                f"{pretty_size(BIG_LINE_CHUNK)} chunks",
                kind="LineReceiver",
                data=b"y" * length + DELIMITER,
                chunk_size=BIG_LINE_CHUNK,
                count=1,
                length=length,
                last=b"y" * length,
                max_length=length + 1,
                unit="bytes",
                group="big-line",
                nominal=length,
                skip=frozenset({"twisted"}) if skip else frozenset(),
                skip_reason=TWISTED_SKIPPED if skip else "",
            )
        )
    return result


def string_workloads(
    *,
    big_strings: tuple[int, ...] = FULL_BIG_STRINGS,
    twisted_on_largest: bool = True,
) -> list[Workload]:
    """The string workloads; *big_strings* sets the sizes of the big ones;
    ``twisted_on_largest=False`` skips Twisted on the longest string."""
    payloads = make_payloads(STRING_COUNT)
    result = []
    for kind in STRING_KINDS:
        data = b"".join(frame(kind, payload) for payload in payloads)
        framed = len(data) // STRING_COUNT
        noun = "netstrings" if kind == "NetstringReceiver" else "strings"
        for size in STRING_CHUNK_SIZES:
            result.append(
                Workload(
                    name=f"{SHORT_NAMES[kind]}-{size}",
                    title=f"{kind}, {STRING_COUNT:,} × {STRING_PAYLOAD} B {noun} "
                    f"({framed} B framed), {size} B chunks",
                    kind=kind,
                    data=data,
                    chunk_size=size,
                    count=STRING_COUNT,
                    length=STRING_PAYLOAD,
                    last=payloads[-1],
                    unit="strings",
                    group="strings",
                )
            )
    kind = "Int32StringReceiver"
    for length in big_strings:
        skip = not twisted_on_largest and length == max(big_strings) and len(big_strings) > 1
        payload = b"z" * length
        result.append(
            Workload(
                name=f"{SHORT_NAMES[kind]}-string-{size_label(length)}",
                title=f"{kind}, one {pretty_size(length)} string, "
                f"{pretty_size(BIG_STRING_CHUNK)} chunks",
                kind=kind,
                data=frame(kind, payload),
                chunk_size=BIG_STRING_CHUNK,
                count=1,
                length=length,
                last=payload,
                max_length=length + 1,
                unit="bytes",
                group="big-string",
                nominal=length,
                skip=frozenset({"twisted"}) if skip else frozenset(),
                skip_reason=TWISTED_SKIPPED if skip else "",
            )
        )
    return result


# -- implementations ---------------------------------------------------------------


def implementation_modules(impl: str) -> tuple[ModuleType, ModuleType] | None:
    """The (lines, strings) framer modules of a txframe implementation, or None if
    either is not built (or not importable)."""
    suffix = {"compiled": "c", "pure": "py"}[impl]
    try:
        return (
            importlib.import_module(f"txframe._lines_{suffix}"),
            importlib.import_module(f"txframe._strings_{suffix}"),
        )
    except ImportError:
        return None


def available(impl: str) -> bool:
    return impl == "twisted" or implementation_modules(impl) is not None


def _empty_lineReceived(self: Any, line: bytes) -> None:
    pass


def _counting_lineReceived(self: Any, line: bytes) -> None:
    self.count += 1
    self.last = line


def _empty_stringReceived(self: Any, string: bytes) -> None:
    pass


def _counting_stringReceived(self: Any, string: bytes) -> None:
    self.count += 1
    self.last = string


_classes: dict[tuple[str, str, bool], type] = {}


def protocol_class(impl: str, kind: str, counting: bool = False, fresh: bool = False) -> type:
    """The *kind* protocol class of *impl*, with an empty (or counting) lineReceived /
    stringReceived.

    A counting class records ``count`` (frames received) and ``last`` (the last one).
    Classes are cached; ``fresh=True`` makes a new one, e.g. for measuring instance
    sizes (CPython sizes an instance's attribute storage from the attributes earlier
    instances of the same class were given, such as a ``MAX_LENGTH`` set by a workload).
    A txframe class is bound as ``tests/conftest.py`` binds it: both the framer type and
    ``dataReceived`` come from *impl*'s modules.
    Raises ``LookupError`` if *impl* is not available.
    """
    key = (impl, kind, counting)
    cls = None if fresh else _classes.get(key)
    if cls is not None:
        return cls
    strings = kind in STRING_KINDS
    if strings:
        callback = _counting_stringReceived if counting else _empty_stringReceived
        namespace: dict[str, Any] = {"stringReceived": callback}
    else:
        callback = _counting_lineReceived if counting else _empty_lineReceived
        namespace = {"lineReceived": callback}
    if counting:
        namespace.update(count=0, last=None)
    if impl == "twisted":
        base = getattr(twisted_basic, kind)
    else:
        modules = implementation_modules(impl)
        if modules is None:
            raise LookupError(f"txframe's {impl} framers are not available")
        lines_module, strings_module = modules
        base = getattr(txframe_basic, kind)
        if not strings:
            namespace["_lineFramer"] = lines_module.LineFramer
            namespace["dataReceived"] = lines_module.data_received
        else:
            framer = "NetstringFramer" if kind == "NetstringReceiver" else "PrefixFramer"
            namespace["_stringFramer"] = getattr(strings_module, framer)
            namespace["dataReceived"] = strings_module.string_data_received
    name = f"{impl.capitalize()}{'Counting' if counting else ''}{kind}"
    cls = type(name, (base,), namespace)
    if not fresh:
        _classes[key] = cls
    return cls


def connect(cls: type, workload: Workload) -> Any:
    """A fresh protocol of *cls*, set up for *workload* and connected to a StringTransport."""
    proto = cls()
    if workload.max_length is not None:
        proto.MAX_LENGTH = workload.max_length
    proto.makeConnection(StringTransport())
    return proto


def feed(proto: Any, chunks: tuple[bytes, ...]) -> Any:
    """The timed part: every chunk to ``dataReceived``. Returns *proto*."""
    receive = proto.dataReceived
    for chunk in chunks:
        receive(chunk)
    return proto


def leftover(proto: Any) -> bytes:
    """What *proto* still buffers (should be nothing after a whole workload)."""
    if isinstance(proto, txframe_basic._Framed):
        framer = proto._framer
        return b"" if framer is None else framer.buffered()
    if isinstance(proto, twisted_basic.IntNStringReceiver):
        return proto._unprocessed
    if isinstance(proto, twisted_basic.NetstringReceiver):
        if proto._state == proto._PARSING_PAYLOAD:  # a length read, its payload not done
            head = b"%d:" % (proto._expectedPayloadSize - 1)
            return head + proto._payload.getvalue() + proto._remainingData
        return proto._remainingData
    return proto._buffer


def check(proto: Any, workload: Workload) -> None:
    """Assert that a counting protocol received exactly *workload*'s frames."""
    assert proto.count == workload.count, (proto.count, workload.count)
    assert proto.last is not None and len(proto.last) == workload.length, (
        None if proto.last is None else len(proto.last),
        workload.length,
    )
    assert proto.last == workload.last, (proto.last[-40:], workload.last[-40:])
    assert leftover(proto) == b""
    assert not proto.transport.disconnecting
