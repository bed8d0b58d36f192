"""Emitting in redis mode: concurrent emits pipelined together.

Every ``publish`` appends its envelope to a batch and waits for its own
result; one flusher task sends the batch as a single pipeline (``STORE``
script for durable events: XADD + PUBLISH; PUBLISH alone for ephemeral ones)
while the next batch gathers. So concurrent emits share round trips, and
each still returns only once its own entry is stored.

When Redis cannot be reached the flusher retries with backoff until
``emit_timeout`` has passed since the oldest waiting emit, then fails the
waiting emits with :class:`~hookbus.BusUnavailableError`. The pipeline runs in
the flusher task, not in the emitter's: a cancelled ``emit`` cannot leave a
connection half-read.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ._envelope import Envelope
from ._exceptions import BusClosedError, BusUnavailableError
from ._keys import Keys
from ._redis_client import Backoff, Redis, is_transient, redis_errors
from ._redis_scripts import STORE, live_message

__all__ = ["Publisher"]

logger = logging.getLogger("hookbus")

MAX_BATCH = 1000

_Waiting = tuple[Envelope, "asyncio.Future[bytes | None]", float]


class Publisher:
    """Stores durable envelopes in their streams, broadcasts ephemeral ones."""

    def __init__(self, client: Redis, keys: Keys, timeout: float) -> None:
        self._client = client
        self._keys = keys
        self._timeout = timeout
        self._batch: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None
        self._sha: str | None = None
        self._closed = False

    async def publish(self, envelope: Envelope) -> bytes | None:
        """Store (durable) or broadcast (ephemeral) one envelope; the stream id, if stored."""
        if self._closed:
            raise BusClosedError("the bus is stopped: it accepts no more events")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        self._batch.append((envelope, future, loop.time()))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name="hookbus:publisher")
        # If the emitter is cancelled, the future is too; the flusher skips it
        # (the event may still be stored: at least once).
        return await future

    async def close(self) -> None:
        """Refuse new envelopes; let the batches already taken finish."""
        self._closed = True
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush(self) -> None:
        backoff = Backoff()
        while self._batch:
            batch, self._batch = self._batch[:MAX_BATCH], self._batch[MAX_BATCH:]
            while batch:
                try:
                    results = await self._send(batch)
                except Exception as exc:
                    if not is_transient(exc):
                        _fail(batch, exc)
                        break
                    batch = self._expire(batch, exc)
                    await backoff.sleep()
                    continue
                backoff.reset()
                retry: list[_Waiting] = []
                for waiting, result in zip(batch, results, strict=True):
                    future = waiting[1]
                    if isinstance(result, redis_errors.NoScriptError):
                        retry.append(waiting)  # the server lost its scripts (restart)
                    elif isinstance(result, Exception):
                        if not future.done():
                            future.set_exception(_translate(result))
                    elif not future.done():
                        future.set_result(result if isinstance(result, bytes) else None)
                if retry:
                    self._sha = None
                batch = retry

    def _expire(self, batch: list[_Waiting], exc: BaseException) -> list[_Waiting]:
        """Fail the emits that waited ``emit_timeout``; keep the others."""
        now = asyncio.get_running_loop().time()
        expired = [w for w in batch if now - w[2] >= self._timeout]
        if expired:
            _fail(
                expired,
                BusUnavailableError(
                    f"Redis unreachable for {self._timeout:.1f}s (emit_timeout): {exc}"
                ),
            )
        return [w for w in batch if now - w[2] < self._timeout]

    async def _send(self, batch: list[_Waiting]) -> list[Any]:
        keys = self._keys
        if self._sha is None:
            self._sha = await self._client.script_load(STORE)
        sha = self._sha
        pipe = self._client.pipeline(transaction=False)
        for envelope, _, _ in batch:
            encoded = envelope.encode()
            channel = keys.live(envelope.type)
            if envelope.durable:
                pipe.evalsha(sha, 1, keys.stream(envelope.type), encoded, channel)
            else:
                pipe.publish(channel, live_message(None, encoded))
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, redis_errors.NoPermissionError):
        return BusUnavailableError(f"Redis refused to store the event (ACL): {exc}")
    if isinstance(exc, redis_errors.OutOfMemoryError):
        return BusUnavailableError(f"Redis is out of memory (maxmemory reached): {exc}")
    return BusUnavailableError(f"Redis refused the event: {exc}")


def _fail(batch: list[_Waiting], exc: BaseException) -> None:
    for _, future, _ in batch:
        if not future.done():
            future.set_exception(exc)
    logger.error("hookbus could not store %d event(s): %r", len(batch), exc)
