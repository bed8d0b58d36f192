"""Idempotent subscribers in rabbitmq mode against a real broker: completion records are
shared by the subscriber's processes (a stream each follows) and outlive them."""

from __future__ import annotations

import pytest

from hookbus import Envelope, Event, EventBus, current_envelope
from hookbus._rabbitmq.backend import RabbitMQBackend
from hookbus.testing._idempotent_conformance import publish_again, stats_of
from hookbus.testing.rabbitmq_server import RabbitMQServer
from rabbitmq_bus import new_prefix, rabbitmq_bus
from redis_helpers import wait_until

pytestmark = pytest.mark.rabbitmq

SUBSCRIBER = "invoicing"


class Invoiced(Event, name="rmq.idempotent.invoiced"):
    n: int


class Process:
    """One bus (a process of the subscriber) and what its handler received."""

    def __init__(self, url: str, prefix: str) -> None:
        self.bus: EventBus = rabbitmq_bus(url, prefix)
        self.received: list[Envelope] = []
        self.bus.subscribe(Invoiced, self._handle, name=SUBSCRIBER, idempotent=True)

    async def _handle(self, event: Invoiced) -> None:
        envelope = current_envelope()
        assert envelope is not None
        self.received.append(envelope)

    def handled_skipped(self) -> tuple[int, int]:
        return stats_of(self.bus, SUBSCRIBER)

    def knows(self, event_id: str) -> bool:
        """Whether this process's completion records hold ``event_id``."""
        backend = self.bus._backend
        assert isinstance(backend, RabbitMQBackend)
        records = backend._consumers[(SUBSCRIBER, Invoiced.__event_name__)].records
        assert records is not None
        return event_id in records._records


async def test_a_completion_is_seen_by_every_process_and_outlives_them(
    rabbitmq_server: RabbitMQServer,
) -> None:
    prefix = new_prefix()
    first, second = Process(rabbitmq_server.url, prefix), Process(rabbitmq_server.url, prefix)
    await first.bus.start()
    await second.bus.start()
    try:
        await first.bus.emit(Invoiced(n=1))

        async def one_handled() -> bool:
            return len(first.received) + len(second.received) >= 1

        await wait_until(one_handled, 10, "a process to handle the event")
        done, other = (first, second) if first.received else (second, first)
        [envelope] = done.received
        assert envelope.event == Invoiced(n=1)

        async def other_knows() -> bool:
            return other.knows(envelope.id)

        # The other process follows the records: it learns of the completion.
        await wait_until(other_knows, 10, "the other process to read the completion")
        await done.bus.stop()  # the duplicate can only go to the other process now
        await publish_again(other.bus, envelope)

        async def other_delivered() -> bool:
            return sum(other.handled_skipped()) >= 1

        await wait_until(other_delivered, 10, "the duplicate to reach the other process")
        assert other.handled_skipped() == (0, 1)
        assert other.received == []
        assert [e.id for e in done.received] == [envelope.id]
        assert done.handled_skipped() == (1, 0)
    finally:
        await first.bus.stop()
        await second.bus.stop()

    # Every process that knew the completion is gone; a new one reads it at start.
    later = Process(rabbitmq_server.url, prefix)
    async with later.bus:
        assert later.knows(envelope.id)
        await publish_again(later.bus, envelope)
        await later.bus.emit(Invoiced(n=2))

        async def later_delivered() -> bool:
            return sum(later.handled_skipped()) >= 2

        await wait_until(later_delivered, 10, "both events to reach the new process")
        assert later.handled_skipped() == (1, 1)
        assert [e.event for e in later.received] == [Invoiced(n=2)]
        assert envelope.id not in [e.id for e in later.received]
