"""Linux's TCP socket tables (``/proc/net/tcp`` and ``/proc/net/tcp6``): who owns a
connection.

Each line of those files is one socket: its local and remote address as hex (each
32-bit word in the host's byte order), its state, the uid that owns it and its inode
(0 for a connection no socket holds any more, e.g. in TIME-WAIT).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

__all__ = ["TABLES", "Entry", "canonical_host", "find_owner", "parse_entry", "read_entries"]

#: The tables searched, IPv4 first.
TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


class Entry(NamedTuple):
    """One socket of a table."""

    local: tuple[str, int]
    remote: tuple[str, int]
    uid: int
    inode: int


def canonical_host(host: str) -> str:
    """*host* as the tables show it: IPv4-mapped IPv6 addresses (``::ffff:1.2.3.4``,
    what a dual-stack socket reports for IPv4 peers) as plain IPv4, IPv6 compressed
    and without a zone."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def host_from_hex(text: str) -> str:
    """A table's hex address (8 digits for IPv4, 32 for IPv6) as text."""
    words = b"".join(struct.pack("=L", int(text[i : i + 8], 16)) for i in range(0, len(text), 8))
    if len(words) == 4:
        return str(ipaddress.IPv4Address(words))
    return canonical_host(str(ipaddress.IPv6Address(words)))


def unpack_address(text: str) -> tuple[str, int]:
    """``HEXHOST:HEXPORT`` as ``(host, port)``."""
    host, port = text.split(":")
    return host_from_hex(host), int(port, 16)


def parse_entry(line: str) -> Entry:
    """One line of a table (not its header) as an :class:`Entry`."""
    fields = line.split()
    return Entry(unpack_address(fields[1]), unpack_address(fields[2]), int(fields[7]), int(fields[9]))


def read_entries(paths: Iterable[str] = TABLES) -> Iterator[str]:
    """The lines of the tables at *paths*, without their headers; a table the kernel
    does not have (no IPv6) is skipped."""
    for path in paths:
        try:
            table = open(path, encoding="ascii")
        except FileNotFoundError:
            continue
        with table:
            table.readline()
            for line in table:
                yield line.strip()


def find_owner(
    local: tuple[str, int],
    remote: tuple[str, int],
    lines: Iterable[str],
    parse: Callable[[str], tuple[tuple[str, int], tuple[str, int], int]] | None = None,
) -> int | None:
    """The uid owning the connection from *local* to *remote* among the table
    *lines*, or None when no socket holds it. *parse* reads a line as ``(local,
    remote, uid)`` in place of :func:`parse_entry` (every line is then parsed)."""
    local = (canonical_host(local[0]), local[1])
    remote = (canonical_host(remote[0]), remote[1])
    # Compare the ports as the tables write them first: most lines differ there.
    local_port, remote_port = f":{local[1]:04X}", f":{remote[1]:04X}"
    for line in lines:
        if parse is None:
            fields = line.split(None, 3)
            if len(fields) < 3 or not (
                fields[1].endswith(local_port) and fields[2].endswith(remote_port)
            ):
                continue
            here, there, uid, inode = parse_entry(line)
        else:
            (host, port), (peer, peer_port), uid = parse(line)
            here, there = (canonical_host(host), port), (canonical_host(peer), peer_port)
            inode = _inode(line)
        if here == local and there == remote and inode:
            return uid
    return None


def _inode(line: str) -> int:
    """A table line's inode; 1 (held) for a line that has none."""
    try:
        return int(line.split()[9])
    except (IndexError, ValueError):
        return 1
