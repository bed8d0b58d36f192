"""Connections to Redis: clients from the URL, and what Redis errors mean."""

from __future__ import annotations

import contextlib
import random
import weakref
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .._exceptions import ConfigurationError
from .._redis_url import parse_redis_url

if TYPE_CHECKING:
    from .._settings import Settings

__all__ = [
    "Redis",
    "close_client",
    "connect",
    "id_key",
    "is_nogroup",
    "is_refused",
    "is_transient",
    "make_client",
    "open_pubsub",
    "primaries",
    "publish_via",
    "redis_errors",
    "refresh_routes",
    "refused_error",
]

#: The client type as hookbus sees it. redis-py types every reply as a union
#: of all RESP shapes (bytes | str | None | ...); hookbus uses decode_responses
#: off and knows each command's reply shape, so it handles replies untyped.
Redis: TypeAlias = Any

#: Errors after which the same command may succeed later (Redis restarting,
#: network cut, server loading its data).
TRANSIENT: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.TryAgainError,
    ConnectionError,
    OSError,
)


def is_refused(exc: BaseException) -> bool:
    """Whether Redis refuses us for good: bad credentials, ACL, TLS verification."""
    if isinstance(
        exc,
        redis_errors.AuthenticationError
        | redis_errors.AuthorizationError
        | redis_errors.NoPermissionError,
    ):
        return True
    text = str(exc)
    return "NOPERM" in text or "WRONGPASS" in text or "CERTIFICATE_VERIFY_FAILED" in text


