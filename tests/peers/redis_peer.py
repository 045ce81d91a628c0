"""Real Redis servers for the tests: single nodes (plain or TLS), a replica with
Sentinels, a Cluster, each started from Debian's redis-server on free loopback ports in
a temporary directory, killed and restarted at will."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from peer_rule import unavailable  # noqa: E402

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def require_redis() -> None:
    if not os.path.exists(REDIS_SERVER) or not os.path.exists(REDIS_CLI):
        unavailable("redis-server/redis-cli not installed (Debian: redis-server redis-tools)")
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("redis-py not installed (pip install 'txframe[redis]')")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TLSFiles:
    """PEM files: a CA and a certificate it signed (with its key) for 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path, name: str = "test") -> TLSFiles:
    """A new CA (called *name*) and a server certificate for 127.0.0.1 signed by it."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    files = TLSFiles(directory / f"{name}-ca.pem", directory / f"{name}-server.pem",
                     directory / f"{name}-server.key")
    pem = serialization.Encoding.PEM
    files.ca.write_bytes(certificate(f"{name} CA", ca_key, f"{name} CA", ca_key, True).public_bytes(pem))
    files.cert.write_bytes(certificate("127.0.0.1", key, f"{name} CA", ca_key, False).public_bytes(pem))
    files.key.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


class RedisNode:
    """One redis-server process (or redis-sentinel, with ``sentinel=True``); with *tls*,
    it listens on TLS only (its port is the TLS port; clients show no certificate)."""

    def __init__(self, directory: Path, *, port: int | None = None, args: tuple[str, ...] = (),
                 sentinel_conf: str | None = None, host: str = "127.0.0.1",
                 netns: str | None = None, tls: TLSFiles | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port()
        self.args = args
        self.sentinel_conf = sentinel_conf
        self.netns = netns
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}"

    def start(self) -> "RedisNode":
        if self.sentinel_conf is not None:
            conf = self.dir / "sentinel.conf"
            if not conf.exists():
                conf.write_text(self.sentinel_conf)
            cmd = [REDIS_SERVER, str(conf), "--sentinel"]
        else:
            cmd = [REDIS_SERVER]
        if self.tls:  # no plain port
            cmd += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls.cert),
                    "--tls-key-file", str(self.tls.key), "--tls-ca-cert-file", str(self.tls.ca),
                    "--tls-auth-clients", "no"]
        else:
            cmd += ["--port", str(self.port)]
        cmd += ["--bind", self.host, "--dir", str(self.dir), "--protected-mode", "no", *self.args]
        if self.sentinel_conf is None:
            cmd += ["--save", "", "--appendonly", "no", "--enable-debug-command", "yes"]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        log = open(self.dir / "log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis exited: {(self.dir / 'log').read_text()[-2000:]}")
            if self.cli("PING", check=False).strip() == "PONG":
                return self
            time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def cli(self, *args: str, check: bool = True) -> str:
        cmd = [REDIS_CLI, "-h", self.host, "-p", str(self.port)]
        if self.tls:
            cmd += ["--tls", "--cacert", str(self.tls.ca)]
        cmd += args
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        done = subprocess.run(cmd, capture_output=True, timeout=30)
        out = done.stdout.decode("utf-8", "replace")
        if check and (done.returncode or out.startswith("ERR") or out.startswith("(error)")):
            raise RuntimeError(f"redis-cli {args}: {out} {done.stderr!r}")
        return out

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


class Cluster:
    """A Redis Cluster of *n* primaries (no replicas)."""

    def __init__(self, directory: Path, n: int = 3) -> None:
        self.nodes = [
            RedisNode(directory / f"node{i}", args=("--cluster-enabled", "yes",
                      "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                      "--cluster-port", str(free_port())))
            for i in range(n)
        ]

    def start(self) -> "Cluster":
        try:
            return self._start()
        except BaseException:
            self.stop()  # no server left behind by a failed start
            raise

    def _start(self) -> "Cluster":
        for node in self.nodes:
            node.start()
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
             "--cluster-yes"], check=True, capture_output=True, timeout=60,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in n.cli("CLUSTER", "INFO") for n in self.nodes):
                return self
            time.sleep(0.1)
        raise RuntimeError("cluster did not become ok")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def cli(self, *args: str) -> str:
        node = self.nodes[0]
        done = subprocess.run([REDIS_CLI, "-c", "-p", str(node.port), *args], capture_output=True,
                              timeout=30, check=True)
        return done.stdout.decode()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


class Sentinels:
    """A primary, a replica and three Sentinels watching service ``mymaster``."""

    def __init__(self, directory: Path, service: str = "mymaster") -> None:
        self.service = service
        self.primary = RedisNode(directory / "primary")
        self.replica = RedisNode(directory / "replica", args=("--replicaof", "127.0.0.1", "0"))
        self.sentinels: list[RedisNode] = []
        self.directory = directory

    def start(self) -> "Sentinels":
        try:
            return self._start()
        except BaseException:
            self.stop()  # no server left behind by a failed start
            raise

    def _start(self) -> "Sentinels":
        self.primary.start()
        self.replica.args = ("--replicaof", "127.0.0.1", str(self.primary.port))
        self.replica.start()
        conf = (
            f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 5000\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        for i in range(3):
            self.sentinels.append(RedisNode(self.directory / f"sentinel{i}", sentinel_conf=conf).start())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            info = self.primary.cli("INFO", "replication")
            if "connected_slaves:1" in info and "state=online" in info:
                return self
            time.sleep(0.1)
        raise RuntimeError("replica did not sync")

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels) + f"/{self.service}"

    def master_port(self) -> int:
        out = self.sentinels[0].cli("SENTINEL", "get-master-addr-by-name", self.service)
        return int(out.split()[1])

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.primary]:
            node.kill()


def wait_for(predicate: Any, timeout: float, interval: float = 0.02) -> float:
    """Poll *predicate* until true; the seconds it took. Raises AssertionError."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout} s")
