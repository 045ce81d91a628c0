"""Where serve-map's service integration plugs in: privilege drop (:mod:`.privileges`)
and systemd's notifications (:mod:`.systemd`). Each function is called at its place
in the life of a serving process or supervisor.

Only the main process talks to systemd: the first call takes ``$NOTIFY_SOCKET`` out
of the environment, before any worker is started, so workers never notify.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .config import ServeError
from .privileges import PrivilegeError, become, lookup
from .systemd import Notifier

log = logging.getLogger("txframe.serve_map")

_notifier: Notifier | None = None


def _systemd() -> Notifier:
    global _notifier
    if _notifier is None:
        _notifier = Notifier.from_environment()
    return _notifier


def after_binding(config: Any, *, worker: bool = False, supervisor: bool = False) -> None:
    """Every listening socket is bound and the maps are loaded; nothing served yet:
    drop root (``--user``/``--group``). A supervisor keeps root: its workers bind
    their own ports (SO_REUSEPORT), also when restarted; each worker drops it."""
    if not worker:
        _systemd()
    if supervisor:
        if config.user is not None or config.group is not None:
            log.info("the supervisor keeps root to start workers; they run as %s",
                     config.user if config.user is not None else f"group {config.group}")
        return
    try:
        identity = lookup(config.user, config.group)
        if identity is not None:
            become(identity)
            log.info("running as user %s (uid %d, gid %d)",
                     identity.name, identity.uid, identity.gid)
            for spec in config.specs():  # read as root at start, as the user from now on
                if spec.scheme == "file" and not os.access(spec.target, os.R_OK):
                    log.warning("map %s: %s is not readable by user %s: reloads will fail",
                                spec.name, spec.target, identity.name)
    except PrivilegeError as error:
        raise ServeError(str(error)) from None


def ready(config: Any, status: str) -> None:
    """Serving (the supervisor: every worker is): READY=1 and STATUS=*status*."""
    _systemd().ready(status)


def reloading(config: Any) -> None:
    """A SIGHUP reload starts: RELOADING=1."""
    _systemd().reloading()


def reloaded(config: Any, status: str) -> None:
    """The reloads asked for are done: READY=1 and STATUS=*status*."""
    _systemd().ready(status)


def stopping(config: Any) -> None:
    """Shutting down: STOPPING=1."""
    _systemd().stopping()
