"""The envelope being handled, visible to handler code.

Each delivery worker runs in its own task and sets a context variable to
itself once, when it starts; per event it only updates ``worker.current``
(a context-variable ``set`` per event would cost more than the rest of the
dispatch). A consequence: in a task that a handler spawns and that outlives
the handler, :func:`current_envelope` follows the worker to its next event;
capture the envelope before spawning if the task needs it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._envelope import Envelope

__all__ = ["Delivering", "current_envelope"]


class Delivering(Protocol):
    """What a delivery worker exposes to the code it runs."""

    current: Envelope | None


_worker: ContextVar[Delivering | None] = ContextVar("hookbus_worker", default=None)


def current_envelope() -> Envelope | None:
    """The envelope of the event the calling handler is processing, else ``None``.

    Gives handlers the event id (for idempotency), time, correlation id and
    trace parent. Events emitted from inside a handler inherit its correlation
    id and trace parent, and record its id as their causation id.
    """
    worker = _worker.get()
    return None if worker is None else worker.current
