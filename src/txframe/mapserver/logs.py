"""serve-map's log lines: to stderr, with a timestamp unless journald (or another
supervisor that stamps lines, ``--no-timestamps``) adds its own, and the client named
in debug lines.

Under journald, lines also start with the syslog priority (``<3>`` for an error,
sd-daemon(3)), which journald turns into the entry's priority and strips.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
from typing import Any, TextIO

# sd-daemon(3) priorities, from logging's levels
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


def under_journald(stream: TextIO | None = None) -> bool:
    """Whether *stream* (stderr) is the journal stream systemd connected: systemd sets
    ``$JOURNAL_STREAM`` to its ``DEVICE:INODE``, which a redirected stderr (or a child
    that inherited the variable with another stderr) does not match."""
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


class _Formatter(logging.Formatter):
    def __init__(self, who: str, timestamps: bool, priorities: bool) -> None:
        stamp = "%(asctime)s " if timestamps else ""
        super().__init__(f"{stamp}{who}[%(process)d] %(levelname)s: %(message)s")
        self._priorities = priorities

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self._priorities:
            # every line of a multi-line record (a traceback) gets the priority
            prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
            text = "\n".join(prefix + line for line in text.split("\n"))
        return text


def setup_logging(level: str, worker: int | None = None,
                  timestamps: bool | None = None) -> None:
    """Log at *level* to stderr. *timestamps* None: unless under journald."""
    journald = under_journald()
    if timestamps is None:
        timestamps = not journald
    who = "txframe serve-map" if worker is None else f"txframe serve-map worker {worker}"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(who, timestamps, journald))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)


def describe_peer(transport: Any) -> str:
    """The client at the other end of *transport*, for debug lines: ``127.0.0.1:40312``,
    ``[::1]:40312``, or for a unix socket the peer's process and user
    (``unix pid 812 uid 102 (postfix)``)."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX and hasattr(socket, "SO_PEERCRED"):
        try:
            pid, uid, _ = struct.unpack(
                "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            )
        except OSError:
            return "unix"
        return f"unix pid {pid} uid {uid}{_user_name(uid)}"
    return "unix" if sock is not None and sock.family == socket.AF_UNIX else "unknown"


def _user_name(uid: int) -> str:
    try:
        import pwd

        return f" ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return ""
