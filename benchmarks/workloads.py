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

The AMP workloads (:func:`amp_decode_workloads`, :func:`amp_encode_workloads`,
:func:`amp_roundtrip_workload`) use the boxes a client calling :class:`Sum` (two
Integers and a Unicode, answered by one Integer) sends: 5 keys (``_ask``,
``_command``, ``a``, ``b``, ``text``), about 60 bytes on the wire each:

* 10,000 such boxes in 64 KiB chunks to ``BinaryBoxProtocol.dataReceived``, whose box
  receiver does nothing (``unit="boxes"``);
* the same boxes encoded: Twisted's ``AmpBox.serialize`` against each
  implementation's ``encode_box`` (and, for the implementation ``txframe.framing``
  selected, ``txframe.amp.AmpBox.serialize``);
* ``callRemote(Sum, ...)`` round trips over loopback TCP, measured by
  ``amp_roundtrip.py`` in a process of its own per run (a reactor cannot restart).

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
implementation into the other. The AMP classes are ``txframe.amp``'s bound to the
implementation's box codec (``_boxFramer``, ``_encodeBox`` and, for ``AMP``,
``_schemaType``), against ``twisted.protocols.amp``'s.
"""

from __future__ import annotations

import importlib
import struct
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from twisted.internet.testing import StringTransport
from twisted.protocols import amp as twisted_amp
from twisted.protocols import basic as twisted_basic

import txframe.framing
from txframe import amp as txframe_amp
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

# -- AMP ---------------------------------------------------------------------------

BOX_KIND = "BinaryBoxProtocol"
BOX_COUNT = 10_000
BOX_CHUNK_SIZES = (64 * KIB,)
#: callRemote round trips: calls outstanding at any time, calls timed and calls made
#: first untimed (compare.py's; ``--quick`` uses the QUICK_ ones)
ROUNDTRIP_WINDOW = 200
ROUNDTRIP_CALLS = 20_000
ROUNDTRIP_WARMUP = 2_000
QUICK_ROUNDTRIP_CALLS = 2_000
QUICK_ROUNDTRIP_WARMUP = 500


class Sum(twisted_amp.Command):
    """The benchmarks' command: two Integers and a Unicode, answered by one Integer.

    ``txframe.amp.Command`` is ``twisted.protocols.amp.Command`` (as are the Argument
    types), so this one class serves Twisted's AMP and txframe's alike.
    """

    arguments = [
        (b"a", twisted_amp.Integer()),
        (b"b", twisted_amp.Integer()),
        (b"text", twisted_amp.Unicode()),
    ]
    response = [(b"total", twisted_amp.Integer())]


def call_arguments(i: int) -> dict[str, Any]:
    """The keyword arguments of the *i*-th call (from 0) of :class:`Sum`."""
    return {"a": 10_000 + i, "b": 100 + i % 900, "text": "hello"}


def make_boxes(count: int) -> list[dict[bytes, bytes]]:
    """The boxes of the first *count* calls of :class:`Sum`, as ``callRemote`` sends
    them (tags ``1``, ``2``, ... in hex): 5 keys, 57-60 bytes on the wire."""
    boxes = []
    for i in range(count):
        kw = call_arguments(i)
        boxes.append(
            {
                b"_ask": b"%x" % (i + 1),
                b"_command": Sum.commandName,
                b"a": b"%d" % kw["a"],
                b"b": b"%d" % kw["b"],
                b"text": kw["text"].encode("utf-8"),
            }
        )
    return boxes


#: the groups of workloads, by family
LINE_GROUPS = ("lines", "one-chunk", "big-line")
STRING_GROUPS = ("strings", "big-string")
AMP_GROUPS = ("boxes", "encode", "roundtrip")
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
    length: int  # length of each frame, framing excluded (AMP: the box on the wire)
    last: Any  # the last frame (bytes, or for AMP the box) the protocol must receive
    max_length: int | None = None  # MAX_LENGTH to set on the instance, if any
    unit: str = "lines"  # rate reported in "lines", "strings", "boxes" or "bytes" per second
    group: str = "lines"  # see LINE_GROUPS, STRING_GROUPS and AMP_GROUPS
    nominal: int = 0  # one-chunk: the size asked for; big-*: the frame's length
    skip: frozenset[str] = frozenset()  # implementations not to run it on
    skip_reason: str = ""
    _chunks: tuple[bytes, ...] | None = field(default=None, repr=False)

    @property
    def family(self) -> str:
        """``"lines"``, ``"strings"`` or ``"amp"``."""
        if self.kind == BOX_KIND:
            return "amp"
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


def amp_decode_workloads(count: int = BOX_COUNT) -> list[Workload]:
    """*count* boxes of :func:`make_boxes`, in each of ``BOX_CHUNK_SIZES``, to
    ``BinaryBoxProtocol``."""
    boxes = make_boxes(count)
    data = b"".join(twisted_amp.AmpBox(box).serialize() for box in boxes)
    mean = round(len(data) / count)
    return [
        Workload(
            name=f"AMP-decode-{size}",
            title=f"{BOX_KIND}, {count:,} × 5-key boxes ({mean} B), "
            f"{pretty_size(size)} chunks",
            kind=BOX_KIND,
            data=data,
            chunk_size=size,
            count=count,
            length=mean,
            last=boxes[-1],
            unit="boxes",
            group="boxes",
        )
        for size in BOX_CHUNK_SIZES
    ]


#: the encoders: each implementation's ``encode_box``, or the ``serialize`` of
#: txframe.amp's AmpBox (whose codec txframe.framing selects); Twisted's is always
#: ``twisted.protocols.amp.AmpBox.serialize``
ENCODE_BOX = "encode_box"
AMPBOX_SERIALIZE = "AmpBox.serialize"


@dataclass
class EncodeWorkload:
    """Boxes to encode one by one; each implementation must write Twisted's bytes."""

    name: str
    title: str
    encoder: str  # ENCODE_BOX or AMPBOX_SERIALIZE (txframe's side)
    boxes: list[dict[bytes, bytes]]
    expected: list[bytes]  # Twisted's serialization of each box
    skip: frozenset[str] = frozenset()
    skip_reason: str = ""
    kind: str = "AmpBox"
    unit: str = "boxes"
    group: str = "encode"
    family: str = "amp"

    @property
    def count(self) -> int:
        return len(self.boxes)

    def amount(self) -> int:
        return len(self.boxes)

    def runs_on(self, impl: str) -> bool:
        return impl not in self.skip


