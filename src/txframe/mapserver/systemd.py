"""systemd integration, written from the protocols' documentation (sd_notify(3),
sd_listen_fds(3)) rather than through libsystemd: readiness notification and socket
activation. Both read their environment once and remove it, so that worker processes
neither notify for the service nor take its sockets.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("txframe.serve_map")

#: The first file descriptor systemd passes (sd_listen_fds(3): SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3


class Notifier:
    """Sends sd_notify(3) messages to systemd's ``$NOTIFY_SOCKET``; does nothing when
    there is none (not run by systemd, or not ``Type=notify``).

    A notification that cannot be sent (the socket gone, say) is logged once, not
    per message, and never raises: readiness is systemd's business, serving is ours.
    """

    def __init__(self, address: str | None) -> None:
        self.address: str | bytes | None = None
        self._sock: socket.socket | None = None
        self._failing = False
        if not address:
            return
        if address.startswith("@"):  # the abstract namespace
            self.address = b"\0" + os.fsencode(address[1:])
        elif address.startswith("/"):
            self.address = address
        else:  # vsock:... (systemd in a VM) and future kinds
            log.warning("NOTIFY_SOCKET=%s: not a unix socket address; not notifying systemd",
                        address)
            return
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls) -> "Notifier":
        """The notifier ``$NOTIFY_SOCKET`` asks for; the variable is removed."""
        return cls(os.environ.pop("NOTIFY_SOCKET", None))

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=value`` lines (``ready=1`` sends ``READY=1``); True if sent."""
        if self._sock is None:
            return False
        message = "".join(
            f"{key.upper()}={_one_line(value)}\n" for key, value in fields.items()
        ).encode("utf-8", "replace")
        try:
            # MSG_DONTWAIT: a systemd too busy to read must not stall the server
            self._sock.sendto(message, socket.MSG_DONTWAIT, self.address)  # type: ignore[arg-type]
        except OSError as error:
            if not self._failing:
                self._failing = True
                log.warning("cannot notify systemd at NOTIFY_SOCKET: %s (further failures "
                            "are not logged)", error.strerror or error)
            return False
        if self._failing:
            self._failing = False
            log.info("notifying systemd again")
        return True

    def ready(self, status: str) -> bool:
        return self.notify(ready=1, status=status)

    def reloading(self) -> bool:
        # systemd >= 253 (Type=notify-reload) wants the time the reload began, so that
        # it can tell this reload's READY=1 from an earlier one.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(reloading=1, monotonic_usec=usec, status="reloading the maps")

    def stopping(self) -> bool:
        return self.notify(stopping=1, status="stopping")

    def status(self, text: str) -> bool:
        return self.notify(status=text)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(value: object) -> str:
    # a value never spans lines: a newline would start a new assignment
    return str(value).replace("\n", " ")


class ActivationError(Exception):
    """The socket-activation environment is inconsistent: one line for the user."""


def listen_fds() -> list[tuple[str, socket.socket]]:
    """The sockets systemd passed (socket activation), as ``(name, socket)`` in the
    order passed; empty when there are none or they are meant for another process.

    Names come from ``FileDescriptorName=`` (``$LISTEN_FDNAMES``), default
    ``"unknown"``. The variables are removed and the descriptors made close-on-exec,
    so that they reach no child unless passed on purpose.

    :raises ActivationError: ``$LISTEN_FDS`` malformed, a descriptor that is not an open
        socket, or a name count that does not match.
    """
    pid = os.environ.pop("LISTEN_PID", None)
    count_text = os.environ.pop("LISTEN_FDS", None)
    names_text = os.environ.pop("LISTEN_FDNAMES", None)
    if count_text is None:
        return []
    if pid is None or not pid.isdigit() or int(pid) != os.getpid():
        return []  # passed to another process (one that exec'd us, say)
    if not count_text.isdigit():
        raise ActivationError(f"LISTEN_FDS={count_text!r}: not a number")
    count = int(count_text)
    names = names_text.split(":") if names_text else ["unknown"] * count
    if len(names) != count:
        raise ActivationError(
            f"LISTEN_FDNAMES names {len(names)} sockets but LISTEN_FDS={count}"
        )
    sockets = []
    for fd, name in zip(range(LISTEN_FDS_START, LISTEN_FDS_START + count), names):
        try:
            os.set_inheritable(fd, False)
            sock = socket.socket(fileno=fd)
        except OSError as error:
            raise ActivationError(
                f"socket activation: descriptor {fd} ({name}) is not a socket: "
                f"{error.strerror}"
            )
        sockets.append((name, sock))
    return sockets
