"""The sockets serve-map listens on: inet (every address of a host, SO_REUSEPORT for
workers) and unix (a stale socket file replaced, a live one refused).

Errors are :class:`~.config.ServeError`: one line naming the address and the reason.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from typing import Any

from .config import ServeError, format_address

BACKLOG = max(socket.SOMAXCONN, 1024)


def bind_inet(host: str | None, port: int, reuse_port: bool) -> list[socket.socket]:
    """Sockets bound (not listening) to every address of *host* (every interface for
    None) on *port*; for port 0, all on the port the first one got."""
    where = format_address(host, port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ServeError(f"cannot listen on {where}: {host}: {error.strerror}") from None
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except OSError as error:
        for sock in sockets:
            sock.close()
        raise ServeError(f"cannot listen on {where}: {error.strerror or error}") from None
    return sockets


def bind_unix(path: str, mode: int | None) -> tuple[socket.socket, Any]:
    """A listening unix socket at *path* with *mode*; a stale socket file left there
    by a dead server is replaced. Returns the socket and the file's (dev, ino)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise ServeError(f"--unix {path}: {error.strerror}") from None
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise ServeError(f"--unix {path}: exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # nobody listens there: a leftover
        else:
            raise ServeError(f"--unix {path}: another server is listening there")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o777 & ~mode) if mode is not None else None
    try:
        sock.bind(path)
    except OSError as error:
        sock.close()
        raise ServeError(f"cannot listen on {path}: {error.strerror or error}") from None
    finally:
        if umask is not None:
            os.umask(umask)
    if mode is not None:
        os.chmod(path, mode)
    sock.listen(BACKLOG)
    st = os.stat(path)
    return sock, (st.st_dev, st.st_ino)


def unlink_unix(path: str, identity: Any) -> None:
    """Remove our socket file, unless another server has replaced it since."""
    try:
        st = os.stat(path)
        if (st.st_dev, st.st_ino) == identity:
            os.unlink(path)
    except OSError:
        pass


def bound(server: asyncio.AbstractServer) -> list[tuple[str, int]]:
    """The addresses an asyncio server listens on."""
    return [sock.getsockname()[:2] for sock in server.sockets]  # type: ignore[attr-defined]