def refused_error(exc: BaseException, url: str) -> ConfigurationError:
    """The ConfigurationError that explains a refusal."""
    return ConfigurationError(
        f"Redis at {url} refused hookbus: {exc}. Check the user and password of "
        "HOOKBUS_REDIS_URL, the ACL (the user needs ~<prefix>:* and &<prefix>:*, and the "
        "stream, pubsub and scripting commands), and for rediss:// the CA (?ssl_ca_certs=)"
    )


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` means "Redis is unreachable for now" rather than a bug."""
    if is_refused(exc):
        return False
    if isinstance(exc, redis_errors.ResponseError):
        text = str(exc)
        return text.startswith(("LOADING", "MASTERDOWN", "READONLY", "TRYAGAIN"))
    return isinstance(exc, TRANSIENT)


def is_nogroup(exc: BaseException) -> bool:
    """Whether ``exc`` says the consumer group (or its stream) does not exist."""
    return isinstance(exc, redis_errors.ResponseError) and str(exc).startswith("NOGROUP")


def make_client(
    settings: Settings,
    *,
    blocking: bool = False,
    name: str = "hookbus",
    node: tuple[str, int] | None = None,
) -> Redis:
    """A client (with its own pool) for ``settings.redis_url``.

    Command clients time out after ``emit_timeout`` (or the URL's
    ``socket_timeout``). Blocking clients (for ``XREADGROUP BLOCK``) wait
    ``block`` plus a margin, so that a blocking read never trips the socket
    timeout. The URL's query options were checked and typed by
    :func:`~hookbus._redis_url.parse_redis_url`; they are passed as keywords,
    never left for the client to read from the URL. ``node`` (host, port): a
    plain client of that one node of the cluster the URL names.
    """
    options = settings.redis
    url = parse_redis_url(settings.redis_url)
    kwargs: dict[str, Any] = {
        "socket_timeout": options.emit_timeout,
        "socket_connect_timeout": min(options.emit_timeout, 5.0),
        "socket_keepalive": True,
        **url.options,
    }
    if blocking:
        kwargs["socket_timeout"] = options.block + max(2.0, kwargs["socket_timeout"])
    kwargs.update(
        decode_responses=False,
        health_check_interval=0 if blocking else 15,
        client_name=name,
        retry_on_timeout=False,
        # hookbus retries in its own loops, with its own timeouts.
        retry=Retry(NoBackoff(), 0),
    )
    try:
        cluster = kwargs.pop("cluster", False) or options.cluster
        if node is not None:
            return aioredis.Redis.from_url(_at_node(url.address, *node), **kwargs)
        if cluster:
            return _cluster_client(url.address, kwargs)
        return aioredis.Redis.from_url(url.address, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"invalid Redis URL for hookbus: {exc}") from exc


def _at_node(address: str, host: str, port: int) -> str:
    """The URL ``address`` (scheme, credentials, database) pointed at another node."""
    parts = urlsplit(address)
    credentials, _, _ = parts.netloc.rpartition("@")
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _cluster_client(address: str, kwargs: dict[str, Any]) -> Redis:
    """A Redis Cluster client seeded by one node: it discovers the others, follows
    MOVED and ASK redirections, and reloads the slot map after a failover."""
    kwargs.pop("health_check_interval", None)
    kwargs.pop("retry_on_timeout", None)
    return RedisCluster.from_url(address, **kwargs)


async def connect(client: Redis) -> None:
    """Make sure ``client`` can route commands: a cluster client loads the slot map
    (done lazily otherwise, which Pub/Sub does not wait for)."""
    if isinstance(client, RedisCluster):
        await client.initialize()


async def refresh_routes(client: Redis) -> None:
    """After a connection error: a cluster client reloads its slot map, so that the
    next command goes to the node now serving each slot (a replica promoted after
    a failover). Pipelines do not do it by themselves; one server has nothing to do.

    Nodes dropped from the map may still hold a connection that was in use when
    they were dropped: they are kept, to be closed by :func:`close_client`.
    """
    if isinstance(client, RedisCluster):
        before = list(client.nodes_manager.nodes_cache.values())
        with contextlib.suppress(Exception):  # every node unreachable: the caller retries
            await client.nodes_manager.initialize()
        kept = {id(node) for node in client.nodes_manager.nodes_cache.values()}
        _retired.setdefault(client, []).extend(n for n in before if id(n) not in kept)


async def close_client(client: Redis) -> None:
    """Close ``client``'s connections, those of cluster nodes it dropped included."""
    try:
        await client.aclose()
    finally:
        for node in _retired.pop(client, []):
            with contextlib.suppress(Exception):
                await node.disconnect()


#: Cluster nodes a client dropped from its slot map, by client (see refresh_routes).
_retired: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


class NodePubSub:
    """A Pub/Sub connection of its own to one master of a cluster.

    Classic Pub/Sub messages reach every node of a cluster, so one node is
    enough; owning the connection (rather than borrowing one from the cluster
    client's pools) lets it be closed for sure when the node fails.
    """

    def __init__(self, cluster: RedisCluster, settings: Settings, name: str) -> None:
        node = random.choice(cluster.get_primaries())
        address = (str(node.host), int(node.port))
        self._client = make_client(settings, blocking=True, name=name, node=address)
        self.pubsub = self._client.pubsub()

    async def aclose(self) -> None:
        """Close the subscription and its connection."""
        try:
            await self.pubsub.aclose()
        finally:
            await self._client.aclose()


def open_pubsub(client: Redis, settings: Settings, name: str) -> tuple[Any, Any]:
    """(the Pub/Sub object to use, what to close when done) for ``client``."""
    if isinstance(client, RedisCluster):
        owned = NodePubSub(client, settings, name)
        return owned.pubsub, owned
    pubsub = client.pubsub()
    return pubsub, pubsub


def primaries(client: Redis) -> list[Any]:
    """The master nodes of a cluster client; ``[None]`` (the server) for one server."""
    if isinstance(client, RedisCluster):
        nodes: list[Any] = client.get_primaries()
        return nodes
    return [None]


async def publish_via(client: Redis, node: Any, channel: bytes, message: bytes) -> None:
    """PUBLISH through ``node`` (a cluster master from :func:`primaries`, or None)."""
    if node is None:
        await client.publish(channel, message)
    else:
        await client.execute_command("PUBLISH", channel, message, target_nodes=node)


def id_key(entry_id: bytes) -> tuple[int, int]:
    """A stream entry id (``b"1700000000000-3"``) as a sortable pair."""
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)
