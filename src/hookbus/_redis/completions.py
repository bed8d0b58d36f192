"""Completion records of idempotent subscribers, in Redis (redis mode).

One sorted set per subscriber and event type (``<p>:done:<type>:<subscriber>``,
see :mod:`.keys`): event id -> the time it was completed, in milliseconds.
The consumer writes records in the same script as the acknowledgement
(``scripts.ACK_DONE``), which also drops those older than
``idempotency_retention``; a delivery is skipped when its event id has a
record within the retention. The consumer reads the records of a whole
batch in one ``ZMSCORE`` (:meth:`RedisCompletions.read_ahead`); retries and
reclaimed entries ask one ``ZSCORE`` each.
"""

from __future__ import annotations

import time

from .._envelope import Envelope
from .._subscription import Subscription
from .shared import RedisShared

__all__ = ["RedisCompletions"]


class RedisCompletions:
    """Reads (and, outside the consumer's acknowledgements, writes) completion records."""

    def __init__(self, shared: RedisShared) -> None:
        self._shared = shared
        #: Answers known for the batch being delivered: event id -> completed.
        self.known: dict[str, bool] = {}

    def key(self, sub: Subscription) -> str:
        """The sorted set of ``sub``'s completions."""
        return self._shared.keys.done(sub.event_name, sub.id)

    def horizon_ms(self) -> int:
        """Records older than this (ms since the epoch) are past the retention."""
        return int((time.time() - self._shared.settings.idempotency_retention) * 1000)

    async def read_ahead(self, sub: Subscription, event_ids: list[str]) -> None:
        """Read the records of ``event_ids`` in one round trip, for :meth:`done`."""
        scores = await self._shared.client.zmscore(self.key(sub), event_ids)
        horizon = self.horizon_ms()
        for event_id, score in zip(event_ids, scores, strict=True):
            self.known[event_id] = score is not None and score >= horizon

    async def done(self, sub: Subscription, envelope: Envelope) -> bool:
        known = self.known.get(envelope.id)
        if known is not None:
            return known
        score = await self._shared.client.zscore(self.key(sub), envelope.id)
        return score is not None and score >= self.horizon_ms()

    async def record(self, sub: Subscription, envelope: Envelope) -> None:
        await self._shared.client.zadd(self.key(sub), {envelope.id: int(time.time() * 1000)})
