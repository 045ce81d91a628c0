"""The benchmark workloads and implementations, shared by compare.py and the pytest suite.

A :class:`Workload` is a stream of bytes for one protocol class (``LineReceiver`` or
``LineOnlyReceiver``), pre-cut into the chunks that are fed to ``dataReceived``, with
the ``MAX_LENGTH`` to set and the lines expected. :func:`standard_workloads` builds the
set from the issue:

* 1000 lines of 52 bytes (50 + CRLF) in 16, 64, 256, 1024 and 65536-byte chunks, to
  each class;
* one ``dataReceived`` of about 1 MiB of such lines (20164 whole lines), to each class;
* one 4 MiB line in 1 KiB chunks to ``LineReceiver`` (``MAX_LENGTH`` raised above it),
  and the same with 8 MiB, whose time ratio shows whether buffering is linear.

The sizes of the last two kinds can be scaled down (Twisted is quadratic there): the
pytest suite and ``compare.py --quick`` do so.

An *implementation* is one of :data:`IMPLEMENTATIONS`: ``"twisted"``
(``twisted.protocols.basic``), ``"compiled"`` (``txframe.basic`` bound to the Cython
framer) or ``"pure"`` (``txframe.basic`` bound to the pure-Python framer), bound the way
``tests/conftest.py`` does it: a subclass setting ``_lineFramer``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.testing import StringTransport
from twisted.protocols import basic as twisted_basic

from txframe import basic as txframe_basic

KIB = 1024
MIB = 1024 * KIB

KINDS = ("LineReceiver", "LineOnlyReceiver")
IMPLEMENTATIONS = ("twisted", "compiled", "pure")
CHUNK_SIZES = (16, 64, 256, 1024, 65536)

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


def make_lines(count: int) -> bytes:
    """*count* distinct lines of 50 printable bytes, each followed by CRLF."""
    filler = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    out = []
    for i in range(count):
        body = (b"%06d " % i + filler[i % 10 :])[:LINE_BODY]
        out.append(body + DELIMITER)
    return b"".join(out)


@dataclass
class Workload:
    """One stream of bytes for one protocol class."""

    name: str  # short id, e.g. "LineReceiver-1024" (also the pytest id)
    title: str  # for tables
    kind: str  # "LineReceiver" or "LineOnlyReceiver"
    data: bytes
    chunk_size: int
    lines: int  # lines the protocol must receive
    line_length: int  # length of each line, delimiter excluded
    max_length: int | None = None  # MAX_LENGTH to set on the instance, if any
    unit: str = "lines"  # rate reported as "lines" per second or "bytes" per second
    group: str = "lines"  # "lines", "one-chunk" or "big-line"
    nominal: int = 0  # one-chunk: the size asked for; big-line: the line's length
    _chunks: tuple[bytes, ...] | None = field(default=None, repr=False)

    @property
    def chunks(self) -> tuple[bytes, ...]:
        """The data cut into ``chunk_size`` pieces (cut once, then reused)."""
        if self._chunks is None:
            data, size = self.data, self.chunk_size
            self._chunks = tuple(data[i : i + size] for i in range(0, len(data), size))
        return self._chunks

    def amount(self) -> int:
        """What one run processes, in :attr:`unit`."""
        return self.lines if self.unit == "lines" else len(self.data)


def standard_workloads(
    *, one_chunk: int = FULL_ONE_CHUNK, big_lines: tuple[int, ...] = FULL_BIG_LINES
) -> list[Workload]:
    """The issue's workloads; *one_chunk* and *big_lines* set the sizes of the big ones."""
    lines = make_lines(LINE_COUNT)
    result = []
    for kind in KINDS:
        for size in CHUNK_SIZES:
            result.append(
                Workload(
                    name=f"{kind}-{size}",
                    title=f"{kind}, {LINE_COUNT} × {LINE_SIZE} B lines, {size} B chunks",
                    kind=kind,
                    data=lines,
                    chunk_size=size,
                    lines=LINE_COUNT,
                    line_length=LINE_BODY,
                )
            )
    count = one_chunk // LINE_SIZE  # whole lines only
    many = make_lines(count)
    for kind in KINDS:
        result.append(
            Workload(
                name=f"{kind}-{size_label(one_chunk)}",
                title=f"{kind}, {count} × {LINE_SIZE} B lines, one "
                f"{pretty_size(one_chunk)} chunk",
                kind=kind,
                data=many,
                chunk_size=len(many),
                lines=count,
                line_length=LINE_BODY,
                group="one-chunk",
                nominal=one_chunk,
            )
        )
    for length in big_lines:
        result.append(
            Workload(
                name=f"LineReceiver-line-{size_label(length)}",
                title=f"LineReceiver, one {pretty_size(length)} line, "
                f"{pretty_size(BIG_LINE_CHUNK)} chunks",
                kind="LineReceiver",
                data=b"y" * length + DELIMITER,
                chunk_size=BIG_LINE_CHUNK,
                lines=1,
                line_length=length,
                max_length=length + 1,
                unit="bytes",
                group="big-line",
                nominal=length,
            )
        )
    return result


# -- implementations ---------------------------------------------------------------


def framer_type(impl: str) -> Any:
    """The framer class of a txframe implementation, or None if it is not built."""
    name = {"compiled": "txframe._lines_c", "pure": "txframe._lines_py"}[impl]
    try:
        return importlib.import_module(name).LineFramer
    except ImportError:
        return None


def available(impl: str) -> bool:
    return impl == "twisted" or framer_type(impl) is not None


def _empty_lineReceived(self: Any, line: bytes) -> None:
    pass


def _counting_lineReceived(self: Any, line: bytes) -> None:
    self.count += 1
    self.last = line


_classes: dict[tuple[str, str, bool], type] = {}


def protocol_class(impl: str, kind: str, counting: bool = False, fresh: bool = False) -> type:
    """The *kind* protocol class of *impl*, with an empty (or counting) lineReceived.

    A counting class records ``count`` (lines received) and ``last`` (the last line).
    Classes are cached; ``fresh=True`` makes a new one, e.g. for measuring instance
    sizes (CPython sizes an instance's attribute storage from the attributes earlier
    instances of the same class were given, such as a ``MAX_LENGTH`` set by a workload).
    Raises ``LookupError`` if *impl* is not available.
    """
    key = (impl, kind, counting)
    cls = None if fresh else _classes.get(key)
    if cls is not None:
        return cls
    namespace: dict[str, Any] = {
        "lineReceived": _counting_lineReceived if counting else _empty_lineReceived
    }
    if counting:
        namespace.update(count=0, last=None)
    if impl == "twisted":
        base = getattr(twisted_basic, kind)
    else:
        framer = framer_type(impl)
        if framer is None:
            raise LookupError(f"txframe's {impl} framer is not available")
        base = getattr(txframe_basic, kind)
        namespace["_lineFramer"] = framer
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
    if isinstance(proto, txframe_basic._LineProtocol):
        framer = proto._framer
        return b"" if framer is None else framer.buffered()
    return proto._buffer


def check(proto: Any, workload: Workload) -> None:
    """Assert that a counting protocol received exactly *workload*'s lines."""
    assert proto.count == workload.lines, (proto.count, workload.lines)
    assert proto.last is not None and len(proto.last) == workload.line_length
    assert not proto.last.endswith(b"\r")
    assert leftover(proto) == b""
    assert not proto.transport.disconnecting
