"""Emitting in redis mode: concurrent emits pipelined together.

Every ``publish`` appends its envelope to a batch and returns a future of its
own result; one flusher task sends the whole batch as one ``STORE`` script call
(XADD + PUBLISH for each durable event, PUBLISH for each ephemeral one)
while the next batch gathers: one command and one reply per batch, however
many events it holds. So concurrent emits share round trips, and
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
from collections.abc import Callable
from typing import Any

from .._backoff import Backoff
from .._envelope import Envelope
from .._exceptions import BusClosedError, BusUnavailableError
from .client import Redis, is_transient, redis_errors
from .keys import Keys
from .scripts import STORE

__all__ = ["Publisher"]

logger = logging.getLogger("hookbus")

MAX_BATCH = 500
MAX_TYPES = 127  # event types in one batch: their numbers fit in a byte below 128

_Waiting = tuple[Envelope, "asyncio.Future[None]", float]


class Publisher:
    """Stores durable envelopes in their streams, broadcasts ephemeral ones."""

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        timeout: float,
        on_sent: Callable[[Envelope], None] | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._timeout = timeout
        self._batch: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None
        self._sha: str | None = None
        self._on_sent = on_sent
        self._names: dict[str, tuple[bytes, bytes]] = {}
        self._published = keys.published().encode()
        self._closed = False

    def publish(self, envelope: Envelope) -> asyncio.Future[None]:
        """Store (durable) or broadcast (ephemeral) one envelope: await the future
        returned, done once the envelope is stored (or failed)."""
        if self._closed:
            raise BusClosedError("the bus is stopped: it accepts no more events")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._batch.append((envelope, future, loop.time()))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name="hookbus:publisher")
        # If the emitter is cancelled, the future is too; the flusher skips it
        # (the event may still be stored: at least once).
        return future

    def _names_of(self, event_type: str) -> tuple[bytes, bytes]:
        """Stream and channel names of a type, encoded once (the hot path sends bytes)."""
        return self._keys.stream(event_type).encode(), self._keys.live(event_type).encode()

    async def close(self) -> None:
        """Refuse new envelopes; let the batches already taken finish."""
        self._closed = True
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush(self) -> None:
        backoff = Backoff()
        while self._batch:
            batch = self._take()
            while batch:
                try:
                    failures = await self._send(batch)
                except Exception as exc:
                    if isinstance(exc, redis_errors.NoScriptError):
                        self._sha = None  # the server lost its scripts (restart)
                        continue
                    if not is_transient(exc):
                        _fail(batch, _translate(exc))
                        break
                    batch = self._expire(batch, exc)
                    await backoff.sleep()
                    continue
                backoff.reset()
                _settle(batch, failures)
                break

    def _take(self) -> list[_Waiting]:
        """The next batch: the oldest envelopes, at most MAX_BATCH of MAX_TYPES types."""
        types: set[str] = set()
        count = 0
        for envelope, _, _ in self._batch[:MAX_BATCH]:
            if envelope.type not in types:
                if len(types) == MAX_TYPES:
                    break
                types.add(envelope.type)
            count += 1
        batch, self._batch = self._batch[:count], self._batch[count:]
        return batch

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
        """Store the batch with one STORE call; its failures, as (number, error) pairs."""
        if self._sha is None:
            self._sha = await self._client.script_load(STORE)
        names = self._names
        numbers: dict[str, int] = {}
        streams: list[bytes] = []
        channels: list[bytes] = []
        kinds = bytearray()
        payloads: list[bytes] = []
        remember = self._on_sent
        for envelope, _, _ in batch:
            if remember is not None:
                remember(envelope)
            number = numbers.get(envelope.type)
            if number is None:
                try:
                    stream, channel = names[envelope.type]
                except KeyError:
                    stream, channel = names[envelope.type] = self._names_of(envelope.type)
                streams.append(stream)
                channels.append(channel)
                number = numbers[envelope.type] = len(streams)
            kinds.append(number if envelope.durable else number + 128)
            payloads.append(envelope.encode())
        streams.append(self._published)
        failures: list[Any] = await self._client.evalsha(
            self._sha, len(streams), *streams, bytes(kinds), *channels, *payloads
        )
        return failures


def _settle(batch: list[_Waiting], failures: list[Any]) -> None:
    """Resolve the emits of a stored batch: failed ones with their error."""
    errors = {int(failures[i]): failures[i + 1] for i in range(0, len(failures), 2)}
    for number, (_, future, _) in enumerate(batch, 1):
        if future.done():
            continue  # the emitter was cancelled
        error = errors.get(number) if errors else None
        if error is None:
            future.set_result(None)
        else:
            text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
            future.set_exception(_translate(Exception(text)))


def _translate(exc: Exception) -> Exception:
    text = str(exc)
    if isinstance(exc, redis_errors.NoPermissionError) or "NOPERM" in text:
        return BusUnavailableError(f"Redis refused to store the event (ACL): {text}")
    if isinstance(exc, redis_errors.OutOfMemoryError) or text.startswith("OOM"):
        return BusUnavailableError(f"Redis is out of memory (maxmemory reached): {text}")
    return BusUnavailableError(f"Redis refused the event: {text}")


def _fail(batch: list[_Waiting], exc: BaseException) -> None:
    for _, future, _ in batch:
        if not future.done():
            future.set_exception(exc)
    logger.error("hookbus could not store %d event(s): %r", len(batch), exc)
