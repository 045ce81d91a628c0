"""``txframe serve-map``: the command line to a running server, and the exit status:
0 stopped cleanly, 1 could not run (a map, a port...), 2 a bad command line. Every
failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from ..mapfile import MapFileError
from .config import ServeError, UsageError, make_config, parse_args
from .server import loop_factory, raise_open_file_limit, run_async, serve, setup_logging
from .sources import SourceError
from .supervisor import Supervisor

log = logging.getLogger("txframe.serve_map")

PROG = "txframe serve-map"


def run(args: argparse.Namespace) -> int:
    """``txframe serve-map``, from parsed arguments; returns the exit status."""
    setup_logging(args.log_level)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until we can reload: not fatal
    try:
        config = make_config(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    for name in config.names():
        if " " in name and config.wants_socketmap():
            log.warning("map %r has a space in its name: socketmap cannot ask for it", name)
    try:
        loop_factory(config.loop)  # fail early if the loop asked for is missing
        raise_open_file_limit()
        if config.workers == 1:
            return int(run_async(lambda: serve(config), config.loop))
        return int(run_async(lambda: Supervisor(config).run(), config.loop))
    except (ServeError, SourceError, MapFileError) as error:
        log.error("%s", error)
        return 1
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 1


def main(argv: list[str] | None = None) -> int:
    """``txframe serve-map ARGS`` (*argv*, default ``sys.argv[1:]``)."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else list(argv), PROG)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return run(args)
