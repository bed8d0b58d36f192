"""Settings: every option in one place, with named defaults, validation and the
environment variables that feed them.

Environment (read by :meth:`Settings.from_env`, the default of ``EventBus()``):

=============================  ===========================================
``EVENT_BUS_MODE``             ``local`` (default), ``redis`` or ``rabbitmq``
``HOOKBUS_MODE``               same, used when ``EVENT_BUS_MODE`` is unset
``HOOKBUS_REDIS_URL``          ``redis://[user:password@]host:port/db``, ``rediss://``,
                               ``unix://``; query options: :mod:`hookbus._redis_url`
``HOOKBUS_AMQP_URL``           ``amqp://user:password@host:5672/vhost``, ``amqps://``;
                               query options: :mod:`hookbus._amqp_url`
``HOOKBUS_OUTBOX_URL``         the transactional outbox's database (SQLAlchemy async URL);
                               options: :mod:`hookbus._outbox_options`
``HOOKBUS_MAX_EVENT_SIZE``     bytes, default 1 MiB
``HOOKBUS_QUEUE_SIZE``         per-subscriber queue bound (local mode)
``HOOKBUS_MAX_ATTEMPTS``       default attempts before a dead letter
``HOOKBUS_RETRY_BASE_DELAY``   seconds, first retry delay
``HOOKBUS_RETRY_MAX_DELAY``    seconds, longest retry delay
``HOOKBUS_STOP_TIMEOUT``       seconds granted to in-flight handlers on stop
``HOOKBUS_IDEMPOTENCY_RETENTION``  seconds completion records of idempotent
                               subscribers are kept (default 7 days)
``HOOKBUS_SOURCE``             CloudEvents ``source`` of emitted events
=============================  ===========================================

The redis mode's own options (``HOOKBUS_REDIS_PREFIX`` ...) are listed in
:mod:`hookbus._redis_options`, the rabbitmq mode's in
:mod:`hookbus._rabbitmq_options`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypedDict

from ._amqp_url import parse_amqp_url
from ._completions import DEFAULT_RETENTION
from ._exceptions import ConfigurationError
from ._outbox_options import OutboxOptions
from ._rabbitmq_options import RabbitMQOptions
from ._redis_options import RedisOptions
from ._redis_url import parse_redis_url
from ._retry import RetryPolicy

__all__ = ["MODES", "Settings", "SettingsOptions"]

Mode = Literal["local", "redis", "rabbitmq"]
MODES: tuple[str, ...] = ("local", "redis", "rabbitmq")

DEFAULT_MODE: Mode = "local"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/"
DEFAULT_MAX_EVENT_SIZE = 1024 * 1024
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_STOP_TIMEOUT = 10.0
DEFAULT_MAX_DEAD_LETTERS = 10_000
DEFAULT_SOURCE = "hookbus"


class SettingsOptions(TypedDict, total=False):
    """Keyword options accepted by ``EventBus(...)``; each maps to a :class:`Settings` field."""

    max_event_size: int
    queue_size: int
    retry: RetryPolicy
    stop_timeout: float
    max_dead_letters: int
    sync_workers: int | None
    source: str
    idempotency_retention: float
    redis: RedisOptions
    rabbitmq: RabbitMQOptions
    outbox: OutboxOptions


@dataclass(frozen=True, slots=True)
class Settings:
    """Configuration of an :class:`~hookbus.EventBus`.

    Build it directly, from the environment with :meth:`from_env`, or let
    ``EventBus()`` do the latter. Invalid values raise
    :class:`~hookbus.ConfigurationError` naming what is accepted.
    """

    mode: Mode = DEFAULT_MODE
    redis_url: str = DEFAULT_REDIS_URL
    amqp_url: str = DEFAULT_AMQP_URL
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE
    queue_size: int = DEFAULT_QUEUE_SIZE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    max_dead_letters: int = DEFAULT_MAX_DEAD_LETTERS
    sync_workers: int | None = None
    source: str = DEFAULT_SOURCE
    #: Seconds the completion records of idempotent subscribers are kept.
    idempotency_retention: float = DEFAULT_RETENTION
    redis: RedisOptions = field(default_factory=RedisOptions)
    rabbitmq: RabbitMQOptions = field(default_factory=RabbitMQOptions)
    outbox_url: str | None = None
    outbox: OutboxOptions = field(default_factory=OutboxOptions)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigurationError(
                f"unknown event bus mode {self.mode!r}; accepted: {', '.join(MODES)} "
                "(EVENT_BUS_MODE / HOOKBUS_MODE)"
            )
        url = parse_redis_url(self.redis_url)
        if self.redis.cluster or url.options.get("cluster"):
            if self.redis.hash_tag:
                raise ConfigurationError(
                    "hash_tag puts every key in one slot, which a cluster spreads by event "
                    "type: use cluster or hash_tag, not both"
                )
            if url.address.startswith("unix:"):
                raise ConfigurationError(
                    "a Redis Cluster is reached over TCP: use redis:// or rediss://"
                )
        parse_amqp_url(self.amqp_url)
        if self.outbox_url is not None and (
            not isinstance(self.outbox_url, str) or "://" not in self.outbox_url
        ):
            raise ConfigurationError(
                f"outbox_url must be an SQLAlchemy async URL such as "
                f"postgresql+asyncpg://user@host/db or sqlite+aiosqlite:///path, got "
                f"{self.outbox_url!r}"
            )
        for name in ("max_event_size", "queue_size", "max_dead_letters"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        if not (
            isinstance(self.stop_timeout, int | float)
            and math.isfinite(self.stop_timeout)
            and self.stop_timeout >= 0
        ):
            raise ConfigurationError(
                f"stop_timeout must be a finite number >= 0 seconds, got {self.stop_timeout!r}"
            )
        if not (
            isinstance(self.idempotency_retention, int | float)
            and math.isfinite(self.idempotency_retention)
            and self.idempotency_retention > 0
        ):
            raise ConfigurationError(
                "idempotency_retention must be a finite number > 0 seconds, got "
                f"{self.idempotency_retention!r}"
            )
        if self.sync_workers is not None and self.sync_workers < 1:
            raise ConfigurationError(f"sync_workers must be >= 1, got {self.sync_workers!r}")
        if not self.source:
            raise ConfigurationError("source must be a non-empty string")

    @property
    def redis_cluster(self) -> bool:
        """Whether the redis mode talks to a Redis Cluster (URL option or ``RedisOptions``)."""
        return self.redis.cluster or bool(parse_redis_url(self.redis_url).options.get("cluster"))

    def with_options(self, **options: Any) -> Settings:
        """A copy with some fields replaced; unknown names raise ConfigurationError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}"
            )
        return replace(self, **options)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from environment variables (see the module docs), defaults elsewhere.

        ``overrides`` (field names) win over the environment, whose variables
        for those fields are then not even read: an explicit
        ``EventBus(mode="local")`` works whatever ``EVENT_BUS_MODE`` says.
        """
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}"
            )
        env = {k: v for k, v in env.items() if _VARIABLES.get(k) not in overrides}
        values: dict[str, Any] = {}
        mode = env.get("EVENT_BUS_MODE") or env.get("HOOKBUS_MODE")
        if mode:
            values["mode"] = mode.strip().lower()
        for var, name in _TEXT_VARIABLES:
            if text := env.get(var):
                values[name] = text
        for name, var, kind in (
            ("max_event_size", "HOOKBUS_MAX_EVENT_SIZE", int),
            ("queue_size", "HOOKBUS_QUEUE_SIZE", int),
            ("stop_timeout", "HOOKBUS_STOP_TIMEOUT", float),
            ("idempotency_retention", "HOOKBUS_IDEMPOTENCY_RETENTION", float),
        ):
            if var in env:
                values[name] = _parse(var, env[var], kind)
        retry: dict[str, Any] = {}
        for name, var, kind in (
            ("max_attempts", "HOOKBUS_MAX_ATTEMPTS", int),
            ("base_delay", "HOOKBUS_RETRY_BASE_DELAY", float),
            ("max_delay", "HOOKBUS_RETRY_MAX_DELAY", float),
        ):
            if var in env:
                retry[name] = _parse(var, env[var], kind)
        if retry:
            values["retry"] = RetryPolicy(**retry)
        if "redis" not in overrides:
            values["redis"] = RedisOptions.from_env(env)
        if "rabbitmq" not in overrides:
            values["rabbitmq"] = RabbitMQOptions.from_env(env)
        if "outbox" not in overrides:
            values["outbox"] = OutboxOptions.from_env(env)
        values.update(overrides)
        return cls(**values)


# text variables read as they are (when set and not empty) -> the field they set
_TEXT_VARIABLES = (
    ("HOOKBUS_REDIS_URL", "redis_url"),
    ("HOOKBUS_AMQP_URL", "amqp_url"),
    ("HOOKBUS_OUTBOX_URL", "outbox_url"),
    ("HOOKBUS_SOURCE", "source"),
)

# environment variable -> the field it sets
_VARIABLES = {
    "EVENT_BUS_MODE": "mode",
    "HOOKBUS_MODE": "mode",
    "HOOKBUS_REDIS_URL": "redis_url",
    "HOOKBUS_AMQP_URL": "amqp_url",
    "HOOKBUS_OUTBOX_URL": "outbox_url",
    "HOOKBUS_SOURCE": "source",
    "HOOKBUS_MAX_EVENT_SIZE": "max_event_size",
    "HOOKBUS_QUEUE_SIZE": "queue_size",
    "HOOKBUS_STOP_TIMEOUT": "stop_timeout",
    "HOOKBUS_IDEMPOTENCY_RETENTION": "idempotency_retention",
    "HOOKBUS_MAX_ATTEMPTS": "retry",
    "HOOKBUS_RETRY_BASE_DELAY": "retry",
    "HOOKBUS_RETRY_MAX_DELAY": "retry",
}


def _parse(var: str, raw: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(raw)
    except ValueError:
        raise ConfigurationError(f"{var}={raw!r} is not a valid {kind.__name__}") from None