def amp_encode_workloads(count: int = BOX_COUNT) -> list[EncodeWorkload]:
    """The boxes of :func:`make_boxes` through ``encode_box`` (each implementation's)
    and through ``AmpBox.serialize`` (txframe's only for the implementation
    txframe.framing selected)."""
    boxes = make_boxes(count)
    expected = [twisted_amp.AmpBox(box).serialize() for box in boxes]
    active = txframe.framing.implementation
    other = frozenset({"compiled", "pure"} - {active})
    return [
        EncodeWorkload(
            name="AMP-encode_box",
            title=f"encode {count:,} × 5-key boxes: Twisted AmpBox.serialize() vs "
            "txframe encode_box(box)",
            encoder=ENCODE_BOX,
            boxes=boxes,
            expected=expected,
        ),
        EncodeWorkload(
            name="AMP-AmpBox.serialize",
            title=f"encode {count:,} × 5-key boxes: AmpBox.serialize() "
            f"(txframe.amp's uses the {active} codec)",
            encoder=AMPBOX_SERIALIZE,
            boxes=boxes,
            expected=expected,
            skip=other,
            skip_reason=f"txframe.amp.AmpBox uses the codec txframe.framing selected ({active})",
        ),
    ]


def encoder(impl: str, workload: EncodeWorkload) -> tuple[Any, list[Any]]:
    """``(encode, boxes)`` for *impl* on *workload*: the timed body is
    ``for box in boxes: encode(box)``. The boxes are made here (untimed) of the type
    each encoder is given in use: Twisted's AmpBox for Twisted, txframe.amp's AmpBox
    for its serialize, a plain dict for ``encode_box``."""
    if impl == "twisted":
        return twisted_amp.AmpBox.serialize, [twisted_amp.AmpBox(b) for b in workload.boxes]
    if workload.encoder == AMPBOX_SERIALIZE:
        return txframe_amp.AmpBox.serialize, [txframe_amp.AmpBox(b) for b in workload.boxes]
    module = boxes_module(impl)
    if module is None:
        raise LookupError(f"txframe's {impl} box codec is not available")
    return module.encode_box, [dict(b) for b in workload.boxes]


