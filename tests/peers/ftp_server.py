"""Twisted's FTP server on 127.0.0.1, with txframe's DTP or Twisted's, in its own process.

Usage::

    python ftp_server.py ROOT --dtp {txframe,twisted} [--impl {compiled,pure}]
                         [--synthetic N] [--dtp-timeout SECONDS] [--bytes-root]

Serves the directory *ROOT* read-write to anyone (anonymous logins included: curl,
lftp and ftplib log in as ``anonymous``) through ``twisted.protocols.ftp``'s FTP
server: ``txframe.ftp.FTPFactory`` with txframe's DTP bound to the *impl* LIST
formatter (as tests/ftp_classes.py binds it), or Twisted's own ``FTPFactory`` and
DTP. ``--synthetic N`` makes the shell list N made-up entries for the directory
``/synthetic`` (for huge listings without creating files). ``--bytes-root`` serves
*ROOT* as a bytes path, so that the shell lists names as bytes (as they are on disk)
rather than text.

Prints one JSON line when listening: ``{"port": ..., "dtp": ..., "formatter": ...}``
(the module of the formatter really used; ``null`` for Twisted's DTP). Then reads
commands on stdin, one per line, and answers each with a JSON line on stdout:

``stats``
    ``max_held``: the most bytes any DTP held at once for a consumer not yet
    registered (txframe's ``_heldBytes``, Twisted's ``_buffer``);
    ``open_data_connections``; ``rss``: the server's resident memory in bytes;
    ``errors``: the errors Twisted logged (tracebacks) since the last ``stats``.

It exits when stdin closes. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from twisted.cred import checkers, credentials, portal
from twisted.internet import defer, reactor, stdio
from twisted.logger import globalLogPublisher
from twisted.protocols import basic
from twisted.protocols import ftp as twisted_ftp
from twisted.python import filepath
from zope.interface import implementer

HOST = "127.0.0.1"

STATS: dict[str, Any] = {"max_held": 0, "open": 0, "errors": []}


def _logged(event: dict[str, Any]) -> None:
    failure = event.get("log_failure", event.get("failure"))  # logger's, legacy log's
    if failure is not None:
        STATS["errors"].append(failure.getTraceback())


@implementer(portal.IRealm)
class Realm:
    """Every user, anonymous too, gets a read-write shell on the root."""

    def __init__(self, root: filepath.FilePath, synthetic: int) -> None:
        self.root = root
        self.synthetic = synthetic

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        shell = SyntheticShell(self.root, self.synthetic)
        return twisted_ftp.IFTPShell, shell, lambda: None


class SyntheticShell(twisted_ftp.FTPShell):
    """Twisted's read-write shell, plus a made-up directory ``/synthetic``."""

    def __init__(self, root: filepath.FilePath, synthetic: int) -> None:
        super().__init__(root)
        self.synthetic = synthetic

    def list(self, path: Any, keys: Any = ()) -> Any:
        if list(path) == ["synthetic"] and self.synthetic:
            return defer.succeed(synthetic_entries(self.synthetic))
        return super().list(path, keys)


#: The synthetic entries' times count back from here (September 2020).
SYNTHETIC_BASE = 1_600_000_000.0


def synthetic_entries(count: int, now: float = SYNTHETIC_BASE) -> list[Any]:
    """*count* entries as FTPShell.list gives them, the same every time (the tests
    format them to compare; the benchmarks use them too)."""
    modes = [filepath.Permissions(mode) for mode in (0o644, 0o755, 0o600, 0o444)]
    return [
        (
            f"file {index:07d}.dat",
            [index * 1031, index % 17 == 0, modes[index % 4], 1 + index % 3,
             now - index * 3607.5, "user%d" % (index % 5), "staff"],
        )
        for index in range(count)
    ]


def instrument(dtp_class: type, held: Any) -> type:
    """*dtp_class* recording, after each dataReceived, the bytes it holds."""

    class Instrumented(dtp_class):  # type: ignore[misc, valid-type]
        def connectionMade(self) -> None:
            STATS["open"] += 1
            super().connectionMade()

        def connectionLost(self, reason: Any = None) -> None:
            STATS["open"] -= 1
            super().connectionLost(reason)

        def dataReceived(self, data: bytes) -> None:
            super().dataReceived(data)
            STATS["max_held"] = max(STATS["max_held"], held(self))

    return Instrumented


def twisted_factory(the_portal: portal.Portal) -> Any:
    # Twisted's DTPFactory builds the module's DTP: instrument it there (this process
    # only serves these tests).
    twisted_ftp.DTP = instrument(
        twisted_ftp.DTP, lambda dtp: sum(map(len, dtp._buffer or ()))
    )
    return twisted_ftp.FTPFactory(the_portal), None


def txframe_factory(the_portal: portal.Portal, impl: str | None) -> Any:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from ftp_classes import bind_ftp
    from txframe import ftp

    if impl is None:
        classes: Any = ftp
        formatter = ftp.DTP._formatter
    else:
        listing = importlib.import_module(
            "txframe._listing_c" if impl == "compiled" else "txframe._listing_py"
        )
        classes = bind_ftp(listing)
        formatter = classes.formatter
    dtp = instrument(classes.DTP, lambda dtp: dtp._heldBytes)
    dtp_factory = type("DTPFactory", (classes.DTPFactory,), {"protocol": dtp})
    server = type("FTP", (classes.FTP,), {"dtpFactoryClass": dtp_factory})
    server_factory = type("FTPFactory", (classes.FTPFactory,), {"protocol": server})
    return server_factory(the_portal), type(formatter).__module__


class Commands(basic.LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        if line.strip() == b"stats":
            errors, STATS["errors"] = STATS["errors"], []
            reply = {
                "max_held": STATS["max_held"],
                "open_data_connections": STATS["open"],
                "rss": rss(),
                "errors": errors,
            }
            self.transport.write(json.dumps(reply).encode() + b"\n")

    def connectionLost(self, reason: Any = None) -> None:
        if reactor.running:
            reactor.stop()


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--dtp", choices=("txframe", "twisted"), required=True)
    parser.add_argument("--impl", choices=("compiled", "pure"))
    parser.add_argument("--synthetic", type=int, default=0)
    parser.add_argument("--dtp-timeout", type=float, default=None)
    parser.add_argument("--bytes-root", action="store_true",
                        help="serve ROOT as a bytes path (the shell lists bytes names)")
    args = parser.parse_args()

    globalLogPublisher.addObserver(_logged)
    root = filepath.FilePath(os.fsencode(args.root) if args.bytes_root else args.root)
    the_portal = portal.Portal(Realm(root, args.synthetic))
    the_portal.registerChecker(checkers.AllowAnonymousAccess(), credentials.IAnonymous)
    if args.dtp == "twisted":
        factory, formatter = twisted_factory(the_portal)
    else:
        factory, formatter = txframe_factory(the_portal, args.impl)
    if args.dtp_timeout is not None:
        factory.protocol.dtpTimeout = args.dtp_timeout
    port = reactor.listenTCP(0, factory, interface=HOST)
    stdio.StandardIO(Commands())
    print(
        json.dumps({"port": port.getHost().port, "dtp": args.dtp, "formatter": formatter}),
        flush=True,
    )
    reactor.run()


if __name__ == "__main__":
    main()
