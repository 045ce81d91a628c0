"""``txframe serve-map`` behind a real Postfix: Debian's postfix, started by the tests
with a configuration of its own (tests/peers/postfix_instance.py), whose
``virtual_alias_maps`` and ``check_recipient_access`` are served by serve-map over
tcp_table and, in the other run, over socketmap on a unix socket in Postfix's
``private`` directory (named ``private/txframe-maps``, as in README's main.cf) given
to the postfix group (``--unix-group postfix``: Postfix's
cleanup and smtpd run as the postfix user). SMTP sessions (smtplib) show each answer
taking effect: an alias rewritten in the queued message (``postcat``), a recipient
rejected with the map's text, keys in mixed case (Postfix folds them; serve-map must
too), and a map reload showing in the next session. serve-map runs as README's
deployment has it: started as root, then as another user (``--user nobody``).

Needs root (Postfix's master) and the ``postfix`` package; without them these tests are
skipped, except under ``CI=true``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peer_rule import unavailable

pytestmark = pytest.mark.peer

if not sys.platform.startswith("linux"):
    pytest.skip("the real Postfix is Debian's: ci/test.sh runs these on Linux",
                allow_module_level=True)

HERE = Path(__file__).parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _load("txframe_tests_serve_map", HERE / "test_serve_map.py")
peer = _load("txframe_tests_postfix_instance", HERE / "peers" / "postfix_instance.py")

VIRTUAL = {
    "info@example.com": "team@example.net",
    "Sales@Example.COM": "Sales.Lead@Example.NET",  # the key folded, the value kept
    "moving@example.com": "before@example.net",
}
ACCESS = {
    "blocked@elsewhere.example": "REJECT no mail for blocked here (txframe map)",
    "Shouting@Elsewhere.EXAMPLE": "REJECT quiet please",
}


def need_postfix() -> None:
    if os.geteuid() != 0:
        unavailable("a Postfix instance needs root (its master process)")
    for program in ("postfix", "postconf", "postcat", "postmap"):
        if peer.find(program) is None:
            unavailable(f"{program} (Debian package postfix) is not installed")
    import pwd

    for user in ("postfix", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            unavailable(f"no {user} user (Debian package postfix; base-passwd)")


class Mail:
    """A Postfix whose maps serve-map serves over *transport*."""

    def __init__(self, transport: str, instance, served, maps: dict[str, Path],
                 socket_path: Path) -> None:
        self.transport = transport
        self.instance = instance
        self.served = served
        self.maps = maps
        self.socket_path = socket_path

    def table(self, name: str) -> str:
        """The Postfix table naming serve-map's map *name*."""
        if self.transport == "tcp":
            return f"tcp:127.0.0.1:{self.served.tcp_port(name)}"
        # relative to the queue directory, as README's main.cf has it: Postfix's
        # daemons work there, chrooted or not
        return f"socketmap:unix:{self.socket_path.relative_to(self.instance.root / 'queue')}:{name}"

    def lookup(self, key: str, name: str) -> str:
        result = subprocess.run(
            [peer.find("postmap"), "-c", str(self.instance.config), "-q", key, self.table(name)],
            capture_output=True, text=True, timeout=30, cwd=self.instance.root / "queue",
        )
        return result.stdout.strip()

    def send(self, *recipients: str) -> tuple[dict[str, tuple[int, bytes]], str | None]:
        """One SMTP session: each recipient's RCPT reply, and the queue id of the
        message if some recipient was accepted."""
        with self.instance.smtp() as client:
            code, text = client.mail("sender@client.txframe.test")
            assert code == 250, text
            replies = {rcpt: client.rcpt(rcpt) for rcpt in recipients}
            if not any(code == 250 for code, _ in replies.values()):
                return replies, None
            reply = client.data(b"Subject: txframe end to end\r\n\r\nHello.\r\n")
            return replies, peer.queue_id(reply)

    def explain(self) -> str:
        return f"--- Postfix:\n{self.instance.log()}\n--- serve-map:\n{self.served.log()}"


