"""txframe.install() and `txframe run`, each in a fresh Python process (install must
come before Twisted's protocols are imported, and this process has imported them), on
the compiled and the pure build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from peer_rule import EXTENSIONS_REQUIRED, unavailable

REPLACED = [
    "twisted.protocols.basic.LineReceiver",
    "twisted.protocols.basic.LineOnlyReceiver",
    "twisted.protocols.basic.IntNStringReceiver",
    "twisted.protocols.basic.Int32StringReceiver",
    "twisted.protocols.basic.Int16StringReceiver",
    "twisted.protocols.basic.Int8StringReceiver",
    "twisted.protocols.basic.NetstringReceiver",
    "twisted.protocols.amp.BinaryBoxProtocol",
    "twisted.protocols.amp.AMP",
]


@pytest.fixture(params=[pytest.param("compiled", marks=pytest.mark.compiled), "pure"])
def build(request):
    """The environment of a process using the compiled or the pure build."""
    env = {k: v for k, v in os.environ.items() if k not in ("TXFRAME_INSTALL", "PYTHONPATH")}
    if request.param == "pure":
        env["TXFRAME_NO_EXTENSIONS"] = "1"
    else:
        env.pop("TXFRAME_NO_EXTENSIONS", None)
        probe = subprocess.run(
            [sys.executable, "-c", "import txframe; print(txframe.implementation)"],
            env=env, capture_output=True, text=True, check=True,
        )
        if probe.stdout.strip() != "compiled":
            if EXTENSIONS_REQUIRED:
                pytest.fail("the compiled extension is required")
            pytest.skip("txframe was installed without its compiled extension")
    env["TXFRAME_TEST_BUILD"] = request.param
    return env


def python(code, env, check=True):
    """Run *code* in a fresh interpreter; the last line it printed, parsed as JSON,
    and the finished process."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    if check:
        assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    return (json.loads(lines[-1]) if lines and check else None), done


def test_install_replaces_each_class_once(build):
    result, done = python(
        """
        import json, logging, sys
        logging.basicConfig(level=logging.INFO)
        import txframe
        from txframe import installer
        first = txframe.install()
        second = txframe.install()
        import twisted.protocols.basic as b, twisted.protocols.amp as a
        import txframe.basic, txframe.amp
        print(json.dumps({
            "first": first, "second": second, "installed": installer.installed(),
            "implementation": txframe.implementation,
            "same": [getattr(b, n) is getattr(txframe.basic, n) for n in (
                "LineReceiver", "LineOnlyReceiver", "IntNStringReceiver",
                "Int32StringReceiver", "Int16StringReceiver", "Int8StringReceiver",
                "NetstringReceiver")]
                + [a.BinaryBoxProtocol is txframe.amp.BinaryBoxProtocol, a.AMP is txframe.amp.AMP],
            "stateful": b.StatefulStringProtocol is txframe.basic.StatefulStringProtocol,
        }))
        """,
        build,
    )
    assert result["first"] == REPLACED
    assert result["second"] == []
    assert result["installed"] == REPLACED
    assert all(result["same"]) and result["stateful"]
    assert result["implementation"] == build["TXFRAME_TEST_BUILD"]
    assert "twisted.protocols.basic.LineReceiver" in done.stderr  # it says what it replaced


def test_install_too_late_raises_naming_the_modules(build):
    result, _ = python(
        """
        import json
        import twisted.web.http, twisted.mail.smtp
        from twisted.protocols import basic
        class Mine(basic.Int16StringReceiver):
            pass
        import txframe
        try:
            txframe.install()
        except txframe.installer.InstallError as error:
            message = str(error)
        print(json.dumps({"message": message, "installed": txframe.installer.installed(),
                          "twisted": basic.LineReceiver.__module__}))
        """,
        build,
    )
    message = result["message"]
    assert "twisted.web.http (HTTPChannel, HTTPClient)" in message
    assert "twisted.mail.smtp (" in message and "ESMTP" in message
    assert "__main__ (Mine)" in message
    # nothing was replaced
    assert result["installed"] == [] and result["twisted"] == "twisted.protocols.basic"


