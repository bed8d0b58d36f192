"""Emitting in redis mode: concurrent emits pipelined together.

Every ``publish`` appends its envelope to a batch and returns a future of its
own result; one flusher task sends the whole batch as one ``STORE`` script call
(XADD + PUBLISH for each durable event, PUBLISH for each ephemeral one)
while the next batch gathers: one command and one reply per batch, however
many events it holds. So concurrent emits share round trips, and
each still returns only once its own entry is stored.

On a cluster, the keys of one event type share a slot, so a batch is sent
as one ``STORE`` call per event type, in one pipeline that the cluster
client splits by node. With ``min_replicas``, each node's part of the
pipeline ends with ``WAIT``, on the same connection: an emit returns only
once that many replicas have its event, and fails with
:class:`~hookbus.BusUnavailableError` otherwise (the event may still have been
stored: emitting it again can deliver it twice, never zero times).

When Redis cannot be reached the flusher retries with backoff until
``emit_timeout`` has passed since the oldest waiting emit, then fails the
waiting emits with :class:`~hookbus.BusUnavailableError`. The pipeline runs in
the flusher task, not in the emitter's: a cancelled ``emit`` cannot leave a
connection half-read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .._backoff import Backoff
from .._envelope import Envelope
from .._exceptions import BusClosedError, BusUnavailableError
from .._logging import log_extra
from .._redis_options import RedisOptions
from .client import Redis, is_transient, redis_errors, refresh_routes
from .keys import Keys
from .scripts import STORE

__all__ = ["Publisher"]

logger = logging.getLogger("hookbus")

MAX_BATCH = 500
MAX_TYPES = 127  # event types in one batch: their numbers fit in a byte below 128


class _Batch:
    """Emits waiting to be stored, as parallel lists: no object per emit besides its
    future (hundreds of emits are often in flight, and every object alive then is one
    more for the garbage collector to walk)."""

    __slots__ = ("durable", "futures", "payloads", "times", "types")

    def __init__(self) -> None:
        self.types: list[str] = []
        self.durable: list[bool] = []
        self.payloads: list[bytes] = []
        self.futures: list[asyncio.Future[None]] = []
        self.times: list[float] = []

    def __len__(self) -> int:
        return len(self.futures)

    def add(self, envelope: Envelope, future: asyncio.Future[None], now: float) -> None:
        self.types.append(envelope.type)
        self.durable.append(envelope.durable)
        self.payloads.append(envelope.encode())
        self.futures.append(future)
        self.times.append(now)

    def select(self, indexes: Iterable[int]) -> _Batch:
        """The emits at ``indexes``, as a batch of their own."""
        chosen = list(indexes)
        part = _Batch()
        for name in self.__slots__:
            items = getattr(self, name)
            setattr(part, name, [items[i] for i in chosen])
        return part

    def split(self, count: int) -> tuple[_Batch, _Batch]:
        """The first ``count`` emits, and the rest."""
        head, tail = _Batch(), _Batch()
        for name in self.__slots__:
            items = getattr(self, name)
            setattr(head, name, items[:count])
            setattr(tail, name, items[count:])
        return head, tail


class Publisher:
    """Stores durable envelopes in their streams, broadcasts ephemeral ones."""

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        options: RedisOptions,
        on_sent: Callable[[Envelope], None] | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._timeout = options.emit_timeout
        self._min_replicas = options.min_replicas
        self._replica_ms = max(1, int(options.replica_timeout * 1000))
        self._batch = _Batch()
        self._flusher: asyncio.Task[None] | None = None
        self._sha: str | None = None
        self._on_sent = on_sent
        self._names: dict[str, tuple[bytes, bytes, bytes]] = {}
        self._closed = False

    def publish(self, envelope: Envelope) -> asyncio.Future[None]:
        """Store (durable) or broadcast (ephemeral) one envelope: await the future
        returned, done once the envelope is stored (or failed)."""
        if self._closed:
            raise BusClosedError("the bus is stopped: it accepts no more events")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._batch.add(envelope, future, loop.time())
        if self._on_sent is not None:
            self._on_sent(envelope)
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name="hookbus:publisher")
        # If the emitter is cancelled, the future is too; the flusher skips it
        # (the event may still be stored: at least once).
        return future

    def _names_of(self, event_type: str) -> tuple[bytes, bytes, bytes]:
        """Stream, channel and counter names of a type, encoded once (the hot path
        sends bytes)."""
        keys = self._keys
        return (
            keys.stream(event_type).encode(),
            keys.live(event_type).encode(),
            keys.published(event_type).encode(),
        )

    async def close(self) -> None:
        """Refuse new envelopes; let the batches already taken finish."""
        self._closed = True
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush(self) -> None:
        backoff = Backoff()
        while len(self._batch):
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
                    await refresh_routes(self._client)
                    continue
                backoff.reset()
                _settle(batch, failures)
                break

    def _take(self) -> _Batch:
        """The next batch: the oldest envelopes, at most MAX_BATCH of MAX_TYPES types."""
        types: set[str] = set()
        count = 0
        for event_type in self._batch.types[:MAX_BATCH]:
            if event_type not in types:
                if len(types) == MAX_TYPES:
                    break
                types.add(event_type)
            count += 1
        batch, self._batch = self._batch.split(count)
        return batch

    def _expire(self, batch: _Batch, exc: BaseException) -> _Batch:
        """Fail the emits that waited ``emit_timeout``; keep the others."""
        now = asyncio.get_running_loop().time()
        waited = [now - t >= self._timeout for t in batch.times]
        if any(waited):
            _fail(
                batch.select(i for i, old in enumerate(waited) if old),
                BusUnavailableError(
                    f"Redis unreachable for {self._timeout:.1f}s (emit_timeout): {exc}"
                ),
            )
            return batch.select(i for i, old in enumerate(waited) if not old)
        return batch

    async def _send(self, batch: _Batch) -> list[Any]:
        """Store the batch; its failures, as (number, error) pairs."""
        if self._sha is None:
            self._sha = await self._client.script_load(STORE)
        if not self._keys.cluster and not self._min_replicas:
            keys, args = self._store_args(batch)
            failures: list[Any] = await self._client.evalsha(self._sha, len(keys), *keys, *args)
            return failures
        return await self._send_pipelined(batch)

    def _store_args(self, batch: _Batch) -> tuple[list[bytes], list[Any]]:
        """The KEYS and ARGV of one STORE call for ``batch`` (see ``scripts.STORE``)."""
        names = self._names
        numbers: dict[str, int] = {}
        streams: list[bytes] = []
        channels: list[bytes] = []
        kinds = bytearray()
        counter = b""
        for event_type, durable in zip(batch.types, batch.durable, strict=True):
            number = numbers.get(event_type)
            if number is None:
                try:
                    stream, channel, counter = names[event_type]
                except KeyError:
                    stream, channel, counter = names[event_type] = self._names_of(event_type)
                streams.append(stream)
                channels.append(channel)
                number = numbers[event_type] = len(streams)
            kinds.append(number if durable else number + 128)
        streams.append(counter)  # one counter for every type (one server) or one type
        return streams, [bytes(kinds), *channels, *batch.payloads]

    async def _send_pipelined(self, batch: _Batch) -> list[Any]:
        """One STORE per slot group (per event type on a cluster, else one), then
        ``WAIT`` on each node when replicas must confirm; failures as in ``_send``."""
        cluster = self._keys.cluster
        groups: dict[str, list[int]] = {}
        for index, event_type in enumerate(batch.types):
            groups.setdefault(event_type if cluster else "", []).append(index)
        pipe = self._client.pipeline(transaction=False)
        node_of: dict[str, str] = {}  # slot group -> node name ("" on one server)
        nodes: dict[str, Any] = {}
        for group, indexes in groups.items():
            keys, args = self._store_args(batch.select(indexes))
            # As a plain command: the cluster pipeline refuses its evalsha() method.
            pipe.execute_command("EVALSHA", self._sha, len(keys), *keys, *args)
            node = self._client.get_node_from_key(keys[0]) if cluster else None
            node_of[group] = node.name if node is not None else ""
            nodes[node_of[group]] = node
        if self._min_replicas:
            for node in nodes.values():
                target = {} if node is None else {"target_nodes": node}
                pipe.execute_command("WAIT", self._min_replicas, self._replica_ms, **target)
        replies = await pipe.execute(raise_on_error=False)
        failures: list[Any] = []
        for indexes, reply in zip(groups.values(), replies, strict=False):
            if isinstance(reply, Exception):
                if is_transient(reply) or isinstance(reply, redis_errors.NoScriptError):
                    raise reply
                for index in indexes:
                    failures += [index + 1, str(reply).encode()]
                continue
            for k in range(0, len(reply), 2):
                failures += [indexes[int(reply[k]) - 1] + 1, reply[k + 1]]
        if self._min_replicas:
            acks = dict(zip(nodes, replies[len(groups) :], strict=True))
            failures += self._unconfirmed(batch, groups, node_of, acks)
        return failures

    def _unconfirmed(
        self,
        batch: _Batch,
        groups: dict[str, list[int]],
        node_of: dict[str, str],
        acks: dict[str, Any],
    ) -> list[Any]:
        """Failures for the durable events whose node's ``WAIT`` counted fewer than
        ``min_replicas`` replicas, or whose slot moved meanwhile (written elsewhere)."""
        confirmed = {
            name
            for name, ack in acks.items()
            if not isinstance(ack, Exception) and int(ack) >= self._min_replicas
        }
        failures: list[Any] = []
        error = _UNREPLICATED % self._min_replicas
        for group, indexes in groups.items():
            node = node_of[group]
            if node in confirmed and (
                not node or self._client.get_node_from_key(self._names[group][0]).name == node
            ):
                continue
            for index in indexes:
                if batch.durable[index]:
                    failures += [index + 1, error]
        return failures


_UNREPLICATED = (
    b"REPLICAS stored, but fewer than %d replica(s) confirmed it in time: a failover may "
    b"lose it (emit it again to be sure; it may then be delivered twice)"
)


def _settle(batch: _Batch, failures: list[Any]) -> None:
    """Resolve the emits of a stored batch: failed ones with their error."""
    errors = {int(failures[i]): failures[i + 1] for i in range(0, len(failures), 2)}
    for number, future in enumerate(batch.futures, 1):
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
    if text.startswith("REPLICAS"):
        return BusUnavailableError(f"Redis {text.removeprefix('REPLICAS ')}")
    if isinstance(exc, redis_errors.OutOfMemoryError) or text.startswith("OOM"):
        return BusUnavailableError(f"Redis is out of memory (maxmemory reached): {text}")
    return BusUnavailableError(f"Redis refused the event: {text}")


def _fail(batch: _Batch, exc: BaseException) -> None:
    for future in batch.futures:
        if not future.done():
            future.set_exception(exc)
    logger.error(
        "hookbus could not store %d event(s): %r", len(batch), exc, extra=log_extra("redis")
    )
