"""Options of the redis mode, with named defaults, validation and environment variables.

=================================  ====================================================
``HOOKBUS_REDIS_PREFIX``           prefix of every key and channel (``hookbus``)
``HOOKBUS_REDIS_HASH_TAG``         ``1``: wrap the prefix in ``{}`` (every key in one slot)
``HOOKBUS_REDIS_CLUSTER``          ``1``: the URL names a node of a Redis Cluster
``HOOKBUS_MIN_REPLICAS``           replicas that must have a durable event before ``emit``
                                   returns (``WAIT``; default 0)
``HOOKBUS_CONSUME``                ``0``: this process emits but runs no durable handler
``HOOKBUS_GROUP_START``            where a brand-new consumer group starts: ``new``/``all``
``HOOKBUS_CLAIM_IDLE``             seconds before another consumer's pending event is taken
``HOOKBUS_RETENTION_MAXLEN``       keep at most this many entries per stream (once handled)
``HOOKBUS_RETENTION_MAX_AGE``      keep entries at most this many seconds (once handled)
``HOOKBUS_EMIT_TIMEOUT``           seconds ``emit`` keeps trying before BusUnavailableError
=================================  ====================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

from ._env import values_from_env
from ._exceptions import ConfigurationError

__all__ = ["RedisOptions"]

GroupStart = Literal["new", "all"]

DEFAULT_PREFIX = "hookbus"
DEFAULT_CLAIM_IDLE = 30.0
DEFAULT_CLAIM_INTERVAL = 5.0
DEFAULT_READ_COUNT = 256
DEFAULT_BLOCK = 0.5
DEFAULT_TRIM_INTERVAL = 5.0
DEFAULT_EMIT_TIMEOUT = 5.0
DEFAULT_CONSUMER_EXPIRY = 3600.0
DEFAULT_LIVE_BUFFER = 1000
DEFAULT_REPLICA_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """How the redis mode stores, reads, retains and reclaims events.

    * ``prefix`` / ``hash_tag``: the namespace of every key (see
      ``hookbus._redis.keys``); ``hash_tag`` puts every key in one cluster slot.
    * ``cluster``: the URL names a node of a Redis Cluster (as the URL option
      ``cluster=true`` does); keys then spread over the shards by event type.
    * ``min_replicas``: ``emit`` of a durable event returns only once that
      many replicas have it too (``WAIT``), so that a failover loses nothing
      ``emit`` accepted; it raises :class:`~hookbus.BusUnavailableError` when
      they do not confirm within ``replica_timeout`` seconds. ``0`` (default)
      does not wait: a master that dies just after an emit may take the event
      with it.
    * ``consume``: run the durable handlers declared in this process (default);
      ``False`` for processes that only emit. Groups are created either way.
    * ``group_start``: where a consumer group created for the first time
      starts: ``"new"`` (events emitted from then on, default) or ``"all"``
      (everything the stream still retains).
    * ``claim_idle``: a pending event untouched that long (its consumer died)
      is taken over by a live consumer. Consumers renew what they hold, so a
      slow handler keeps its event.
    * ``retention_maxlen`` / ``retention_max_age``: trim streams to this
      length / age, never deleting an entry some group has not acknowledged.
      ``None`` (default) keeps everything.
    * ``emit_timeout``: how long ``emit`` retries an unreachable Redis before
      raising :class:`~hookbus.BusUnavailableError`.
    * ``read_count`` / ``block``: batch size and blocking time of reads;
      ``claim_interval`` / ``trim_interval``: how often reclaim and trimming
      run; ``consumer_expiry``: consumers idle that long *and* holding
      nothing are deleted; ``live_buffer``: events buffered per live listener.
    """

    prefix: str = DEFAULT_PREFIX
    hash_tag: bool = False
    cluster: bool = False
    min_replicas: int = 0
    replica_timeout: float = DEFAULT_REPLICA_TIMEOUT
    consume: bool = True
    group_start: GroupStart = "new"
    claim_idle: float = DEFAULT_CLAIM_IDLE
    claim_interval: float = DEFAULT_CLAIM_INTERVAL
    read_count: int = DEFAULT_READ_COUNT
    block: float = DEFAULT_BLOCK
    retention_maxlen: int | None = None
    retention_max_age: float | None = None
    trim_interval: float = DEFAULT_TRIM_INTERVAL
    emit_timeout: float = DEFAULT_EMIT_TIMEOUT
    consumer_expiry: float = DEFAULT_CONSUMER_EXPIRY
    live_buffer: int = DEFAULT_LIVE_BUFFER

    def __post_init__(self) -> None:
        if not self.prefix or any(c.isspace() or c in "{}*?[]" for c in self.prefix):
            raise ConfigurationError(
                f"redis prefix {self.prefix!r} must be non-empty, without spaces, braces "
                "or glob characters"
            )
        if self.group_start not in ("new", "all"):
            raise ConfigurationError(
                f"group_start must be 'new' or 'all', got {self.group_start!r}"
            )
        for name in (
            "claim_idle",
            "claim_interval",
            "block",
            "trim_interval",
            "emit_timeout",
            "consumer_expiry",
            "replica_timeout",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
        if not isinstance(self.min_replicas, int) or self.min_replicas < 0:
            raise ConfigurationError(
                f"min_replicas must be an integer >= 0, got {self.min_replicas!r}"
            )
        if self.cluster and self.hash_tag:
            raise ConfigurationError(
                "hash_tag puts every key in one slot, which a cluster spreads by event type: "
                "use cluster or hash_tag, not both"
            )
        for name in ("read_count", "live_buffer"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        if self.retention_maxlen is not None and self.retention_maxlen < 1:
            raise ConfigurationError("retention_maxlen must be >= 1 or None")
        if self.retention_max_age is not None and not self.retention_max_age > 0:
            raise ConfigurationError("retention_max_age must be > 0 seconds or None")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisOptions:
        """Options from ``HOOKBUS_*`` variables (see the module docs), defaults elsewhere."""
        values = values_from_env(_VARIABLES, env)
        known = {f.name for f in fields(cls)}
        assert set(values) <= known
        return cls(**values)


_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("prefix", "HOOKBUS_REDIS_PREFIX", "str"),
    ("hash_tag", "HOOKBUS_REDIS_HASH_TAG", "bool"),
    ("cluster", "HOOKBUS_REDIS_CLUSTER", "bool"),
    ("min_replicas", "HOOKBUS_MIN_REPLICAS", "int"),
    ("consume", "HOOKBUS_CONSUME", "bool"),
    ("group_start", "HOOKBUS_GROUP_START", "str"),
    ("claim_idle", "HOOKBUS_CLAIM_IDLE", "float"),
    ("retention_maxlen", "HOOKBUS_RETENTION_MAXLEN", "int"),
    ("retention_max_age", "HOOKBUS_RETENTION_MAX_AGE", "float"),
    ("emit_timeout", "HOOKBUS_EMIT_TIMEOUT", "float"),
)