def test_install_too_late_may_warn_instead(build):
    result, done = python(
        """
        import json, warnings
        import twisted.web.http
        import txframe
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            replaced = txframe.install(late="warn")
        import twisted.mail.smtp
        import txframe.basic
        print(json.dumps({
            "warnings": [str(w.message) for w in caught], "replaced": replaced,
            "http": issubclass(twisted.web.http.HTTPChannel, txframe.basic.LineReceiver),
            "smtp": issubclass(twisted.mail.smtp.ESMTP, txframe.basic.LineOnlyReceiver),
        }))
        """,
        build,
    )
    assert len(result["warnings"]) == 1 and "twisted.web.http (HTTPChannel" in result["warnings"][0]
    assert result["replaced"] == REPLACED
    assert result["http"] is False  # built before: stays Twisted's
    assert result["smtp"] is True


def test_install_rejects_an_unknown_late_option(build):
    _, done = python("import txframe; txframe.install(late='ignore')", build, check=False)
    assert done.returncode == 1 and "late must be 'raise' or 'warn'" in done.stderr


def test_amp_over_loopback_after_install(build):
    """Twisted's AMP names, installed, talk over a real connection, and both sides'
    connectionLost runs once, without recursing through Twisted's AMP.connectionLost
    (which calls its module's BinaryBoxProtocol by name); the basic classes replaced
    before twisted.protocols.amp was imported by the program leave txframe.amp's MRO
    consistent."""
    result, _ = python(
        """
        import json
        import twisted.protocols.basic
        import txframe
        txframe.install()
        from twisted.internet import defer, endpoints, protocol, reactor, task
        from twisted.protocols import amp
        import txframe.amp

        class Sum(amp.Command):
            arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
            response = [(b"total", amp.Integer())]

        lost = []

        class Server(amp.AMP):
            @Sum.responder
            def sum(self, a, b):
                return {"total": a + b}

            def connectionLost(self, reason):
                lost.append("server")
                super().connectionLost(reason)

        class Client(amp.AMP):
            def connectionLost(self, reason):
                lost.append("client")
                amp.AMP.connectionLost(self, reason)

        async def main():
            port = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
                protocol.Factory.forProtocol(Server))
            client = await endpoints.TCP4ClientEndpoint(
                reactor, "127.0.0.1", port.getHost().port).connect(
                protocol.Factory.forProtocol(Client))
            answer = await client.callRemote(Sum, a=2, b=40)
            client.transport.loseConnection()
            while len(lost) < 2:
                await task.deferLater(reactor, 0.01)
            await port.stopListening()
            return {"answer": answer["total"], "lost": sorted(lost),
                    "mro": issubclass(Server, txframe.amp.AMP),
                    "transport": client.transport}

        def run(reactor):
            return defer.Deferred.fromCoroutine(main()).addCallback(
                lambda r: print(json.dumps({**r, "transport": r["transport"] is None})))

        task.react(run)
        """,
        build,
    )
    assert result == {"answer": 42, "lost": ["client", "server"], "mro": True, "transport": True}


