"""serve-map's counters, exposed with ``prometheus_client`` at ``/metrics``, and its
health at ``/health``.

The hot path counts in plain integers (a source's hits and misses, the server's
errors and connections); nothing is written per request beyond ``+= 1``.
:func:`snapshot` turns a process's counters into plain data (JSON-able: a worker sends
it to the supervisor over its control channel). On a scrape, :class:`Collector` asks
every process for its snapshot (each worker, or the one serving process) and builds
``prometheus_client`` metric families, every series labelled with its ``worker``
(0 for a single process) -- our own aggregation across workers rather than
prometheus_client's multiprocess mode, whose per-process mmap files and locked
``Counter.inc()`` would cost the hot path about a microsecond per request and need a
directory to manage.

The HTTP side is ``prometheus_client``'s WSGI app (text format, OpenMetrics by
content negotiation, gzip) on the standard library's WSGI server, in a thread; the
collector hands the work to the event loop and waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any, Callable, Coroutine, Iterable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client.core import Metric
from prometheus_client.exposition import make_wsgi_app
from prometheus_client.registry import CollectorRegistry

from .config import ServeError, format_address

log = logging.getLogger("txframe.serve_map")

PREFIX = "txframe_map_"
#: How long a scrape waits for the processes' counters.
COLLECT_TIMEOUT = 5.0

_SERVER_HELP = {
    "requests_total": ("counter", "Map requests answered (hits, misses, failures and errors)."),
    "errors_total": ("counter", "Requests answered with an error (malformed, unknown "
                     "command or map, too long)."),
    "connections": ("gauge", "Open client connections."),
    "connections_total": ("counter", "Client connections accepted."),
}
_ANSWERS = ("hits_total", "misses_total", "failures_total")


def snapshot(server: Any) -> dict[str, Any]:
    """A process's counters as plain data: ``{"server": [sample...], "maps": {name:
    [sample...]}, "healthy": {name: bool}}``, a sample ``[name, kind, help, labels,
    value]``. *server* is a :class:`~.protocols.MapServer`."""
    maps = {
        name: [list(sample) for sample in source.metrics()]
        for name, source in server.sources.items()
    }
    stats = server.stats
    samples = []
    for protocol in ("tcp", "socketmap"):
        requests = stats.errors[protocol] + sum(
            s[4] for per_map in maps.values() for s in per_map
            if s[0] in _ANSWERS and s[3].get("protocol") == protocol
        )
        labels = {"protocol": protocol}
        values = {
            "requests_total": requests,
            "errors_total": stats.errors[protocol],
            "connections": stats.connections[protocol],
            "connections_total": stats.connections_total[protocol],
        }
        for name, value in values.items():
            kind, text = _SERVER_HELP[name]
            samples.append([name, kind, text, labels, value])
    return {
        "server": samples,
        "maps": maps,
        "healthy": {name: bool(source.healthy()) for name, source in server.sources.items()},
    }


def families(snapshots: Iterable[tuple[int, dict[str, Any]]]) -> list[Metric]:
    """``prometheus_client`` metric families from each worker's :func:`snapshot`."""
    found: dict[str, Metric] = {}

    def add(sample: list[Any], labels: dict[str, str]) -> None:
        name, kind, text, own, value = sample
        family = found.get(name)
        if family is None:
            base = name[: -len("_total")] if kind == "counter" and name.endswith("_total") else name
            family = found[name] = Metric(PREFIX + base, text, kind)
        sample_name = family.name + ("_total" if kind == "counter" else "")
        family.add_sample(sample_name, {**labels, **own}, float(value))

    for worker, snap in snapshots:
        for sample in snap["server"]:
            add(sample, {"worker": str(worker)})
        for map_name, samples in snap["maps"].items():
            for sample in samples:
                add(sample, {"worker": str(worker), "map": map_name})
    return list(found.values())


class Collector:
    """A ``prometheus_client`` collector over *collect* (a coroutine function returning
    ``[(worker, snapshot)]``), run on the event loop *loop* from the HTTP thread."""

    def __init__(self, collect: Callable[[], Coroutine[Any, Any, list[tuple[int, dict[str, Any]]]]],
                 loop: asyncio.AbstractEventLoop) -> None:
        self._collect = collect
        self._loop = loop

    def snapshots(self) -> list[tuple[int, dict[str, Any]]]:
        return asyncio.run_coroutine_threadsafe(self._collect(), self._loop).result(
            COLLECT_TIMEOUT
        )

    def collect(self) -> Iterator[Metric]:
        yield from families(self.snapshots())


def health(snapshots: list[tuple[int, dict[str, Any]]], expected: int) -> tuple[bool, str]:
    """Whether every process answered and every source is healthy, and a text saying so."""
    problems = []
    if len(snapshots) < expected:
        problems.append(f"{expected - len(snapshots)} of {expected} workers not answering")
    for worker, snap in snapshots:
        for name, ok in snap["healthy"].items():
            if not ok:
                problems.append(f"map {name} unhealthy in worker {worker}")
    if problems:
        return False, "unhealthy: " + "; ".join(problems) + "\n"
    return True, "ok\n"


class _Quiet(WSGIRequestHandler):
    # errors found before the request's version is known get a status line too
    default_request_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("metrics: %s %s", self.address_string(), format % args)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


def _app(collector: Collector, expected: int) -> Callable[..., Any]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    metrics = make_wsgi_app(registry)

    def text(start: Any, status: str, body: str, *extra: tuple[str, str]) -> list[bytes]:
        data = body.encode()
        start(status, [("Content-Type", "text/plain; charset=utf-8"),
                       ("Content-Length", str(len(data))), *extra])
        return [data]

    def app(environ: dict[str, Any], start: Any) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if path not in ("/metrics", "/health"):
            return text(start, "404 Not Found", "not found: try /metrics or /health\n")
        if method not in ("GET", "HEAD"):
            return text(start, "405 Method Not Allowed", "method not allowed\n",
                        ("Allow", "GET, HEAD"))
        try:
            if path == "/health":
                ok, body = health(collector.snapshots(), expected)
                status = "200 OK" if ok else "503 Service Unavailable"
                result = text(start, status, body)
            else:
                # prometheus_client answers GET only: HEAD is a GET without its body
                result = list(metrics({**environ, "REQUEST_METHOD": "GET"}, start))
        except Exception as error:  # a worker that did not answer, say
            log.warning("metrics: %s", str(error) or type(error).__name__)
            return text(start, "503 Service Unavailable", "metrics unavailable\n")
        return [] if method == "HEAD" else result

    return app


class MetricsServer:
    """``/metrics`` and ``/health`` over HTTP at *address* ([host, port]), in a thread."""

    def __init__(self, address: list[Any], collector: Collector, expected: int = 1) -> None:
        host, port = address
        where = format_address(host, port)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
            family = infos[0][0]
            server_class = type("MetricsHTTPServer", (_Server,), {"address_family": family})
            self._httpd = server_class(infos[0][4][:2], _Quiet)
        except (OSError, socket.gaierror) as error:
            raise ServeError(
                f"cannot serve metrics on {where}: {error.strerror or error}"
            ) from None
        self._httpd.set_app(_app(collector, expected))
        self.address = self._httpd.server_address[:2]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="txframe-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
