"""Options of the rabbitmq mode, with named defaults, validation and environment variables.

=================================  ====================================================
``HOOKBUS_AMQP_PREFIX``            prefix of every exchange and queue (``hookbus``)
``HOOKBUS_CONSUME``                ``0``: this process emits but runs no durable handler
``HOOKBUS_EMIT_TIMEOUT``           seconds ``emit`` waits for the broker's confirmation
``HOOKBUS_PREFETCH``               unacknowledged messages per subscriber and process
``HOOKBUS_HISTORY_MAX_AGE``        seconds the history streams keep events (replay)
=================================  ====================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

from ._env import values_from_env
from ._exceptions import ConfigurationError

__all__ = ["RabbitMQOptions"]

DEFAULT_PREFIX = "hookbus"
DEFAULT_EMIT_TIMEOUT = 5.0
DEFAULT_PREFETCH = 256
DEFAULT_HISTORY_MAX_AGE = 7 * 24 * 3600.0
DEFAULT_LIVE_BUFFER = 1000


@dataclass(frozen=True, slots=True)
class RabbitMQOptions:
    """How the rabbitmq mode names, confirms, consumes and keeps events.

    * ``prefix``: the namespace of every exchange and queue (see
      ``hookbus._rabbitmq.names``).
    * ``consume``: run the durable handlers declared in this process
      (default); ``False`` for processes that only emit. Queues are declared
      either way.
    * ``emit_timeout``: how long ``emit`` waits for the broker's confirmation
      (reconnecting meanwhile if needed) before raising
      :class:`~hookbus.BusUnavailableError`.
    * ``prefetch``: messages one process holds unacknowledged per subscriber.
    * ``history``: keep every durable event in a stream per event type, for
      ``replay`` and feed resume; ``history_max_age`` (seconds) and
      ``history_max_bytes`` bound it (``None``: no bound of that kind).
    * ``live_buffer``: events buffered per live listener.
    """

    prefix: str = DEFAULT_PREFIX
    consume: bool = True
    emit_timeout: float = DEFAULT_EMIT_TIMEOUT
    prefetch: int = DEFAULT_PREFETCH
    history: bool = True
    history_max_age: float | None = DEFAULT_HISTORY_MAX_AGE
    history_max_bytes: int | None = None
    live_buffer: int = DEFAULT_LIVE_BUFFER

    def __post_init__(self) -> None:
        if not self.prefix or any(c.isspace() or c in "*#" for c in self.prefix):
            raise ConfigurationError(
                f"rabbitmq prefix {self.prefix!r} must be non-empty, without spaces, * or #"
            )
        if not (
            isinstance(self.emit_timeout, int | float)
            and math.isfinite(self.emit_timeout)
            and self.emit_timeout > 0
        ):
            raise ConfigurationError(
                f"emit_timeout must be a number of seconds > 0, got {self.emit_timeout!r}"
            )
        for name in ("prefetch", "live_buffer"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        if self.history_max_age is not None and not (
            isinstance(self.history_max_age, int | float) and self.history_max_age >= 1
        ):
            raise ConfigurationError("history_max_age must be >= 1 second or None")
        if self.history_max_bytes is not None and self.history_max_bytes < 1:
            raise ConfigurationError("history_max_bytes must be >= 1 or None")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RabbitMQOptions:
        """Options from ``HOOKBUS_*`` variables (see the module docs), defaults elsewhere."""
        values = values_from_env(_VARIABLES, env)
        assert set(values) <= {f.name for f in fields(cls)}
        return cls(**values)


_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("prefix", "HOOKBUS_AMQP_PREFIX", "str"),
    ("consume", "HOOKBUS_CONSUME", "bool"),
    ("emit_timeout", "HOOKBUS_EMIT_TIMEOUT", "float"),
    ("prefetch", "HOOKBUS_PREFETCH", "int"),
    ("history_max_age", "HOOKBUS_HISTORY_MAX_AGE", "float"),
)
