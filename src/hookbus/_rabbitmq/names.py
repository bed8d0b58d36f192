"""Every RabbitMQ exchange and queue name hookbus uses, built in one place.

All names live under one prefix (option ``prefix``, default ``hookbus``):

==============================================  ==============================================
``<p>.events.<type>``                           fanout exchange, durable: every event of a type
``<p>.events``                                  fanout exchange, durable: every event of every
                                                type (each type's exchange is bound to it)
``<p>.q.<type>.<subscriber>``                   quorum queue: one subscriber's durable events
``<p>.retry.<type>.<subscriber>.<ms>``          quorum queue: that subscriber's events waiting
                                                ``<ms>`` milliseconds for a retry (message TTL),
                                                dead-lettered back to its queue
``<p>.history.<type>``                          stream: every durable event of a type (replay,
                                                feed resume), bounded by the history options
``<p>.done.<type>.<subscriber>``                stream: the event ids an idempotent subscriber
                                                completed, kept ``idempotency_retention``
``<p>.dead``                                    stream: dead letters, and the records of their
                                                retry or discard
``<p>.live.<consumer>``                         exclusive, auto-deleted queue of one process:
                                                ephemeral events, and what live listeners want
==============================================  ==============================================

Consumers (processes) are named ``<host>:<pid>:<random>``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Names", "retry_bucket_ms"]

#: Retry delays are rounded up to a power of two milliseconds, so that each
#: retry queue holds messages of one delay (expiring in order): at most 2x the
#: policy's delay, from 1 ms to about 73 hours.
_MAX_BUCKET_EXPONENT = 28


def retry_bucket_ms(delay: float) -> int:
    """The retry queue's delay (ms) for a backoff of ``delay`` seconds."""
    ms = max(1, int(delay * 1000))
    exponent = min(_MAX_BUCKET_EXPONENT, (ms - 1).bit_length())
    return 1 << exponent


@dataclass(frozen=True, slots=True)
class Names:
    """Builds exchange and queue names under one prefix."""

    prefix: str = "hookbus"

    def exchange(self, event_type: str) -> str:
        """The fanout exchange every event of ``event_type`` is published to."""
        return f"{self.prefix}.events.{event_type}"

    def all_events(self) -> str:
        """The exchange every type's exchange forwards to (listeners of every type)."""
        return f"{self.prefix}.events"

    def queue(self, event_type: str, subscriber: str) -> str:
        """One subscriber's quorum queue."""
        return f"{self.prefix}.q.{event_type}.{subscriber}"

    def retry(self, event_type: str, subscriber: str, delay_ms: int) -> str:
        """A subscriber's queue of events waiting ``delay_ms`` for their retry."""
        return f"{self.prefix}.retry.{event_type}.{subscriber}.{delay_ms}"

    def history(self, event_type: str) -> str:
        """The stream keeping every durable event of ``event_type``."""
        return f"{self.prefix}.history.{event_type}"

    def completions(self, event_type: str, subscriber: str) -> str:
        """The stream of the events an idempotent subscriber completed."""
        return f"{self.prefix}.done.{event_type}.{subscriber}"

    def dead(self) -> str:
        """The dead-letter stream."""
        return f"{self.prefix}.dead"

    def live(self, consumer: str) -> str:
        """One process's exclusive queue for ephemeral events and live listeners."""
        return f"{self.prefix}.live.{consumer}"