def test_private_twisted_attributes(build):
    result, _ = python(
        """
        import json
        import txframe
        txframe.install()
        from twisted.protocols import basic
        from txframe.installer import InstallError

        out = {}
        try:
            class Peeking(basic.NetstringReceiver):
                def _consumeLength(self):
                    pass
        except InstallError as error:
            out["override"] = str(error)

        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")

            class Reading(basic.LineReceiver):
                def lineReceived(self, line):
                    out["read"] = repr(self._buffer)
        out["warning"] = [str(w.message) for w in caught]
        try:
            Reading().dataReceived(b"a\\r\\nrest")
        except AttributeError as error:
            out["read"] = str(error)

        class Own(basic.LineOnlyReceiver):  # its own _buffer, as Twisted's could not have
            def connectionMade(self):
                self._buffer = []
            def lineReceived(self, line):
                self._buffer.append(line)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import twisted.web.http, twisted.mail.imap4, twisted.words.protocols.irc  # none
            class Own(Own):
                pass
        own = Own()
        own.connectionMade()
        for byte in b"one\\r\\ntwo\\r\\n":
            own.dataReceived(bytes([byte]))
        out["own"] = [l.decode() for l in own._buffer]
        out["own-warning"] = [str(w.message) for w in caught]

        class Mangled(basic.LineReceiver):
            def lineReceived(self, line):
                self.__buffer = line  # name-mangled: its own
        m = Mangled(); m.dataReceived(b"x\\r\\n")
        out["mangled"] = m._Mangled__buffer.decode()
        print(json.dumps(out))
        """,
        build,
    )
    assert result["override"].startswith("__main__.Peeking overrides _consumeLength(), private "
                                         "to Twisted's twisted.protocols.basic.NetstringReceiver")
    assert result["warning"] == [
        "__main__.Reading.lineReceived reads _buffer, private to Twisted's "
        "twisted.protocols.basic.LineReceiver, which txframe.install() replaced: txframe's "
        "has no such attribute."
    ]
    assert "'Reading' object has no attribute '_buffer'" in result["read"]
    assert result["own-warning"] == []  # nor for Twisted's own protocols
    assert result["own"] == ["one", "two"]
    assert result["mangled"] == "x"


# -- txframe run ----------------------------------------------------------------------


