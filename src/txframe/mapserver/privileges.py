"""Running as a service started by root: ``--user``/``--group`` (give up root once the
sockets are bound) and ``--unix-group``/``--unix-mode`` (who may connect to a unix
socket: Postfix's lookups run as the ``postfix`` user).

A unix socket gets its owner and mode between ``bind()`` and ``listen()``: it is created
with mode 0 (umask 0777) and only then opened to the group, so there is no moment at
which it accepts connections with the wrong permissions (before ``listen()`` a connect
is refused whatever the mode).
"""

from __future__ import annotations

import dataclasses
import os
import socket

try:
    import grp
    import pwd
except ImportError:  # not on a Unix: no user to become
    grp = pwd = None  # type: ignore[assignment]


class PrivilegeError(Exception):
    """A user or group that does not exist, or a change of identity that failed: the
    message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """Whom to become: ``uid``, ``gid`` and the supplementary ``groups``."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def lookup_group(text: str, option: str = "--group") -> int:
    """The gid of group *text* (a name, or a number)."""
    if grp is None:
        raise PrivilegeError(f"{option}: groups exist only on Unix")
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        if text.isdigit():
            return int(text)
        raise PrivilegeError(f"{option} {text}: no such group")


def lookup(user: str | None, group: str | None) -> Identity | None:
    """The identity ``--user USER --group GROUP`` name (None: neither given).

    The group defaults to the user's login group; the supplementary groups are the
    user's (as ``initgroups`` would set them). ``--group`` alone keeps the uid and drops
    every supplementary group.
    """
    if user is None and group is None:
        return None
    if pwd is None:
        raise PrivilegeError("--user/--group: users exist only on Unix")
    gid = lookup_group(group) if group is not None else None
    if user is None:
        assert gid is not None
        uid = os.getuid()
        return Identity(str(uid), uid, gid, ())
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        if not user.isdigit():
            raise PrivilegeError(f"--user {user}: no such user")
        try:
            entry = pwd.getpwuid(int(user))
        except KeyError:  # a bare uid: no name, no groups
            uid = int(user)
            return Identity(user, uid, gid if gid is not None else uid, ())
    if gid is None:
        gid = entry.pw_gid
    return Identity(entry.pw_name, entry.pw_uid, gid,
                    tuple(sorted(set(os.getgrouplist(entry.pw_name, gid)))))


def become(identity: Identity) -> None:
    """Change to *identity* for good: supplementary groups, then gid, then uid (the
    order that leaves nothing of root behind), and check that root cannot come back.

    :raises PrivilegeError: not root (and not already *identity*), or a change refused.
    """
    if (os.getuid(), os.getgid()) == (identity.uid, identity.gid) and os.geteuid() != 0:
        return  # already there (an unprivileged run naming its own user)
    try:
        os.setgroups(list(identity.groups))
        os.setgid(identity.gid)  # sets real, effective and saved gid as root
        os.setuid(identity.uid)
    except PermissionError:
        raise PrivilegeError(
            f"cannot become user {identity.name} (uid {identity.uid}, gid {identity.gid}): "
            "--user and --group need root"
        )
    if identity.uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:  # pragma: no cover - a kernel that lets us back
            raise PrivilegeError(f"still able to regain root after becoming {identity.name}")


@dataclasses.dataclass(frozen=True)
class SocketAccess:
    """Owner and mode for the ``--unix`` sockets (None: leave as created)."""

    uid: int = -1  # -1: unchanged (os.chown's convention)
    gid: int = -1
    mode: int | None = None

    @property
    def wanted(self) -> bool:
        return self.uid != -1 or self.gid != -1 or self.mode is not None


def socket_access(unix_group: str | None, unix_mode: int | None,
                  identity: Identity | None) -> SocketAccess:
    """What ``--unix-group``/``--unix-mode`` (and ``--user``) ask of a unix socket: the
    group given, mode 0660 when a group is given without a mode, and the user we become
    as its owner (so that the socket is the service's, not root's)."""
    gid = lookup_group(unix_group, "--unix-group") if unix_group is not None else -1
    if unix_mode is None and unix_group is not None:
        unix_mode = 0o660
    uid = identity.uid if identity is not None else -1
    return SocketAccess(uid, gid, unix_mode)


def bind_private(sock: socket.socket, path: str) -> None:
    """``sock.bind(path)`` creating the socket file with mode 0, for
    :func:`open_socket` to open once it has its owner. (The umask is the process's:
    serve-map binds before it starts threads that create files.)"""
    old = os.umask(0o777)
    try:
        sock.bind(path)
    finally:
        os.umask(old)


def open_socket(path: str, access: SocketAccess) -> None:
    """Give the socket file at *path* (bound by :func:`bind_private`, not yet
    listening) its owner and mode; without ``--unix-mode``, the mode the umask gives."""
    if access.uid != -1 or access.gid != -1:
        os.chown(path, access.uid, access.gid)
    if access.mode is not None:
        mode = access.mode
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o777 & ~umask
    os.chmod(path, mode)