def encode_all(encode: Any, boxes: list[Any]) -> None:
    """The timed part of an encoding run."""
    for box in boxes:
        encode(box)


def check_encoding(impl: str, workload: EncodeWorkload) -> None:
    """Assert that *impl* encodes every box of *workload* as Twisted does."""
    encode, boxes = encoder(impl, workload)
    got = [encode(box) for box in boxes]
    assert len(got) == len(workload.expected)
    for i, (mine, theirs) in enumerate(zip(got, workload.expected)):
        assert mine == theirs, (i, mine, theirs)


@dataclass
class RoundTripWorkload:
    """``callRemote(Sum, ...)`` round trips over loopback TCP, client and server of
    one implementation in one process (``amp_roundtrip.py``)."""

    name: str
    title: str
    count: int  # calls timed
    window: int  # calls outstanding
    warmup: int  # calls made first, untimed
    skip: frozenset[str] = frozenset()
    skip_reason: str = ""
    kind: str = "AMP"
    unit: str = "calls"
    group: str = "roundtrip"
    family: str = "amp"

    def amount(self) -> int:
        return self.count

    def runs_on(self, impl: str) -> bool:
        return impl not in self.skip


def amp_roundtrip_workload(
    calls: int = ROUNDTRIP_CALLS, window: int = ROUNDTRIP_WINDOW, warmup: int = ROUNDTRIP_WARMUP
) -> RoundTripWorkload:
    return RoundTripWorkload(
        name="AMP-callRemote",
        title=f"AMP callRemote round trips over loopback TCP, {calls:,} calls, "
        f"{window} outstanding (client and server in one process)",
        count=calls,
        window=window,
        warmup=warmup,
    )


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


def boxes_module(impl: str) -> ModuleType | None:
    """The AMP box codec module of a txframe implementation, or None if not built."""
    suffix = {"compiled": "c", "pure": "py"}[impl]
    try:
        return importlib.import_module(f"txframe._boxes_{suffix}")
    except ImportError:
        return None


def available(impl: str, family: str | None = None) -> bool:
    """Whether *impl* can run the workloads of *family* (``"amp"`` needs the box codec;
    the others, and None, the line and string framers)."""
    if impl == "twisted":
        return True
    if family == "amp":
        return boxes_module(impl) is not None
    return implementation_modules(impl) is not None


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


class NullBoxReceiver:
    """A box receiver that does nothing (the decoding workload's)."""

    def startReceivingBoxes(self, boxSender: Any) -> None:
        pass

    def ampBoxReceived(self, box: Any) -> None:
        pass

    def stopReceivingBoxes(self, reason: Any) -> None:
        pass


class CountingBoxReceiver(NullBoxReceiver):
    """A box receiver that records ``count`` (boxes received) and ``last`` (the last)."""

    def __init__(self) -> None:
        self.count = 0
        self.last: Any = None

    def ampBoxReceived(self, box: Any) -> None:
        self.count += 1
        self.last = box


class CollectingBoxReceiver(NullBoxReceiver):
    """A box receiver that keeps every box (``boxes``): for untimed checks."""

    def __init__(self) -> None:
        self.boxes: list[Any] = []

    def ampBoxReceived(self, box: Any) -> None:
        self.boxes.append(box)


def _box_protocol_init(base: type, receiver: type) -> Any:
    def __init__(self: Any) -> None:
        base.__init__(self, receiver())

    return __init__