def _write_map(path: Path, entries: dict[str, str]) -> None:
    path.write_text("".join(f"{key}\t{value}\n" for key, value in entries.items()))


@pytest.fixture(scope="module", params=["tcp", "socketmap"])
def mail(request):
    """Postfix, and serve-map deployed as README says: started as root, its socket in
    Postfix's private/ given to the postfix group, then running as another user
    (nobody here), which must read the maps (and write the ready file)."""
    need_postfix()
    transport = request.param
    instance = peer.PostfixInstance()
    served = None
    try:
        home = instance.root / "serve-map"
        home.mkdir()
        shutil.chown(home, "nobody")
        maps = {"virtual": home / "virtual", "access": home / "access"}
        _write_map(maps["virtual"], VIRTUAL)
        _write_map(maps["access"], ACCESS)
        instance.prepare()  # makes the queue, and so private/ for our socket
        socket_path = instance.private / "txframe-maps"
        served = harness.start(
            home, "--unix", str(socket_path), "--unix-group", "postfix", "--user", "nobody",
            "--tcp", "virtual=127.0.0.1:0", "--tcp", "access=127.0.0.1:0",
            "--poll-interval", "0", str(maps["virtual"]), str(maps["access"]),
            metrics=False,
        )
        assert "running as user nobody" in served.log(), served.log()
        setup = Mail(transport, instance, served, maps, socket_path)
        instance.set(
            virtual_alias_domains="example.com",
            virtual_alias_maps=setup.table("virtual"),
            smtpd_recipient_restrictions=(
                f"check_recipient_access {setup.table('access')}, permit_mynetworks, reject"
            ),
        )
        instance.start()
        yield setup
    finally:
        instance.cleanup()
        if served is not None:
            served.stop()


def test_alias_rewritten_in_the_queued_message(mail):
    replies, queued = mail.send("info@example.com", "SALES@example.COM")
    assert all(code == 250 for code, _ in replies.values()), (replies, mail.explain())
    envelope = mail.instance.envelope(queued)
    # cleanup(8) rewrote both recipients through serve-map; the second only because
    # the key was folded as Postfix folds it (it asks for sales@example.com)
    assert envelope["recipient"] == ["team@example.net", "Sales.Lead@Example.NET"], mail.explain()
    assert envelope["original_recipient"] == ["info@example.com", "SALES@example.COM"]


def test_unknown_alias_is_rejected(mail):
    replies, _ = mail.send("nobody-here@example.com")
    code, text = replies["nobody-here@example.com"]
    assert code == 550 and b"User unknown in virtual alias table" in text, (replies, mail.explain())


def test_recipient_rejected_with_the_maps_text(mail):
    replies, queued = mail.send(
        "blocked@elsewhere.example", "shouting@ELSEWHERE.example", "fine@elsewhere.example"
    )
    code, text = replies["blocked@elsewhere.example"]
    assert code == 554, (replies, mail.explain())
    assert b"Recipient address rejected: no mail for blocked here (txframe map)" in text
    code, text = replies["shouting@ELSEWHERE.example"]
    assert (code, text.endswith(b"Recipient address rejected: quiet please")) == (554, True), replies
    assert replies["fine@elsewhere.example"][0] == 250  # not in the map: relayed for us
    assert mail.instance.envelope(queued)["recipient"] == ["fine@elsewhere.example"]


def test_reload_shows_in_the_next_session(mail):
    _, queued = mail.send("moving@example.com")
    assert mail.instance.envelope(queued)["recipient"] == ["before@example.net"], mail.explain()
    _write_map(mail.maps["virtual"], {**VIRTUAL, "moving@example.com": "after@example.net"})
    mail.served.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while mail.lookup("moving@example.com", "virtual") != "after@example.net":
        assert time.monotonic() < deadline, mail.explain()
        time.sleep(0.05)
    # Postfix's cleanup keeps its connection to serve-map across the reload
    _, queued = mail.send("moving@example.com")
    assert mail.instance.envelope(queued)["recipient"] == ["after@example.net"], mail.explain()
