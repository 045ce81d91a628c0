"""Test helpers: Twisted's ``AccumulatingProtocol`` and chunked delivery.

``AccumulatingProtocol`` has the API of :class:`twisted.internet.testing.AccumulatingProtocol`
but collects data in linear time (Twisted's concatenates on every call). ``deliver``
feeds bytes to any protocol in chunks of given sizes, down to one byte, as the
``IProtocol.dataReceived`` documentation asks protocol tests to do.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Iterator
from typing import Any

from twisted.internet import protocol, testing as _testing

from . import _reexport

# txframe's names, then every other public name of Twisted's module (StringTransport,
# MemoryReactor, ...): a star import binds what Twisted's does
__all__ = _reexport.exported(_testing, ["AccumulatingProtocol", "chunks", "deliver"])


def __getattr__(name: str) -> Any:
    """Every other public name of :mod:`twisted.internet.testing`, as Twisted's object."""
    return _reexport.attribute(_testing, name, __name__)


class AccumulatingProtocol(protocol.Protocol):
    """Collects the data delivered to it; can fire Deferreds on connect and disconnect.

    :ivar made: 1 once ``connectionMade`` was called.
    :ivar data: all the bytes passed to ``dataReceived`` (assignable, e.g. ``b""``).
    :ivar closed: 1 once ``connectionLost`` was called.
    :ivar closedReason: the *reason* given to ``connectionLost``.
    :ivar closedDeferred: if set, fired with ``None`` by ``connectionLost``.
    :ivar factory: if it has a ``protocolConnectionMade`` Deferred, that is fired with
        this protocol by ``connectionMade`` (and reset to ``None``).
    """

    made = closed = 0
    closedReason: Any = None
    closedDeferred: Any = None
    factory: Any = None
    _chunks: list[bytes] | None = None

    @property
    def data(self) -> bytes:
        received = self._chunks
        if not received:
            return b""
        if len(received) > 1:
            received[:] = [b"".join(received)]
        return received[0]

    @data.setter
    def data(self, value: bytes) -> None:
        self._chunks = [bytes(value)]

    def connectionMade(self) -> None:
        self.made = 1
        factory = self.factory
        waiting = getattr(factory, "protocolConnectionMade", None)
        if waiting is not None:
            factory.protocolConnectionMade = None
            waiting.callback(self)

    def dataReceived(self, data: bytes) -> None:
        if type(data) is not bytes:  # keep a copy, as Twisted's concatenation does
            data = bytes(data)
        received = self._chunks
        if received is None:
            self._chunks = [data]
        else:
            received.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = 1
        self.closedReason = reason
        if self.closedDeferred is not None:
            waiting, self.closedDeferred = self.closedDeferred, None
            waiting.callback(None)


def chunks(data: bytes, sizes: int | Iterable[int] = 1) -> Iterator[bytes]:
    """Cut *data* into pieces of the given sizes; the last piece may be shorter.

    *sizes* is an int (every piece that size; the default, 1, is one byte at a time)
    or a finite sequence of ints, used in turn and repeated from its start until the
    data runs out: ``chunks(b"abcdef", [1, 2])`` gives ``b"a", b"bc", b"d", b"ef"``.

    :raises ValueError: at once, for a size below 1 or an empty sequence.
    :raises TypeError: for a size that is not an int.
    """
    return _cut(data, _sizes(sizes))


def _sizes(sizes: int | Iterable[int]) -> tuple[int, ...]:
    """*sizes* as the checked tuple ``chunks`` cycles through."""
    if isinstance(sizes, Iterable):
        cycle = tuple(operator.index(size) for size in sizes)
        if not cycle:
            raise ValueError("chunk sizes: an empty sequence")
    else:
        cycle = (operator.index(sizes),)
    for size in cycle:
        if size < 1:
            raise ValueError(f"chunk sizes must be positive, not {size}")
    return cycle


def _cut(data: bytes, cycle: tuple[int, ...]) -> Iterator[bytes]:
    offset = 0
    for size in itertools.cycle(cycle):
        if offset >= len(data):
            return
        yield data[offset : offset + size]
        offset += size


def deliver(proto: Any, data: bytes, sizes: int | Iterable[int] = 1) -> list[Any]:
    """Feed *data* to ``proto.dataReceived`` in chunks of *sizes* (as :func:`chunks`
    cuts them); return what each call returned.

    Like a real transport, it stops once ``proto.transport.disconnecting`` is set.
    Bad sizes raise before anything is delivered.
    """
    results = []
    for piece in chunks(data, sizes):
        transport = getattr(proto, "transport", None)
        if transport is not None and transport.disconnecting:
            break
        results.append(proto.dataReceived(piece))
    return results
