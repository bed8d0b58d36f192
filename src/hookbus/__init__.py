"""hookbus: typed event hooks between the modules of an async back-end.

Declare events as :class:`Event` subclasses, subscribe handlers with
:meth:`EventBus.on`, emit with :meth:`EventBus.emit`. The same code runs
in-process (``local`` mode, the default), over Redis (``redis`` mode) or over
RabbitMQ (``rabbitmq`` mode).
"""

from ._bus import EventBus
from ._capabilities import Capabilities
from ._context import Delivery, current_delivery, current_envelope
from ._dead_letter import DeadLetter
from ._envelope import Envelope, decode_envelope
from ._event import Event, event_name, event_types, event_version, is_durable
from ._exceptions import (
    BusClosedError,
    BusUnavailableError,
    ConfigurationError,
    DeadLetterNotFoundError,
    DrainTimeoutError,
    DuplicateSubscriberError,
    EventTooLargeError,
    HookbusError,
    InvalidEnvelopeError,
    InvalidEventError,
    ListenerOverflowError,
    UnknownEventError,
    UnsupportedError,
)
from ._live import Listener, LiveStatistics
from ._rabbitmq_options import RabbitMQOptions
from ._redis_options import RedisOptions
from ._retry import RetryPolicy
from ._settings import Settings
from ._status import BusStatus, EventTypeStatus, Problem, Severity, SubscriberStatus
from ._subscription import SubscriberStats, Subscription
from ._upcast import upcaster

__version__ = "0.1.0"

__all__ = [
    "BusClosedError",
    "BusStatus",
    "BusUnavailableError",
    "Capabilities",
    "ConfigurationError",
    "DeadLetter",
    "DeadLetterNotFoundError",
    "Delivery",
    "DrainTimeoutError",
    "DuplicateSubscriberError",
    "Envelope",
    "Event",
    "EventBus",
    "EventTooLargeError",
    "EventTypeStatus",
    "HookbusError",
    "InvalidEnvelopeError",
    "InvalidEventError",
    "Listener",
    "ListenerOverflowError",
    "LiveStatistics",
    "Problem",
    "RabbitMQOptions",
    "RedisOptions",
    "RetryPolicy",
    "Settings",
    "Severity",
    "SubscriberStats",
    "SubscriberStatus",
    "Subscription",
    "UnknownEventError",
    "UnsupportedError",
    "__version__",
    "current_delivery",
    "current_envelope",
    "decode_envelope",
    "event_name",
    "event_types",
    "event_version",
    "is_durable",
    "upcaster",
]
