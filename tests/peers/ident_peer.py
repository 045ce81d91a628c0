"""txframe's ident server or client over real TCP, in a process of its own.

Usage::

    python ident_peer.py serve IMPL [--hide-home DIR] [--static] [--small-buffers]
                               [--timeout SECONDS] [--grace SECONDS]
    python ident_peer.py query IMPL HOST PORT SERVER,CLIENT... [--separately]

*IMPL* (``compiled`` or ``pure``) is the line framer txframe's classes are bound to,
as ``tests/conftest.py`` binds them. Each process runs its own reactor (a reactor
cannot be restarted inside pytest).

``serve``: an ``IdentServer`` with ``ProcServerMixin`` listening on an ephemeral port of
127.0.0.1 and of ::1 (and of a dual-stack ``::`` socket, which sees IPv4 clients as
IPv4-mapped IPv6 addresses); prints ``{"ipv4": N, "ipv6": M, "dual": D}`` on a line and
serves until SIGTERM; then prints ``{"logged_errors": [...]}``. With ``--hide-home
DIR``, every user's home directory is *DIR* (for ``~/.noident``); with ``--static``
every query is answered ``USERID : UNIX : static`` without a lookup; with
``--small-buffers`` each connection's socket buffers are 4 KiB; ``--timeout`` and
``--grace`` set the idle timeout and the time a closing connection may take.

``query``: an ``IdentClient`` asks HOST:PORT about each port pair, all on one
connection (or each on its own with ``--separately``, for servers that answer one
query per connection), and prints one JSON object: ``results``, one per pair,
``["USERID", info]`` or ``["ERROR", exception class, str(exception)]``; and the
errors Twisted logged.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from peerlog import logged_errors  # noqa: E402

WATCHDOG = 60  # seconds: no peer runs longer


def bind(cls: type, impl: str) -> type:
    lines = importlib.import_module("txframe._lines_" + ("c" if impl == "compiled" else "py"))
    return type(cls.__name__, (cls,), {"_lineFramer": lines.LineFramer, "dataReceived": lines.data_received})


def serve(args: argparse.Namespace, errors: list[str]) -> None:
    from twisted.internet import protocol, reactor

    from txframe import ident

    class Server(ident.ProcServerMixin, bind(ident.IdentServer, args.impl)):  # type: ignore[misc]
        def connectionMade(self) -> None:
            if args.small_buffers:  # so that a client not reading is felt at once
                handle = self.transport.getHandle()
                handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            super().connectionMade()

        def homeDirectory(self, uid: int) -> str | None:
            return args.hide_home or super().homeDirectory(uid)

        def lookup(self, serverAddress: Any, clientAddress: Any) -> Any:
            if args.static:
                return ("UNIX", "static")
            return super().lookup(serverAddress, clientAddress)

    if args.timeout is not None:
        Server.timeout = args.timeout
    if args.grace is not None:
        Server._CLOSE_GRACE = args.grace
    factory = protocol.ServerFactory.forProtocol(Server)
    ports = {
        "ipv4": reactor.listenTCP(0, factory, interface="127.0.0.1"),
        "ipv6": reactor.listenTCP(0, factory, interface="::1"),
        "dual": reactor.listenTCP(0, factory, interface="::"),
    }
    print(json.dumps({name: port.getHost().port for name, port in ports.items()}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    reactor.callLater(WATCHDOG, reactor.stop)
    reactor.run()
    print(json.dumps({"logged_errors": errors}), flush=True)


def query(args: argparse.Namespace, errors: list[str]) -> None:
    from twisted.internet import defer, endpoints, reactor
    from twisted.internet.protocol import Factory

    from txframe import ident

    Client = bind(ident.IdentClient, args.impl)
    pairs = [tuple(int(p) for p in pair.split(",")) for pair in args.pairs]
    results: list[Any] = [None] * len(pairs)

    def record(index: int) -> Any:
        def done(outcome: Any) -> None:
            if isinstance(outcome, tuple):
                results[index] = list(outcome)
            else:
                results[index] = ["ERROR", outcome.type.__name__, str(outcome.value)]

        return done

    async def run() -> None:
        endpoint = endpoints.TCP4ClientEndpoint if ":" not in args.host else endpoints.TCP6ClientEndpoint
        point = endpoint(reactor, args.host, args.port, timeout=10)
        waiting = []
        if args.separately:
            for index, pair in enumerate(pairs):
                client = await point.connect(Factory.forProtocol(Client))
                waiting.append(client.lookup(*pair).addBoth(record(index)))
        else:
            client = await point.connect(Factory.forProtocol(Client))
            for index, pair in enumerate(pairs):
                waiting.append(client.lookup(*pair).addBoth(record(index)))
        await defer.gatherResults(waiting)
        if not args.separately:
            client.transport.loseConnection()

    def finish(outcome: Any) -> None:
        report: dict[str, Any] = {"results": results, "logged_errors": errors}
        if not isinstance(outcome, type(None)):
            report["error"] = outcome.getTraceback()
        print(json.dumps(report), flush=True)
        reactor.stop()

    defer.Deferred.fromCoroutine(run()).addBoth(finish)
    reactor.callLater(WATCHDOG, reactor.stop)
    reactor.run()


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("impl", choices=["compiled", "pure"])
    s.add_argument("--hide-home")
    s.add_argument("--static", action="store_true", help="answer every query USERID static")
    s.add_argument("--small-buffers", action="store_true", help="4 KiB socket buffers")
    s.add_argument("--timeout", type=float, help="the idle timeout, in seconds")
    s.add_argument("--grace", type=float, help="seconds a closing connection may take")
    q = sub.add_parser("query")
    q.add_argument("impl", choices=["compiled", "pure"])
    q.add_argument("host")
    q.add_argument("port", type=int)
    q.add_argument("pairs", nargs="+")
    q.add_argument("--separately", action="store_true")
    args = parser.parse_args()
    errors = logged_errors()
    (serve if args.command == "serve" else query)(args, errors)


if __name__ == "__main__":
    main()
