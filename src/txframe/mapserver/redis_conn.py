"""Connections to Redis for serve-map's Redis maps and ``txframe map-load``.

One client library does all of Redis' protocol: redis-py's asyncio client
(``txframe[redis]``, with hiredis' C parser). It was chosen over coredis because it is
the reference client kept by Redis' own developers, and one dependency covers every
connection serve-map needs: ``redis://``, ``rediss://`` (TLS), ``unix://``, Sentinel
(with failover), Cluster, and RESP3 push messages for client-side-caching invalidation.

Connection URLs (credentials as in redis-py's URLs):

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS; ``ssl_*``
  query options as redis-py reads them), ``unix://[[user]:password@]/path[?db=N]``;
- ``redis+sentinel://[[user]:password@]host:port[,host:port...]/SERVICE[/db]``: the
  master of Sentinel's service SERVICE (the password is the data nodes'; a
  ``sentinel_password`` query option gives the sentinels' own);
- ``redis+cluster://[[user]:password@]host:port[,host:port...]``: a Redis Cluster
  (any of its nodes to start from).
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

try:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.sentinel import Sentinel
except ImportError:  # pragma: no cover - txframe[redis] not installed
    aioredis = None  # type: ignore[assignment]

SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster")
# TLS options naming files: checked at start, as redis-py would only say "Error 2
# connecting to host:port. No such file or directory" (and only when connecting)
TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


class RedisURLError(ValueError):
    """A connection URL that cannot be used (the message says why)."""


def require_redis() -> None:
    if aioredis is None:
        raise RedisURLError("Redis maps need redis-py: pip install 'txframe[redis]'")


@dataclass
class Target:
    """Where to connect: a parsed connection URL."""

    url: str  # as given, for messages (password hidden)
    kind: str  # "single", "sentinel" or "cluster"
    nodes: list[tuple[str, int]] = field(default_factory=list)  # sentinels / cluster seeds
    service: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)  # connection options

    def _options(self, deadline: float, read_timeout: float | None = None) -> dict[str, Any]:
        require_redis()
        opts = dict(self.kwargs)
        opts.update(
            # serve-map reads without a timeout of redis-py's: every request runs under
            # the lookup's deadline (asyncio.wait_for), and a read timeout costs a timer
            # per reply read (a third of a pipelined miss's CPU)
            socket_timeout=read_timeout,
            socket_connect_timeout=deadline,
            health_check_interval=0,
        )
        if "path" not in opts:  # TCP only: no keepalive on unix sockets
            opts["socket_keepalive"] = True
        return opts

    def client(self, deadline: float, max_connections: int = 16,
               read_timeout: float | None = None) -> Any:
        """A client that gives up connecting, and waiting for a free pooled connection,
        after *deadline* seconds, and reading a reply after *read_timeout* (None: the
        caller bounds its requests)."""
        opts = self._options(deadline, read_timeout)
        if self.kind == "cluster":
            opts.pop("db", None)
            return RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in self.nodes],
                require_full_coverage=True,
                max_connections=max_connections,
                **opts,
            )
        if self.kind == "sentinel":
            sentinel_opts = {
                k: v for k, v in opts.items() if k.startswith("socket_")
            }
            sentinel_opts["socket_timeout"] = deadline  # asked inside a connection attempt
            if "sentinel_password" in opts:
                sentinel_opts["password"] = opts.pop("sentinel_password")
            sentinel = Sentinel(self.nodes, sentinel_kwargs=sentinel_opts, **opts)
            client = sentinel.master_for(self.service, max_connections=max_connections)
        else:
            pool = aioredis.BlockingConnectionPool(
                max_connections=max_connections, timeout=deadline, **opts
            )
            client = aioredis.Redis(connection_pool=pool)
        client.auto_close_connection_pool = True  # aclose() closes the pool's sockets
        return client

    async def push_clients(self, deadline: float, main: Any) -> list[Any]:
        """One RESP3 connection to each primary (one, unless a cluster) for push
        messages (client-side caching invalidations); *main* is :meth:`client`'s."""
        opts = self._options(deadline)
        opts.update(protocol=3)
        if self.kind == "single":  # path or host, as the URL said
            client = aioredis.Redis(
                connection_pool=aioredis.ConnectionPool(**opts), single_connection_client=True
            )
            client.auto_close_connection_pool = True  # aclose() closes the socket too
            return [client]
        opts["single_connection_client"] = True
        if self.kind == "sentinel":
            host, port = await main.connection_pool.get_master_address()
            opts.pop("sentinel_password", None)
            return [aioredis.Redis(host=host, port=port, **opts)]
        opts.pop("db", None)
        await main.initialize()
        return [aioredis.Redis(host=n.host, port=n.port, **opts) for n in main.get_primaries()]


def _safe(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def parse_url(url: str) -> Target:
    """The target of a connection URL.

    :raises RedisURLError: for one that does not parse.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as error:
        raise RedisURLError(f"bad Redis URL {_safe(url)!r}: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise RedisURLError(
            f"bad Redis URL {_safe(url)!r}: the scheme must be one of {', '.join(SCHEMES)}"
        )
    if scheme in ("redis", "rediss", "unix"):
        require_redis()
        try:
            single: dict[str, Any] = dict(aioredis.connection.parse_url(url))
        except (ValueError, TypeError) as error:
            raise RedisURLError(f"bad Redis URL {_safe(url)!r}: {error}") from None
        if scheme != "unix" and not single.get("host"):
            raise RedisURLError(f"bad Redis URL {_safe(url)!r}: no host")
        if scheme == "unix" and not single.get("path"):
            raise RedisURLError(f"bad Redis URL {_safe(url)!r}: no socket path")
        tls_options = sorted(name for name in single if name.startswith("ssl_"))
        if tls_options and scheme != "rediss":  # redis-py: "unexpected keyword argument"
            raise RedisURLError(f"bad Redis URL {_safe(url)!r}: {tls_options[0]} needs rediss://")
        return Target(_safe(url), "single", kwargs=_check_files(url, single))
    # Several hosts in the netloc: urlsplit cannot read the port(s) itself.
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for item in hosts.split(","):
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit() or not host or int(port) > 65535:
            raise RedisURLError(f"bad Redis URL {_safe(url)!r}: expected host:port, got {item!r}")
        nodes.append((host.strip("[]"), int(port)))
    kwargs: dict[str, Any] = {}
    if userinfo:
        user, _, password = userinfo.partition(":")
        if user:
            kwargs["username"] = urllib.parse.unquote(user)
        if password:
            kwargs["password"] = urllib.parse.unquote(password)
    for name, values in urllib.parse.parse_qs(parts.query).items():
        kwargs[name] = values[-1]
    path = [p for p in parts.path.split("/") if p]
    if scheme == "redis+sentinel":
        if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise RedisURLError(
                f"bad Redis URL {_safe(url)!r}: expected /SERVICE or /SERVICE/DB after the sentinels"
            )
        if len(path) == 2:
            kwargs["db"] = int(path[1])
        return Target(_safe(url), "sentinel", nodes, path[0], _check_files(url, kwargs))
    if path:
        raise RedisURLError(f"bad Redis URL {_safe(url)!r}: a cluster has no database number")
    return Target(_safe(url), "cluster", nodes, kwargs=_check_files(url, kwargs))


def _check_files(url: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    for name in TLS_FILES:
        if kwargs.get(name) and not os.path.isfile(kwargs[name]):
            raise RedisURLError(f"bad Redis URL {_safe(url)!r}: {name}: no file {kwargs[name]}")
    return kwargs
