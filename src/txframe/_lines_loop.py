"""The loop that hands a LineOnlyReceiver's lines to ``lineReceived`` when one
``dataReceived`` call completes several (used by ``_lines_c``).

It is Python on purpose: CPython calls a Python method from its own bytecode (a
specialised call, no new C frame) for well under half of what the same call costs
from C, and reads ``transport.disconnecting`` the same way. That is most of the work
per line of a LineOnlyReceiver; the framer finds the lines and does everything else.
Entering this function costs about what two calls from C do, so the framer calls it
only when a second line is already there.
"""

from __future__ import annotations

from typing import Any, Iterable


def deliver_lines(sink: Any, lines: Iterable[bytes], transport: Any) -> None:
    """Each of *lines* to ``sink.lineReceived`` until the connection is closing."""
    for line in lines:
        sink.lineReceived(line)
        if transport is not None and transport.disconnecting:
            return
