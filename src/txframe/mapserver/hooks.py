"""Where serve-map's service integration plugs in: privilege drop and the service
manager's notifications. Each function is called at its place in the life of a
serving process or supervisor and does nothing yet (issue 17's service part fills
them in: ``--user``/``--group``, systemd's notify protocol).
"""

from __future__ import annotations

from typing import Any


def after_binding(config: Any) -> None:
    """Every listening socket is bound and the maps are loaded; nothing served yet:
    the place to drop root."""


def ready(config: Any, status: str) -> None:
    """Serving (the supervisor: every worker is): e.g. READY=1 and STATUS=*status*."""


def reloading(config: Any) -> None:
    """A SIGHUP reload starts (e.g. RELOADING=1)."""


def reloaded(config: Any, status: str) -> None:
    """The reloads asked for are done (e.g. READY=1 and STATUS=*status*)."""


def stopping(config: Any) -> None:
    """Shutting down (e.g. STOPPING=1)."""
