"""What the parts of the rabbitmq backend share, in one explicit object.

The backend creates one :class:`RabbitShared` and hands it to each part
(publisher, consumers, live feed, dead letters, history): none of them
imports the backend class.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from .._event import Event, declared, event_types
from .._exceptions import BusUnavailableError
from .._live import LiveHub
from .._rabbitmq_options import RabbitMQOptions
from .._settings import Settings
from .names import Names

__all__ = ["RabbitShared"]


@dataclass(eq=False)
class RabbitShared:
    """The state and helpers every part of one rabbitmq backend uses."""

    settings: Settings
    names: Names
    #: This process's name (``<host>:<pid>:<random>``).
    consumer: str
    #: Thread pool for plain-function handlers, created on first use.
    executor: Callable[[], Executor]
    #: Live listeners of this process.
    hub: LiveHub
    #: The robust connection (set by ``start``).
    connection: Any = None
    #: Event classes of the types subscribed in this process, by name.
    types: dict[str, type[Event]] = field(default_factory=dict)

    @property
    def options(self) -> RabbitMQOptions:
        """The rabbitmq settings."""
        return self.settings.rabbitmq

    def live_connection(self) -> Any:
        """The connection (``BusUnavailableError`` before ``start``)."""
        if self.connection is None:
            raise BusUnavailableError("the rabbitmq backend is not started")
        return self.connection

    def known_types(self) -> set[str]:
        """Every event type this process knows: subscribed here, or declared."""
        return set(self.types) | set(event_types())

    def event_class(self, name: str) -> type[Event] | None:
        """The class of event type ``name``: subscribed here, or else declared."""
        return self.types.get(name) or declared(name)