def box_protocol_class(impl: str, receiver: type = NullBoxReceiver) -> type:
    """*impl*'s BinaryBoxProtocol, made without arguments, with a fresh *receiver*
    as its ``boxReceiver``. txframe's is bound as ``tests/conftest.py`` binds it.
    Raises ``LookupError`` if *impl* is not available."""
    namespace: dict[str, Any] = {}
    if impl == "twisted":
        base: type = twisted_amp.BinaryBoxProtocol
    else:
        module = boxes_module(impl)
        if module is None:
            raise LookupError(f"txframe's {impl} box codec is not available")
        base = txframe_amp.BinaryBoxProtocol
        namespace["_boxFramer"] = module.BoxFramer
        namespace["_encodeBox"] = staticmethod(module.encode_box)
    namespace["__init__"] = _box_protocol_init(base, receiver)
    return type(f"{impl.capitalize()}{receiver.__name__}{BOX_KIND}", (base,), namespace)


def amp_class(impl: str) -> type:
    """*impl*'s AMP: Twisted's, or txframe.amp's bound to the implementation's codec
    (subclass it, e.g. with responders). Raises ``LookupError`` if not available."""
    if impl == "twisted":
        return twisted_amp.AMP
    module = boxes_module(impl)
    if module is None:
        raise LookupError(f"txframe's {impl} box codec is not available")
    return type(
        f"{impl.capitalize()}AMP",
        (txframe_amp.AMP,),
        {
            "_boxFramer": module.BoxFramer,
            "_encodeBox": staticmethod(module.encode_box),
            "_schemaType": module.Schema,
        },
    )


def collect_boxes(impl: str, workload: Workload) -> list[Any]:
    """Every box *impl*'s BinaryBoxProtocol delivers for *workload* (untimed)."""
    cls = box_protocol_class(impl, CollectingBoxReceiver)
    proto = feed(connect(cls, workload), workload.chunks)
    assert leftover(proto) == b""
    return proto.boxReceiver.boxes


_classes: dict[tuple[str, str, bool], type] = {}


def protocol_class(impl: str, kind: str, counting: bool = False, fresh: bool = False) -> type:
    """The *kind* protocol class of *impl*, with an empty (or counting) lineReceived /
    stringReceived.

    A counting class records ``count`` (frames received) and ``last`` (the last one).
    Classes are cached; ``fresh=True`` makes a new one, e.g. for measuring instance
    sizes (CPython sizes an instance's attribute storage from the attributes earlier
    instances of the same class were given, such as a ``MAX_LENGTH`` set by a workload).
    A txframe class is bound as ``tests/conftest.py`` binds it: both the framer type and
    ``dataReceived`` come from *impl*'s modules. For ``BOX_KIND`` it is
    :func:`box_protocol_class` (the counting one counts on its ``boxReceiver``).
    Raises ``LookupError`` if *impl* is not available.
    """
    key = (impl, kind, counting)
    cls = None if fresh else _classes.get(key)
    if cls is not None:
        return cls
    if kind == BOX_KIND:
        cls = box_protocol_class(impl, CountingBoxReceiver if counting else NullBoxReceiver)
        if not fresh:
            _classes[key] = cls
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
    if workload.family == "amp":
        receiver = proto.boxReceiver
        assert receiver.count == workload.count, (receiver.count, workload.count)
        assert isinstance(receiver.last, twisted_amp.AmpBox), type(receiver.last)
        assert receiver.last == workload.last, (receiver.last, workload.last)
        assert leftover(proto) == b""
        if isinstance(proto, twisted_amp.BinaryBoxProtocol) and not isinstance(
            proto, txframe_amp.BinaryBoxProtocol
        ):
            assert proto._currentBox is None  # no box begun
        assert not proto.transport.disconnecting
        return
    assert proto.count == workload.count, (proto.count, workload.count)
    assert proto.last is not None and len(proto.last) == workload.length, (
        None if proto.last is None else len(proto.last),
        workload.length,
    )
    assert proto.last == workload.last, (proto.last[-40:], workload.last[-40:])
    assert leftover(proto) == b""
    assert not proto.transport.disconnecting
