#!/usr/bin/env python
"""The FTP servers ``ftp_bench.py`` compares, one per process.

    python benchmarks/ftp_servers.py KIND ROOT [--synthetic N [--now TIME]]

KIND is ``twisted`` (Twisted's ``twisted.protocols.ftp.FTPFactory``, whose DTP is
Twisted's), ``txframe`` (``txframe.ftp.FTPFactory``: Twisted's FTP server on
txframe's DTP, with the LIST formatter txframe.framing chose) or ``txframe-pure``
(the same, its DTP bound to the pure formatter). The server serves the directory
*ROOT* read-write to anonymous users on 127.0.0.1 (any free port). With
``--synthetic N`` the directory ``/synthetic`` lists N made-up entries, built once
at start, so that a LIST costs the formatting and the sending, not the making of the
entries (Twisted's shell would stat N files and look up their owners).

Once listening it prints ``{"port": ..., "pid": ..., "formatter": ...}`` and a newline
on stdout; it exits when stdin closes (or on SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from twisted.cred import checkers, credentials, portal
from twisted.internet import defer, reactor, stdio
from twisted.internet.protocol import Protocol
from twisted.protocols import ftp as twisted_ftp
from twisted.python import filepath
from zope.interface import implementer

KINDS = ("twisted", "txframe", "txframe-pure")


def synthetic_entries(count: int, now: float) -> list[Any]:
    """*count* entries as ``FTPShell.list`` gives them: names with a space, sizes,
    a directory now and then, four permission modes, times an hour apart back from
    *now* (recent ones dated with the time, older ones with the year), five owners."""
    modes = [filepath.Permissions(mode) for mode in (0o644, 0o755, 0o600, 0o444)]
    return [
        (
            f"file {index:07d}.dat",
            [index * 1031, index % 17 == 0, modes[index % 4], 1 + index % 3,
             now - index * 3607.5, f"user{index % 5}", "staff"],
        )
        for index in range(count)
    ]


class Shell(twisted_ftp.FTPShell):
    """Twisted's read-write shell, plus the directory ``/synthetic``."""

    entries: list[Any] = []

    def list(self, path: Any, keys: Any = ()) -> Any:
        if list(path) == ["synthetic"]:
            return defer.succeed(self.entries)
        return super().list(path, keys)


@implementer(portal.IRealm)
class Realm:
    def __init__(self, root: str) -> None:
        self.root = filepath.FilePath(root)

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        return twisted_ftp.IFTPShell, Shell(self.root), lambda: None


class Stop(Protocol):
    def connectionLost(self, reason: Any = None) -> None:
        if reactor.running:
            reactor.stop()


def factory(kind: str, the_portal: portal.Portal) -> tuple[Any, str | None]:
    if kind == "twisted":
        return twisted_ftp.FTPFactory(the_portal), None
    from txframe import ftp

    if kind == "txframe":
        return ftp.FTPFactory(the_portal), type(ftp.DTP._formatter).__module__
    from txframe import _listing_py  # the pure formatter, bound as the tests bind it

    dtp = type("DTP", (ftp.DTP,), {"_formatter": _listing_py.ListFormatter(
        filepath.Permissions, filepath.RWX)})
    dtp_factory = type("DTPFactory", (ftp.DTPFactory,), {"protocol": dtp})
    server = type("FTP", (ftp.FTP,), {"dtpFactoryClass": dtp_factory})
    return type("FTPFactory", (ftp.FTPFactory,), {"protocol": server})(the_portal), (
        _listing_py.__name__
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("root")
    parser.add_argument("--synthetic", type=int, default=0)
    parser.add_argument("--now", type=float, help="the synthetic entries' newest time")
    args = parser.parse_args()
    Shell.entries = synthetic_entries(args.synthetic, args.now or time.time())
    the_portal = portal.Portal(Realm(args.root))
    the_portal.registerChecker(checkers.AllowAnonymousAccess(), credentials.IAnonymous)
    server_factory, formatter = factory(args.kind, the_portal)
    server_factory.timeOut = None
    port = reactor.listenTCP(0, server_factory, interface="127.0.0.1")
    stdio.StandardIO(Stop())
    sys.stdout.write(json.dumps(
        {"port": port.getHost().port, "pid": os.getpid(), "formatter": formatter}) + "\n")
    sys.stdout.flush()
    reactor.run()


if __name__ == "__main__":
    main()
