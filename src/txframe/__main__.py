"""The ``txframe`` command (also ``python -m txframe``).

Subcommands:

``serve-map``
    serve Postfix lookup tables over tcp_table and socketmap
    (``txframe serve-map --help``; :mod:`txframe.serve_map`).

``map-load``
    import a postmap text file into Redis, atomically
    (``txframe map-load --help``; :mod:`txframe.mapserver.maploader`).
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from . import __version__, serve_map

    parser = argparse.ArgumentParser(
        prog="txframe", description="txframe's programs."
    )
    parser.add_argument("--version", action="version", version=f"txframe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve-map",
        help="serve Postfix maps over tcp_table and socketmap",
        description="Serve Postfix lookup tables (MAPFILEs in postmap(1)'s text format) "
        "over tcp_table(5) and socketmap_table(5).",
        epilog="Maps are reloaded on SIGHUP and when their files change; SIGTERM stops "
        "the server gracefully.",
    )
    serve_map.add_arguments(serve)
    serve.set_defaults(run=serve_map.run)
    from .mapserver import maploader

    load = commands.add_parser(
        "map-load",
        help="import a postmap text file into Redis, atomically",
        description="Import MAPFILE (postmap(1)'s text format) into Redis for serve-map's "
        "Redis maps: a hash renamed over the old one, or versioned strings switched in "
        "one step. Needs txframe[redis].",
    )
    maploader.add_arguments(load)
    load.set_defaults(run=maploader.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``txframe ARGS`` (*argv*, default ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
