"""The envelope being handled, visible to handler code.

Each delivery worker runs in its own task and sets a context variable to
itself once, when it starts; per event it only updates ``worker.current``
(a context-variable ``set`` per event would cost more than the rest of the
dispatch). A consequence: in a task that a handler spawns and that outlives
the handler, :func:`current_envelope` follows the worker to its next event;
capture the envelope before spawning if the task needs it.

A plain-function handler runs in a thread with a copy of the worker's
context in which the worker is replaced by :func:`pin_delivery`'s fixed
record of the delivery: the thread keeps seeing its own event (and events it
emits with ``emit_sync`` keep their causation) even if the worker moves on,
as it does when the handler times out.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._envelope import Envelope
    from ._subscription import Subscription

__all__ = [
    "Delivering",
    "Delivery",
    "current_delivery",
    "current_envelope",
    "pin_delivery",
]


class Delivering(Protocol):
    """What a delivery worker exposes to the code it runs."""

    current: Envelope | None
    attempt: int
    sub: Subscription


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of one event to one subscriber: what a handler may want to know."""

    envelope: Envelope
    #: The subscriber id.
    subscriber: str
    #: 1 for the first try, 2 for the first retry, ...
    attempt: int
    #: The subscription's ``max_attempts``: on the last attempt ``attempt == max_attempts``.
    max_attempts: int


@dataclass(slots=True)
class _Pinned:
    """One delivery as a worker saw it when a plain handler's thread started."""

    current: Envelope | None
    attempt: int
    sub: Subscription


_worker: ContextVar[Delivering | None] = ContextVar("hookbus_worker", default=None)


def pin_delivery() -> None:
    """Replace the worker of the current context by a fixed record of its delivery.

    Run it in a copied context (``ctx.run(pin_delivery)``) before handing that
    context to a thread; outside a delivery it does nothing.
    """
    worker = _worker.get()
    if worker is not None:
        _worker.set(_Pinned(worker.current, worker.attempt, worker.sub))


def current_envelope() -> Envelope | None:
    """The envelope of the event the calling handler is processing, else ``None``.

    Gives handlers the event id (for idempotency), time, correlation id and
    trace parent. Events emitted from inside a handler inherit its correlation
    id and trace parent, and record its id as their causation id.
    """
    worker = _worker.get()
    return None if worker is None else worker.current


def current_delivery() -> Delivery | None:
    """The delivery the calling handler is processing (envelope, subscriber, attempt), else None."""
    worker = _worker.get()
    if worker is None or worker.current is None:
        return None
    sub = worker.sub
    return Delivery(worker.current, sub.id, worker.attempt, sub.retry.max_attempts)