def test_run_a_script_with_arguments_and_its_exit_status(build, tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import json, subprocess, sys
        import twisted.web.http, txframe.basic
        child = subprocess.run([sys.executable, "-c",
            "import twisted.mail.smtp as s, txframe.basic as b; "
            "print(issubclass(s.ESMTP, b.LineOnlyReceiver))"],
            capture_output=True, text=True, check=True)
        print(json.dumps({"argv": sys.argv[1:], "name": __name__,
            "http": issubclass(twisted.web.http.HTTPChannel, txframe.basic.LineReceiver),
            "child": child.stdout.strip()}))
        sys.exit(3)
    """))
    done = subprocess.run(
        [sys.executable, "-m", "txframe", "run", str(script), "a", "-b"],
        env=build, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout) == {
        "argv": ["a", "-b"], "name": "__main__", "http": True, "child": "True"
    }
    plain = subprocess.run(  # the same without the launcher: Twisted's
        [sys.executable, str(script)], env=build, capture_output=True, text=True, timeout=120
    )
    assert json.loads(plain.stdout)["http"] is False and json.loads(plain.stdout)["child"] == "False"


def test_run_a_module_and_a_command(build, tmp_path):
    (tmp_path / "probe.py").write_text(textwrap.dedent("""
        import sys, twisted.names.dns, txframe.basic
        print(sys.argv[1:], issubclass(twisted.names.dns.DNSProtocol, txframe.basic.Int16StringReceiver))
    """))
    done = subprocess.run(
        [sys.executable, "-m", "txframe", "run", "-m", "probe", "x"],
        env=build, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert done.stdout.strip() == "['x'] True", done.stderr
    twist = os.path.join(os.path.dirname(sys.executable), "twist")
    done = subprocess.run(
        [sys.executable, "-m", "txframe", "run", "-v", twist, "--help"],
        env={**build, "PATH": os.path.dirname(sys.executable) + os.pathsep + build.get("PATH", "")},
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and "Usage: twist" in done.stdout, done.stderr
    assert "twisted.protocols.amp.AMP" in done.stderr  # -v: what was replaced
    missing = subprocess.run(
        [sys.executable, "-m", "txframe", "run", "no-such-command-txframe"],
        env=build, capture_output=True, text=True, timeout=60,
    )
    assert missing.returncode == 2 and "no script or command" in missing.stderr


def test_trial_workers_started_under_the_launcher_install(build, tmp_path):
    (tmp_path / "test_inworker.py").write_text(textwrap.dedent("""
        import os
        from twisted.trial import unittest

        class InWorker(unittest.TestCase):
            def test_installed(self):
                import twisted.protocols.amp, txframe.amp
                from twisted.trial._dist import worker
                self.assertTrue(issubclass(worker.WorkerProtocol, txframe.amp.AMP))
                self.assertIs(twisted.protocols.amp.AMP, txframe.amp.AMP)
                self.assertNotEqual(os.environ.get("TXFRAME_INSTALL"), None)
    """))
    command = ["-m", "twisted.trial", "-j2", "--temp-directory", str(tmp_path / "_trial"),
               "test_inworker"]
    env = {**build, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "txframe", "run", *command], env=env,
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0 and "PASSED (successes=1)" in done.stdout, done.stdout + done.stderr
    plain = subprocess.run([sys.executable, *command], env=env,
                           capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert plain.returncode != 0 and "FAILED" in plain.stdout  # the workers' check is real


def test_web_server_and_treq_client_over_a_real_socket(build, tmp_path):
    """twisted.web serving and treq fetching through it, both installed: keep-alive
    requests, 40 headers, a chunked 1 MiB upload and a 2 MiB response."""
    try:
        import treq  # noqa: F401
    except ImportError:
        unavailable("treq is not installed (pip install txframe[test])")
    result, _ = python(
        """
        import hashlib, io, json
        import txframe
        txframe.install()
        import treq
        from twisted.web import client
        from twisted.internet import defer, endpoints, reactor, task
        from twisted.web import resource, server, http, _newclient
        import txframe.basic

        class Echo(resource.Resource):
            isLeaf = True
            def render_GET(self, request):
                names = sorted(k.decode() for k, v in request.requestHeaders.getAllRawHeaders()
                               if k.lower().startswith(b"x-h"))
                return json.dumps(names).encode()
            def render_POST(self, request):
                body = request.content.read()
                return hashlib.sha256(body).hexdigest().encode() + b" " + b"z" * (2 << 20)

        async def main():
            port = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
                server.Site(Echo()))
            url = "http://127.0.0.1:%d/" % port.getHost().port
            headers = {"X-H%02d" % i: ["v" * 50] for i in range(40)}
            names = []
            for _ in range(3):
                response = await treq.get(url, headers=headers)
                names.append(json.loads(await response.text()))
            body = b"0123456789abcdef" * 65536
            stream = io.BytesIO(body)  # read() only: no length, so sent chunked
            unsized = type("Unsized", (), {"read": lambda s, n: stream.read(n), "close": lambda s: None})
            upload = client.FileBodyProducer(unsized())
            response = await treq.post(url, data=upload)
            digest, _, tail = (await response.content()).partition(b" ")
            await port.stopListening()
            return {
                "names": names[0], "same": names[0] == names[1] == names[2],
                "digest": digest.decode() == hashlib.sha256(body).hexdigest(),
                "tail": len(tail), "status": response.code,
                "server": issubclass(http.HTTPChannel, txframe.basic.LineReceiver),
                "client": issubclass(_newclient.HTTPParser, txframe.basic.LineReceiver),
            }

        def run(reactor):
            return defer.Deferred.fromCoroutine(main()).addCallback(
                lambda r: print(json.dumps(r)))

        task.react(run)
        """,
        build,
    )
    assert result == {
        "names": [f"X-H{i:02d}" for i in range(40)], "same": True, "digest": True,
        "tail": 2 << 20, "status": 200, "server": True, "client": True,
    }


def test_children_still_run_the_sitecustomize_the_launcher_hides(build, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text("import os; os.environ['HIDDEN_RAN'] = '1'\n")
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import subprocess, sys
        print(subprocess.run([sys.executable, "-c",
            "import os, twisted.protocols.basic as b; "
            "print(os.environ.get('HIDDEN_RAN'), b.LineReceiver.__module__)"],
            capture_output=True, text=True, check=True).stdout.strip())
    """))
    done = subprocess.run(
        [sys.executable, "-m", "txframe", "run", str(script)],
        env={**build, "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True, text=True, timeout=120,
    )
    assert done.stdout.strip() == "1 txframe.basic", done.stderr
