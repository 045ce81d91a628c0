"""Twisted's own test modules for the protocols txframe.install() reaches, and treq's
suite, under install() on both implementations, each compared with the same run
without it.

Each run is a fresh process (install must come before the imports):
tests/install_suite.py under ``txframe run`` (so the launcher is what is tested), and
the same script plain for the reference. The tests whose outcome differs must be
exactly those the README lists between its ``install-differences`` markers; the
classes under test must have txframe's in their MROs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from peer_rule import EXTENSIONS_REQUIRED, unavailable

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
RUNNER = HERE / "install_suite.py"

#: Twisted's (and treq's) test modules for the protocols built on basic and AMP.
SUITES = (
    "twisted.web.test.test_http",
    "twisted.web.test.test_newclient",
    "twisted.web.test.test_agent",
    "twisted.web.test.test_proxy",
    "twisted.web.test.test_xmlrpc",
    "twisted.mail.test.test_smtp",
    "twisted.mail.test.test_pop3",
    "twisted.mail.test.test_pop3client",
    "twisted.mail.test.test_imap",
    "twisted.words.test.test_irc",
    "twisted.names.test.test_dns",
    "twisted.test.test_memcache",
    "twisted.test.test_finger",
    "twisted.test.test_postfix",
    "twisted.test.test_amp",
    "twisted.trial._dist.test",
    "twisted.protocols.test.test_basic",
    "treq.test",
)

MODES = ("twisted", "compiled", "pure")


def _documented() -> set[str]:
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- install-differences -->", "<!-- /install-differences -->"
    section = text[text.index(start) + len(start) : text.index(end)]
    return set(re.findall(r"^- `([\w.]+)`", section, re.MULTILINE))


def _run(job: tuple[str, str], out: Path) -> dict:
    suite, mode = job
    env = dict(os.environ)
    for name in ("TXFRAME_INSTALL", "TXFRAME_NO_EXTENSIONS"):  # this run says which
        env.pop(name, None)
    command = [sys.executable, str(RUNNER), str(out), suite]
    if mode != "twisted":
        command[1:1] = ["-m", "txframe", "run"]
        if mode == "pure":
            env["TXFRAME_NO_EXTENSIONS"] = "1"
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, cwd=out.parent
    )
    if done.returncode != 0 or not out.exists():
        return {"failed": f"exit {done.returncode}: {done.stderr[-3000:]}"}
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every (suite, mode) run, two at a time (the CI machine's cores)."""
    for module in ("hamcrest", "treq", "httpbin", "multipart"):
        try:
            __import__(module)
        except ImportError:
            unavailable(f"{module} is needed by the suites (pip install txframe[test])")
    directory = tmp_path_factory.mktemp("install-suites")
    jobs = [(suite, mode) for suite in SUITES for mode in MODES]
    workers = max(2, min(4, os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(
            lambda job: _run(job, directory / f"{job[1]}-{job[0]}.json"), jobs
        )
        return dict(zip(jobs, results))


@pytest.fixture(scope="module")
def documented():
    if not README.exists():
        pytest.skip("outside a checkout: the README is not here")
    return _documented()


def _outcomes(run: dict) -> dict[str, str]:
    assert "failed" not in run, run.get("failed")
    return {test: " ".join(sorted(set(outcome))) for test, outcome in run["outcomes"].items()}


@pytest.mark.parametrize("mode", [pytest.param("compiled", marks=pytest.mark.compiled), "pure"])
@pytest.mark.parametrize("suite", SUITES)
def test_same_outcomes_as_twisted_but_documented(documented, runs, suite, mode):
    reference, installed = runs[(suite, "twisted")], runs[(suite, mode)]
    if mode == "compiled" and installed.get("implementation") == "pure":
        if EXTENSIONS_REQUIRED:
            pytest.fail("the compiled extension is required but txframe ran pure")
        pytest.skip("txframe was installed without its compiled extension")
    before, after = _outcomes(reference), _outcomes(installed)
    assert installed["implementation"] == mode
    assert installed["installed"], "txframe run did not install"
    assert len(before) > 3 and set(before) == set(after)
    differing = {test for test in before if before[test] != after[test]}
    expected = {test for test in documented if test.startswith(suite + ".")}
    assert differing == expected, {
        test: (before.get(test), after.get(test), installed["details"].get(test))
        for test in differing ^ expected
    }
    # the reference run must itself be green, or a difference could hide in it
    assert {o for o in before.values()} <= {"ok", "skip", "todo"}, {
        t: o for t, o in before.items() if o not in ("ok", "skip", "todo")
    }


@pytest.mark.parametrize("mode", [pytest.param("compiled", marks=pytest.mark.compiled), "pure"])
def test_protocols_under_test_are_built_on_txframe(runs, mode):
    """The guard: each protocol class the suites exercise has txframe's classes in its
    MRO under install, and none of Twisted's framing classes."""
    seen = {}
    for suite in SUITES:
        seen.update(runs[(suite, mode)].get("mros", {}))
        assert runs[(suite, "twisted")].get("mros") is not None
    for twisted in ("twisted.web.http.HTTPChannel", "twisted.web._newclient.HTTPParser",
                    "twisted.mail.smtp.ESMTP", "twisted.mail.pop3.POP3",
                    "twisted.mail.imap4.IMAP4Server", "twisted.words.protocols.irc.IRCClient",
                    "twisted.names.dns.DNSProtocol", "twisted.protocols.memcache.MemCacheProtocol",
                    "twisted.trial._dist.worker.LocalWorkerAMP"):
        assert twisted in seen, f"{twisted} was not loaded by the suites"
    for name, mro in seen.items():
        # txframe's framing class comes before any of Twisted's (which an AMP keeps
        # further down, under Twisted's BinaryBoxProtocol, and never reaches)
        assert "txframe.basic._Framed" in mro, (name, mro)
        framed = mro.index("txframe.basic._Framed")
        assert not [k for k in mro[:framed] if k.startswith("twisted.protocols.basic.")], (name, mro)
    # and without install, the same classes are Twisted's
    for suite in SUITES:
        for name, mro in runs[(suite, "twisted")]["mros"].items():
            assert not [k for k in mro if k.startswith("txframe.")], (name, mro)
