"""The rabbitmq mode's status (see :mod:`hookbus._status`), read over AMQP.

Per subscriber, a passive declaration of its quorum queue gives the messages
ready in it (``lag``) and its consumers (``consumers``: the processes
consuming it; the broker drops a dead process's consumer with its connection).
Per durable type, a passive declaration of its history stream gives
``stored``. Dead letters are counted from the dead-letter log (read whole, as
``hookbus dead-letters list`` does).

AMQP does not tell how many messages are delivered and not acknowledged
(only the management plugin's HTTP API does), so ``pending`` and its oldest's
age are ``None``; messages waiting in a retry queue are not counted either.
A queue that does not exist (no process declaring the subscriber has
started) has no lag and no consumer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._status import BackendStatus, EventTypeStatus, SubscriberStatus
from .._subscription import Subscription
from .client import amqp_errors
from .dead_letters import DeadLetterLog
from .shared import RabbitShared

__all__ = ["rabbitmq_status"]


async def rabbitmq_status(
    shared: RabbitShared, dead_letters: DeadLetterLog, subscriptions: Sequence[Subscription]
) -> BackendStatus:
    """The status of ``subscriptions``."""
    counts: dict[tuple[str, str], int] = {}
    for letter in await dead_letters.list_letters(None, None):
        key = (letter.subscriber, letter.event_type)
        counts[key] = counts.get(key, 0) + 1
    names = shared.names
    probe = _Probe(shared)
    types: dict[str, EventTypeStatus] = {}
    rows: list[SubscriberStatus] = []
    try:
        for sub in subscriptions:
            name = sub.event_name
            if not sub.durable:
                types.setdefault(name, EventTypeStatus(name, False))
                rows.append(SubscriberStatus(sub.id, name, False, dead_letters=0))
                continue
            if name not in types:
                history = await probe.declare(names.history(name))
                stored = None if history is None else history[0]
                types[name] = EventTypeStatus(name, True, stored)
            queue = await probe.declare(names.queue(name, sub.id))
            ready, consumers = queue if queue is not None else (None, 0)
            rows.append(
                SubscriberStatus(
                    sub.id,
                    name,
                    True,
                    lag=ready,
                    consumers=consumers,
                    dead_letters=counts.get((sub.id, name), 0),
                )
            )
    finally:
        await probe.close()
    return BackendStatus(tuple(types.values()), tuple(rows))


class _Probe:
    """Passive declarations on a channel of its own (the broker closes the channel that
    asks about a missing queue: a new one is opened for the next question)."""

    def __init__(self, shared: RabbitShared) -> None:
        self._shared = shared
        self._channel: Any = None

    async def declare(self, queue: str) -> tuple[int, int] | None:
        """(messages ready, consumers) of ``queue``; ``None`` if it does not exist."""
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._shared.live_connection().channel(publisher_confirms=False)
        try:
            declared = await self._channel.declare_queue(queue, passive=True)
        except amqp_errors.ChannelNotFoundEntity:
            self._channel = None
            return None
        result = declared.declaration_result
        return int(result.message_count or 0), int(result.consumer_count or 0)

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._channel = None
