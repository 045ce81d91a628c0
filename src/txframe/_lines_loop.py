"""The loop that hands a LineOnlyReceiver's lines to ``lineReceived`` when one
``dataReceived`` call has several (``_lines_c`` calls it).

It is Python on purpose: from 3.11 on, CPython calls a Python method from its own
bytecode (a specialised call, no new C frame) for well under half of what the same
call costs from C, and reads ``transport.disconnecting`` the same way. That is most
of a LineOnlyReceiver's work per line; the framer finds the lines and, when they
need more than that (settings to read, a line too long, a pause), takes over again.
"""

from __future__ import annotations

from typing import Any, Iterable


def deliver_lines(sink: Any, lines: Iterable[bytes], transport: Any) -> None:
    """Each of *lines* to ``sink.lineReceived`` until the connection is closing."""
    for line in lines:
        sink.lineReceived(line)
        if transport is not None and transport.disconnecting:
            return
