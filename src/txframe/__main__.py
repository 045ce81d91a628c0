"""The ``txframe`` command (also ``python -m txframe``).

Subcommands:

``serve-map``
    serve Postfix lookup tables over tcp_table and socketmap
    (``txframe serve-map --help``; :mod:`txframe.mapserver`).

``run``
    run a Python program with Twisted's protocols built on txframe
    (``txframe run --help``; :func:`txframe.installer.run`).

``map-load``
    import a postmap text file into Redis, atomically
    (``txframe map-load --help``; :mod:`txframe.mapserver.maploader`).

Each subcommand parses its own options: ``txframe serve-map --frobnicate`` is
serve-map's error, with serve-map's usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable


def _serve_map(argv: list[str]) -> int:
    from .mapserver.cli import main

    return main(argv)


def _run(argv: list[str]) -> int:
    # Dispatched before anything imports Twisted's protocols: install() must come first.
    from .installer import run

    return run(argv)


def _map_load(argv: list[str]) -> int:
    from .mapserver.maploader import main

    return main(argv)


COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "serve-map": ("serve Postfix maps over tcp_table and socketmap", _serve_map),
    "run": ("run a Python program with Twisted's protocols on txframe", _run),
    "map-load": ("import a postmap text file into Redis, atomically", _map_load),
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="txframe", description="txframe's programs.")
    parser.add_argument("--version", action="version", version=f"txframe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (text, _) in COMMANDS.items():
        commands.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``txframe ARGS`` (*argv*, default ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return int(COMMANDS[argv[0]][1](argv[1:]))
    build_parser().parse_args(argv)  # --help, --version, or an error (status 2)
    return 2


if __name__ == "__main__":
    sys.exit(main())
