"""Background upkeep of the redis mode, one task per process.

* **Leases**: entries a consumer holds (being handled, waiting for a retry,
  read but not handled yet) have their idle time reset every
  ``claim_idle / 3`` (XCLAIM ... JUSTID, which does not count a delivery),
  so a live consumer's slow handler never loses its entry to a reclaim.
* **Retention**: every ``trim_interval``, streams are trimmed by the
  retention policy with the ``TRIM`` script, which never deletes an entry a
  group has not acknowledged.
* **Heartbeat**: every ``claim_idle / 3``, each group this process consumes
  records it in ``<p>:live-consumers:<type>:<subscriber>`` until ``claim_idle``
  from now (``HEARTBEAT`` script, on the server's clock): ``hookbus status``
  counts live consumers from there. (``XINFO CONSUMERS`` alone cannot tell:
  Redis before 7.2 lists a consumer only once it was delivered something, and
  refreshes its idle time only when a read returns entries.)
* **Consumer names**: consumers idle longer than ``consumer_expiry`` that
  hold nothing pending are deleted (a consumer with pending entries never
  is: its entries would become unclaimable).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .._backoff import Backoff
from .._logging import log_extra
from .client import is_transient, refresh_routes
from .consumer import StreamConsumer
from .scripts import HEARTBEAT, TRIM
from .shared import RedisShared

__all__ = ["Maintenance"]

logger = logging.getLogger("hookbus")

CONSUMER_SWEEP_INTERVAL = 60.0


class Maintenance:
    """Runs leases, retention and consumer clean-up on their schedules."""

    def __init__(self, shared: RedisShared, consumers: Callable[[], list[StreamConsumer]]) -> None:
        """``consumers`` lists the durable subscriptions' consumers of this process."""
        self._shared = shared
        self._consumers = consumers
        self._trim_sha: str | None = None

    async def run(self) -> None:
        options = self._shared.options
        loop = asyncio.get_running_loop()
        lease_every = options.claim_idle / 3
        next_lease = next_trim = next_sweep = loop.time()
        backoff = Backoff(cap=5.0)
        while True:
            now = loop.time()
            try:
                if now >= next_lease:
                    await self.renew_leases()
                    await self.heartbeat()
                    next_lease = now + lease_every
                if now >= next_trim and (options.retention_maxlen or options.retention_max_age):
                    await self.trim()
                    next_trim = now + options.trim_interval
                if now >= next_sweep:
                    await self.sweep_consumers()
                    next_sweep = now + CONSUMER_SWEEP_INTERVAL
                backoff.reset()
                await asyncio.sleep(max(0.05, min(next_lease, next_trim, next_sweep) - loop.time()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    logger.exception(
                        "hookbus maintenance: unexpected error", extra=log_extra("redis")
                    )
                await backoff.sleep()
                await refresh_routes(self._shared.client)

    async def renew_leases(self) -> None:
        """Reset the idle time of every entry this process holds."""
        shared = self._shared
        pipe = shared.client.pipeline(transaction=False)
        queued = False
        for consumer in self._consumers():
            for stream, ids in consumer.held_ids().items():
                pipe.xclaim(stream, consumer.group, shared.consumer, 0, ids, justid=True)
                queued = True
        if queued:
            await pipe.execute(raise_on_error=False)

    async def heartbeat(self) -> None:
        """Record this process as a live consumer of the groups it consumes."""
        shared = self._shared
        ttl_ms = max(1, int(shared.options.claim_idle * 1000))
        for consumer in self._consumers():
            if consumer.task is not None:
                key = shared.keys.live_consumers(consumer.sub.event_name, consumer.group)
                await shared.client.eval(HEARTBEAT, 1, key, shared.consumer, ttl_ms)

    async def trim(self) -> int:
        """Apply the retention policy to every stream this process subscribes to."""
        shared = self._shared
        options = shared.options
        if self._trim_sha is None:
            self._trim_sha = await shared.client.script_load(TRIM)
        maxlen = str(options.retention_maxlen) if options.retention_maxlen else ""
        by_age = ""
        if options.retention_max_age:
            by_age = f"{int((time.time() - options.retention_max_age) * 1000)}-0"
        trimmed = 0
        for stream in sorted({c.stream for c in self._consumers()}):
            try:
                trimmed += int(
                    await shared.client.evalsha(self._trim_sha, 1, stream, maxlen, by_age)
                )
            except Exception as exc:
                if "NOSCRIPT" in str(exc):
                    self._trim_sha = None
                raise
        return trimmed

    async def sweep_consumers(self) -> None:
        """Delete consumers of our groups that are long idle and hold nothing."""
        shared = self._shared
        expiry_ms = shared.options.consumer_expiry * 1000
        for consumer in self._consumers():
            for stream in (consumer.stream, consumer.requeue):
                try:
                    infos = await shared.client.xinfo_consumers(stream, consumer.group)
                except Exception as exc:
                    if "NOGROUP" in str(exc) or "no such key" in str(exc):
                        continue
                    raise
                for info in infos:
                    name = info["name"]
                    if isinstance(name, bytes):
                        name = name.decode()
                    if (
                        name != shared.consumer
                        and int(info["pending"]) == 0
                        and int(info["idle"]) > expiry_ms
                    ):
                        await shared.client.xgroup_delconsumer(stream, consumer.group, name)
                        logger.info(
                            "hookbus: removed idle consumer %s of %s",
                            name,
                            consumer.group,
                            extra=log_extra("redis", subscriber=consumer.group),
                        )
