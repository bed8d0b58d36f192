"""Options of the transactional outbox (``outbox_url``), with defaults and validation.

=================================  ====================================================
``HOOKBUS_OUTBOX_URL``             SQLAlchemy async URL of the outbox's database
                                   (``postgresql+asyncpg://...``, ``sqlite+aiosqlite:///...``)
``HOOKBUS_OUTBOX_POLL``            seconds between looks at the outbox when nothing woke
                                   the relay (PostgreSQL wakes it at each commit)
``HOOKBUS_OUTBOX_KEEP``            seconds sent rows are kept (0: deleted once sent)
``HOOKBUS_OUTBOX_RELAY``           ``0`` in processes that only write to the outbox
``HOOKBUS_OUTBOX_LEASE``           durable local mode: seconds after which rows a crashed
                                   process was handling are taken by another relay
=================================  ====================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ._env import values_from_env
from ._exceptions import ConfigurationError

__all__ = ["OutboxOptions"]

DEFAULT_POLL = 0.5
DEFAULT_BATCH = 200
DEFAULT_BACKLOG_WARNING = 1000
DEFAULT_LEASE = 30.0


@dataclass(frozen=True, slots=True)
class OutboxOptions:
    """How the outbox relay works.

    * ``relay``: run a relay in this process (default) — any number of
      processes may (PostgreSQL); ``False`` for processes that only write.
    * ``poll_interval``: seconds between looks when nothing woke the relay.
    * ``batch``: rows published per transaction of the relay.
    * ``keep_sent``: seconds sent rows are kept (``0``: deleted at once).
    * ``backlog_warning``: rows waiting above which the relay logs a warning
      (checked every few seconds, logged while the backlog grows).
    * ``lease``: durable local mode (local mode with an outbox) — rows stay in
      the outbox until every subscriber finished them; a relay renews its
      claim on them meanwhile, and rows of a process that died are taken
      again by another relay ``lease`` seconds later (by the next start at
      once on SQLite, which has one relay).
    """

    relay: bool = True
    poll_interval: float = DEFAULT_POLL
    batch: int = DEFAULT_BATCH
    keep_sent: float = 0.0
    backlog_warning: int = DEFAULT_BACKLOG_WARNING
    lease: float = DEFAULT_LEASE

    def __post_init__(self) -> None:
        for name in ("poll_interval", "keep_sent", "lease"):
            value = getattr(self, name)
            least = 0.0 if name == "keep_sent" else math.ulp(0.0)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= least):
                raise ConfigurationError(
                    f"outbox {name} must be a number of seconds, got {value!r}"
                )
        for name in ("batch", "backlog_warning"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"outbox {name} must be an integer >= 1, got {value!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OutboxOptions:
        """Options from ``HOOKBUS_OUTBOX_*`` variables, defaults elsewhere."""
        return cls(**values_from_env(_VARIABLES, env))


_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("relay", "HOOKBUS_OUTBOX_RELAY", "bool"),
    ("poll_interval", "HOOKBUS_OUTBOX_POLL", "float"),
    ("keep_sent", "HOOKBUS_OUTBOX_KEEP", "float"),
    ("lease", "HOOKBUS_OUTBOX_LEASE", "float"),
)
