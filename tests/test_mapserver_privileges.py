"""Giving up root and giving the unix socket to Postfix (txframe.mapserver.privileges):
the identity changes run in child processes (they cannot be undone), as root, with the
machine's real users (``nobody``, ``postfix``)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from peer_rule import unavailable

pwd = pytest.importorskip("pwd", reason="users and groups are Unix's")
from txframe.mapserver import privileges
from txframe.mapserver.privileges import PrivilegeError


def need_root() -> None:
    if os.geteuid() != 0:
        unavailable("changing users needs root")


def need_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        unavailable(f"no user {name!r} on this machine")


_BECOME = """
import json, os, sys
from txframe.mapserver import privileges
try:
    for user, group in json.loads(sys.argv[1]):  # one identity after another
        privileges.become(privileges.lookup(user, group))
except privileges.PrivilegeError as error:
    print(json.dumps({"error": str(error)}))
else:
    print(json.dumps({"uid": os.getresuid(), "gid": os.getresgid(),
                      "groups": sorted(os.getgroups())}))
"""


def become(user: str | None, group: str | None, first: str | None = None) -> dict:
    """Become *user*/*group* in a child process (after becoming user *first*)."""
    steps = ([[first, None]] if first else []) + [[user, group]]
    out = subprocess.run(
        [sys.executable, "-c", _BECOME, json.dumps(steps)],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return json.loads(out.stdout)


def test_become_user():
    need_root()
    entry = need_user("postfix")
    got = become("postfix", None)
    assert got["uid"] == [entry.pw_uid] * 3
    assert got["gid"] == [entry.pw_gid] * 3
    # root's supplementary groups are gone; the user's own are set
    assert got["groups"] == sorted(set(os.getgrouplist("postfix", entry.pw_gid)))
    assert 0 not in got["groups"]


def test_become_user_and_group():
    need_root()
    entry = need_user("nobody")
    gid = privileges.lookup_group("nogroup") if _has_group("nogroup") else entry.pw_gid
    got = become("nobody", str(gid))
    assert got["uid"] == [entry.pw_uid] * 3
    assert got["gid"] == [gid] * 3
    assert 0 not in got["groups"]


def test_group_alone_clears_supplementary_groups():
    need_root()
    got = become(None, "nogroup" if _has_group("nogroup") else "65534")
    assert got["uid"] == [0, 0, 0]
    assert got["gid"] == [65534] * 3
    assert got["groups"] == []


def _has_group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_unknown_user_and_group():
    with pytest.raises(PrivilegeError, match=r"^--user no-such-user-17b: no such user$"):
        privileges.lookup("no-such-user-17b", None)
    with pytest.raises(PrivilegeError, match=r"^--group no-such-group-17b: no such group$"):
        privileges.lookup(None, "no-such-group-17b")
    with pytest.raises(PrivilegeError, match=r"^--unix-group nope-17b: no such group$"):
        privileges.socket_access("nope-17b", None, None)


def test_numeric_ids_without_names():
    identity = privileges.lookup("54321", "54322")
    assert (identity.uid, identity.gid, identity.groups) == (54321, 54322, ())


def test_become_without_root_says_so():
    need_root()
    need_user("nobody")
    need_user("postfix")
    got = become("postfix", None, first="nobody")
    assert got["error"].startswith("cannot become user postfix")
    assert got["error"].endswith("--user and --group need root")


def test_become_self_without_root_is_a_no_op():
    need_root()
    need_user("nobody")
    got = become("nobody", None, first="nobody")
    assert "error" not in got, got


def test_socket_access_defaults():
    need_root()
    need_user("postfix")
    access = privileges.socket_access("postfix", None, privileges.lookup("postfix", None))
    assert access.mode == 0o660  # a group without a mode: the group may connect
    assert access.gid == privileges.lookup_group("postfix")
    assert access.uid == pwd.getpwnam("postfix").pw_uid
    assert not privileges.socket_access(None, None, None).wanted


def test_socket_is_private_until_opened(tmp_path):
    need_root()
    path = str(tmp_path / "s")
    sock = socket.socket(socket.AF_UNIX)
    privileges.bind_private(sock, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0  # nobody (but root) until opened
    gid = privileges.lookup_group("postfix") if _has_group("postfix") else 65534
    privileges.open_socket(path, privileges.SocketAccess(-1, gid, 0o660))
    st = os.stat(path)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o660, 0, gid)
    sock.close()
