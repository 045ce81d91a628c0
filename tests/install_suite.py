"""Run Twisted test modules with trial's runner and write each test's outcome as JSON.

    python tests/install_suite.py OUT.json MODULE [MODULE ...]
    python -m txframe run tests/install_suite.py OUT.json MODULE ...   (installed)

Run by tests/test_install_suites.py in a fresh process per module, once as Twisted
ships and once under ``txframe run``. Under install it also writes, for each class
of GUARDED that the modules imported, the names in its MRO, so the test can prove the
protocols under test were built on txframe's classes.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

#: The protocol classes Twisted's suites exercise, by module.
GUARDED = {
    "twisted.web.http": ("HTTPChannel", "HTTPClient"),
    "twisted.web._newclient": ("HTTPParser", "HTTPClientParser"),
    "twisted.web.proxy": ("ProxyClient",),
    "twisted.mail.smtp": ("SMTP", "ESMTP", "SMTPClient", "ESMTPClient"),
    "twisted.mail.pop3": ("POP3",),
    "twisted.mail._pop3client": ("POP3Client",),
    "twisted.mail.imap4": ("IMAP4Server", "IMAP4Client"),
    "twisted.words.protocols.irc": ("IRCClient", "DccChat"),
    "twisted.names.dns": ("DNSProtocol",),
    "twisted.protocols.memcache": ("MemCacheProtocol",),
    "twisted.trial._dist.worker": ("WorkerProtocol", "LocalWorkerAMP"),
}


def _describe(why) -> str:
    """One line for a trial failure or exc_info tuple: the exception and its message."""
    if isinstance(why, tuple):
        return f"{why[0].__name__}: {why[1]}"[:300]
    return f"{why.type.__name__}: {why.getErrorMessage()}"[:300]


def main(out: str, modules: list[str]) -> int:
    from twisted.trial import reporter, runner

    outcomes: dict[str, list[str]] = {}
    details: dict[str, list[str]] = {}

    class Recording(reporter.Reporter):
        def _record(self, test, outcome, why=None):
            outcomes.setdefault(test.id(), []).append(outcome)
            if why is not None:
                details.setdefault(test.id(), []).append(_describe(why))

        def addSuccess(self, test):
            super().addSuccess(test)
            self._record(test, "ok")

        def addFailure(self, test, fail):
            super().addFailure(test, fail)
            self._record(test, "FAIL", fail)

        def addError(self, test, error):
            super().addError(test, error)
            self._record(test, "ERROR", error)

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self._record(test, "skip")

        def addExpectedFailure(self, test, failure, todo=None):
            super().addExpectedFailure(test, failure, todo)
            self._record(test, "todo")

        def addUnexpectedSuccess(self, test, todo=None):
            super().addUnexpectedSuccess(test, todo)
            self._record(test, "UNEXPECTED-SUCCESS")

    suite = runner.TestLoader().loadByNames(modules, recurse=True)
    work = tempfile.mkdtemp(prefix="txframe-install-suite-")
    with open(os.devnull, "w") as quiet:
        runner.TrialRunner(Recording, stream=quiet, workingDirectory=os.path.join(work, "_trial_temp")).run(suite)
    from txframe import installer

    mros = {}
    for module, names in GUARDED.items():
        loaded = sys.modules.get(module)
        for name in names if loaded is not None else ():
            cls = getattr(loaded, name)
            mros[f"{module}.{name}"] = [f"{k.__module__}.{k.__qualname__}" for k in cls.__mro__]
    from txframe.framing import implementation

    result = {
        "installed": list(installer.installed()),
        "implementation": implementation,
        "outcomes": outcomes,
        "details": details,
        "mros": mros,
    }
    with open(out, "w") as stream:
        json.dump(result, stream, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
