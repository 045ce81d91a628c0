"""``txframe serve-map``: serve Postfix lookup tables over tcp_table and socketmap.

::

    txframe serve-map [--tcp [NAME=]HOST:PORT]... [--socketmap HOST:PORT]...
                      [--unix PATH]... [--workers N] [--config FILE] MAPFILE...

One module per job:

- :mod:`.config` -- the command line and TOML file, checked into a ``Config``;
- :mod:`.keys` -- the key rules (Postfix's case folding);
- :mod:`.sources` -- the source interface, map files, and the scheme registry;
- :mod:`.protocols` -- the asyncio tcp_table and socketmap protocols;
- :mod:`.listeners` -- inet and unix sockets;
- :mod:`.server` -- one serving process; :mod:`.supervisor` -- ``--workers``;
- :mod:`.metrics` -- ``/metrics`` (prometheus_client) and ``/health``;
- :mod:`.hooks` -- where privilege drop and service notifications plug in;
- :mod:`.cli` -- the entry point and exit statuses.

Imports point one way: cli -> supervisor -> server -> protocols/metrics/listeners
-> sources -> keys/config. Importing this package imports none of them.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``txframe serve-map ARGS``; returns the exit status."""
    from .cli import main as cli_main

    return cli_main(argv)
