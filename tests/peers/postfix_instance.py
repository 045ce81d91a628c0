"""A real Postfix of our own, for the end-to-end tests: Debian's ``postfix`` with its own
configuration directory, queue and data directories and log file under one temporary
directory, smtpd on a loopback port, started in the foreground (``postfix start-fg``)
by root and stopped with the test.

No queue manager runs: a message accepted over SMTP stays in the ``incoming`` queue as
cleanup(8) wrote it (its recipients already rewritten by ``virtual_alias_maps``), for
``postcat`` to show. Everything else (maps, restrictions) comes from the caller's
``main.cf`` settings.

Run it by hand to look around: ``python tests/peers/postfix_instance.py`` prints the
directory and port and stops at Enter.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_TIMEOUT = 30.0
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

# The services an accepting smtpd needs, none chrooted (our queue is not a chroot):
# smtpd, cleanup (virtual_alias_maps), trivial-rewrite, proxymap, anvil (smtpd's
# client limits) and postlogd (maillog_file).
MASTER_CF = """\
{address} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
rewrite unix - - n - - trivial-rewrite
proxymap unix - - n - - proxymap
anvil unix - - n - 1 anvil
postlog unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mx.txframe.test
mydomain = txframe.test
mydestination =
local_recipient_maps =
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP
# no queue manager runs to hand out flow-control tokens: do not wait for them
in_flow_delay = 0
"""


def find(program: str) -> str | None:
    return shutil.which(program, path=SBIN)


def free_port() -> int:
    # smtpd's port must be written into master.cf before Postfix binds it
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostfixInstance:
    """One Postfix under :attr:`root` (a fresh temporary directory, readable by the
    ``postfix`` user, as its daemons need) with *settings* added to main.cf."""

    def __init__(self, settings: str = "") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="txframe-postfix-"))
        self.root.chmod(0o755)
        self.config = self.root / "conf"
        self.config.mkdir()
        (self.root / "queue").mkdir()
        (self.root / "data").mkdir()
        shutil.chown(self.root / "data", "postfix")
        self.port = free_port()
        self.settings = settings
        self.proc: subprocess.Popen | None = None

    @property
    def private(self) -> Path:
        """The queue's ``private`` directory: where a Postfix's unix sockets live."""
        return self.root / "queue" / "private"

    def postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([find("postfix") or "postfix", "-c", str(self.config), *args],
                              capture_output=True, text=True, timeout=60, check=check)

    def prepare(self) -> None:
        """Write the configuration and make the queue (``postfix check`` creates its
        directories, owned as Postfix wants them)."""
        (self.config / "main.cf").write_text(MAIN_CF.format(root=self.root) + self.settings)
        (self.config / "master.cf").write_text(MASTER_CF.format(address=f"127.0.0.1:{self.port}"))
        result = self.postfix("check", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"postfix check failed: {result.stderr}{self.log()}")
        # checked once: start-fg need not check again (it takes seconds)
        (self.root / "queue" / "quick-start").touch()

    def set(self, **settings: str) -> None:
        """Change main.cf settings (``postconf -e``), e.g. once the maps' ports are known."""
        subprocess.run(
            [find("postconf") or "postconf", "-c", str(self.config), "-e",
             *(f"{name} = {value}" for name, value in settings.items())],
            capture_output=True, text=True, timeout=60, check=True,
        )

    def start(self) -> None:
        if not (self.private.exists()):
            self.prepare()
        with open(self.root / "master.out", "wb") as out:
            self.proc = subprocess.Popen(
                [find("postfix") or "postfix", "-c", str(self.config), "start-fg"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as client:
                    client.noop()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"Postfix did not start:\n{self.log()}")
                time.sleep(0.05)

    def reload(self) -> None:
        self.postfix("reload")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.postfix("stop", check=False)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        parts = []
        for name in ("maillog", "master.out"):
            try:
                parts.append((self.root / name).read_text(errors="replace"))
            except OSError:
                pass
        return "".join(parts)

    def smtp(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        client.ehlo("client.txframe.test")
        return client

    def envelope(self, queue_id: str) -> dict[str, list[str]]:
        """The envelope records of queued message *queue_id* (``postcat -e``):
        ``{"recipient": [...], "original_recipient": [...], "sender": [...]}``."""
        result = subprocess.run(
            [find("postcat") or "postcat", "-c", str(self.config), "-e", "-q", queue_id],
            capture_output=True, text=True, timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"postcat -q {queue_id}: {result.stderr}")
        records: dict[str, list[str]] = {}
        for line in result.stdout.splitlines():
            name, sep, value = line.partition(": ")
            if sep and re.fullmatch(r"[a-z_]+", name):
                records.setdefault(name, []).append(value)
        return records


def queue_id(reply: tuple[int, bytes]) -> str:
    """The queue id in smtpd's answer to DATA (``250 2.0.0 Ok: queued as 3F1B2C0A1``)."""
    code, text = reply
    match = re.search(rb"queued as ([0-9A-Za-z]+)", text)
    if code != 250 or match is None:
        raise AssertionError(f"message not queued: {code} {text!r}")
    return match.group(1).decode()


if __name__ == "__main__":
    instance = PostfixInstance()
    instance.start()
    print(f"Postfix in {instance.root}, smtpd on 127.0.0.1:{instance.port}; Enter stops it")
    try:
        input()
    finally:
        instance.cleanup()
