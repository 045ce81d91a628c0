"""What the differential tests share: how scripted callbacks and their results are
recorded, and how a stream becomes a list of operations fed piece by piece."""

from __future__ import annotations

from typing import Any


class Boom(Exception):
    """Raised by scripted callbacks."""


def typed(value: Any) -> tuple[str, Any]:
    """A value with its type, so that 0, False, None and b"" stay distinct."""
    return (type(value).__name__, value)


def exception_record(exc: BaseException) -> tuple[Any, ...]:
    """How an exception escaping dataReceived/resumeProducing is recorded."""
    if isinstance(exc, (Boom, RuntimeError)):
        return ("raised", type(exc).__name__, exc.args)
    return ("raised", type(exc).__name__)


def as_kind(kind: str, chunk: bytes) -> Any:
    """*chunk* as ``bytes``, ``bytearray`` or ``memoryview``."""
    if kind == "bytearray":
        return bytearray(chunk)
    if kind == "memoryview":
        return memoryview(chunk)
    return chunk


def chunk_ops(stream: bytes, sizes: list[int], extras: list[Any], kinds: list[str]) -> list[Any]:
    """Ops feeding *stream* in pieces of *sizes* as *kinds* (both cycled), with *extras*
    (cycled; ``None`` for nothing, ``"empty"`` for feeding b"") after each piece."""
    ops: list[Any] = []
    pos = index = 0
    while pos < len(stream):
        size = sizes[index % len(sizes)]
        ops.append(("data", (kinds[index % len(kinds)], stream[pos : pos + size])))
        pos += size
        extra = extras[index % len(extras)]
        if extra == "empty":
            ops.append(("data", ("bytes", b"")))
        elif extra is not None:
            ops.append((extra, None))
        index += 1
    return ops
