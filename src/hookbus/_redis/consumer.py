"""One durable subscription's consumer in one process (redis mode).

The subscription's consumer group (named by subscriber id) reads the event
type's stream and the subscriber's re-queue stream (dead letters sent back).
Per batch read, handlers run one event at a time, in order; successes are
acknowledged together at the end of the batch, never before the handler
returned. A failure keeps the entry pending: a timer brings it back after
the backoff delay (XCLAIM to ourselves, which also counts the delivery),
while the other entries keep flowing. After ``max_attempts`` deliveries,
crashes included (Redis counts them), the entry goes to the dead-letter
stream and is acknowledged, in one transaction.

Every ``claim_interval`` the consumer takes over entries that another
consumer of the group left pending longer than ``claim_idle`` (it died),
with XAUTOCLAIM; entries deleted from the stream meanwhile are counted as
lost and logged. Entries it holds (being handled, waiting for a retry, or
read but not yet handled) are renewed regularly so nobody takes them over.
An idempotent subscriber's completions are recorded by the script that
acknowledges its entries (:mod:`.completions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any, NamedTuple

from .._backoff import Backoff
from .._context import _worker
from .._delivery import Action, Deliverer
from .._envelope import Envelope
from .._exceptions import InvalidEnvelopeError, error_text
from .._subscription import SubscriberStats, Subscription
from .client import is_nogroup, is_transient, refresh_routes
from .completions import RedisCompletions
from .dead_letters import DeadLetterStore, UnwrittenLetter
from .groups import create_group, delivery_counts, hand_back, record_lost
from .scripts import ACK_DONE
from .shared import RedisShared

__all__ = ["StreamConsumer"]

logger = logging.getLogger("hookbus")

_Retry = tuple[bytes, bytes, int]  # stream key, entry id, attempt
#: An entry's fields: as redis-py parses them, or as the server sent them (flat).
Fields = dict[bytes, bytes] | list[bytes]


class _Entry(NamedTuple):
    """A stream entry being delivered (built only when it fails)."""

    stream: bytes
    id: bytes
    raw: bytes | None


class StreamConsumer(Deliverer):
    """Delivers one subscription's stream to its handler, in this process."""

    def __init__(self, shared: RedisShared, sub: Subscription) -> None:
        self._records = RedisCompletions(shared)
        super().__init__(sub, shared.executor, self._records, mode="redis")
        self.shared = shared
        keys = shared.keys
        self.group = sub.id
        self.stream = keys.stream(sub.event_name).encode()
        self.requeue = keys.requeue(sub.event_name, sub.id).encode()
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        #: True while waiting in XREADGROUP: stopping then need not wait for it.
        self.reading = False
        self.retries: deque[_Retry] = deque()
        #: Dead letters whose write failed (Redis error): their entries stay held
        #: until written, retried after ``_unwritten_backoff``.
        self.unwritten: deque[UnwrittenLetter] = deque()
        self._unwritten_backoff = Backoff()
        self._unwritten_due = 0.0
        self._timers: set[asyncio.TimerHandle] = set()
        self._held: dict[bytes, set[bytes]] = {self.stream: set(), self.requeue: set()}
        self._acks: dict[bytes, list[bytes]] = {self.stream: [], self.requeue: []}
        #: Event ids completed (idempotent subscription), recorded with the acks.
        self._completed: list[str] = []
        self._ack_done: Any = None
        #: An idempotent subscriber's batch, decoded ahead (entry id -> envelope).
        self._ahead: dict[bytes, Envelope] = {}
        self._last_read: dict[bytes, bytes] = {}
        self.max_event_size = shared.settings.max_event_size
        # The command name as bytes: redis-py then returns the reply as it came,
        # without building a dict of every entry's fields (see _payload). The
        # cluster client needs the name as text, to find the command's keys.
        self._read_command = "XREADGROUP" if shared.keys.cluster else b"XREADGROUP"
        self.reclaimed = 0

    # -- setup -------------------------------------------------------------------

    async def ensure_groups(self) -> None:
        """Create the group on both streams if missing (``group_start`` for a new one)."""
        start = "$" if self.shared.options.group_start == "new" else "0"
        if self.shared.keys.cluster:  # where dead letters are listed from (one stream per type)
            await self.shared.client.sadd(self.shared.keys.types(), self.sub.event_name)
        await create_group(self.shared.client, self.stream, self.group, start)
        await create_group(self.shared.client, self.requeue, self.group, "0")

    # -- the loop ----------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Deliveries this process has not finished."""
        held = sum(len(ids) for ids in self._held.values())
        return held + len(self.retries) + sum(len(a) for a in self._acks.values())

    async def run(self) -> None:
        _worker.set(self)
        backoff = Backoff()
        loop = asyncio.get_running_loop()
        next_claim = loop.time()
        outage = recreate = False
        while not self.stopping:
            try:
                if recreate:
                    await self._recreate_groups()
                    recreate = False
                if self.unwritten and loop.time() >= self._unwritten_due:
                    await self._write_dead_letters()
                if self.retries:
                    await self._run_retries()
                if loop.time() >= next_claim:
                    await self._reclaim()
                    next_claim = loop.time() + self.shared.options.claim_interval
                await self._read_batch(self._block_ms(loop.time(), next_claim))
                await self._flush_acks()
                if outage:
                    logger.warning(
                        "subscriber %s: Redis reachable again", self.sub.id, extra=self.log_extra()
                    )
                    outage = False
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_nogroup(exc):
                    recreate = True  # in the loop's try: a failure there is one more turn
                    continue
                if is_transient(exc):
                    if not outage:
                        logger.warning(
                            "subscriber %s: Redis unreachable (%r), retrying",
                            self.sub.id,
                            exc,
                            extra=self.log_extra(),
                        )
                        outage = True
                else:
                    logger.exception(
                        "subscriber %s: unexpected error", self.sub.id, extra=self.log_extra()
                    )
                await backoff.sleep()
                await refresh_routes(self.shared.client)
                await refresh_routes(self.shared.blocking)
        self.current = None

    def _block_ms(self, now: float, next_claim: float) -> int:
        """How long a read may block: until the next retry or reclaim is due."""
        due = next_claim
        if self.unwritten:
            due = min(due, self._unwritten_due)
        for handle in self._timers:
            due = min(due, handle.when())
        wait = min(self.shared.options.block, max(0.0, due - now))
        return max(1, int(wait * 1000))

    async def _read_batch(self, block_ms: int) -> None:
        self.reading = True
        try:
            response = await self.shared.blocking.execute_command(
                self._read_command,
                b"GROUP",
                self.group,
                self.shared.consumer,
                b"COUNT",
                self.shared.options.read_count,
                b"BLOCK",
                block_ms,
                b"STREAMS",
                self.stream,
                self.requeue,
                b">",
                b">",
            )
        finally:
            self.reading = False
        if isinstance(response, dict):  # RESP3
            response = list(response.items())
        batch: list[tuple[bytes, bytes, Fields]] = []
        for stream, entries in response or ():
            held = self._held[stream]
            for entry_id, fields in entries:
                held.add(entry_id)
                batch.append((stream, entry_id, fields))
            if entries:
                self._last_read[stream] = entries[-1][0]
        if self.completions is not None and batch:
            await self._read_records_ahead(batch)
        try:
            for index, (stream, entry_id, fields) in enumerate(batch):
                if self.stopping:
                    rest: dict[bytes, list[bytes]] = {}
                    for rest_stream, rest_id, _ in batch[index:]:
                        rest.setdefault(rest_stream, []).append(rest_id)
                    await self.hand_back(rest)
                    return
                try:
                    await self.deliver_entry(stream, entry_id, fields, 1)
                except Exception:  # as in _deliver_safely (one coroutine less per entry)
                    self._deliver_later(stream, entry_id, 1)
        finally:
            self._ahead.clear()
            self._records.known.clear()

    async def _read_records_ahead(self, batch: list[tuple[bytes, bytes, Fields]]) -> None:
        """An idempotent subscriber's batch: decode it, and read the completion records of
        all its events in one round trip (else one per event). Entries that do not
        decode are left to :meth:`deliver_entry`, which dead-letters them."""
        for stream, entry_id, fields in batch:
            raw = _payload(fields)
            if raw is not None and len(raw) <= self.max_event_size:
                with contextlib.suppress(Exception):
                    self._ahead[entry_id] = self.shared.decoded(
                        stream, entry_id, raw, self.sub.event_type
                    )
        event_ids = [envelope.id for envelope in self._ahead.values()]
        if event_ids:
            with contextlib.suppress(Exception):  # Redis down: each delivery asks (and waits)
                await self._records.read_ahead(self.sub, event_ids)

    # -- one delivery ------------------------------------------------------------

    async def _deliver_safely(
        self, stream: bytes, entry_id: bytes, fields: Fields, attempt: int
    ) -> None:
        """``deliver_entry``, and should anything unforeseen escape it, the entry comes back
        after a backoff delay instead of staying held, and the batch goes on."""
        try:
            await self.deliver_entry(stream, entry_id, fields, attempt)
        except Exception:
            self._deliver_later(stream, entry_id, attempt)

    def _deliver_later(self, stream: bytes, entry_id: bytes, attempt: int) -> None:
        """After an unforeseen error (logged here): deliver the entry again later."""
        logger.exception(
            "subscriber %s: unexpected error delivering %s entry %s; trying it again later",
            self.sub.id,
            stream.decode(errors="replace"),
            entry_id.decode(errors="replace"),
            extra=self.log_extra(attempt=attempt),
        )
        self._schedule(stream, entry_id, attempt, self.sub.retry.delay(attempt))

    async def deliver_entry(
        self, stream: bytes, entry_id: bytes, fields: Fields, attempt: int
    ) -> None:
        """Run the handler on one entry (held already); ack, retry later, or dead-letter it."""
        raw = _payload(fields)
        try:
            if raw is None:
                raise InvalidEnvelopeError(
                    "entry has no 'e' field (not written by hookbus); "
                    f"fields: {_field_names(fields)}"
                )
            if len(raw) > self.max_event_size:
                raise InvalidEnvelopeError(f"entry of {len(raw)} bytes, above max_event_size")
            envelope = self._ahead.get(entry_id) or self.shared.decoded(
                stream, entry_id, raw, self.sub.event_type
            )
        except InvalidEnvelopeError as exc:
            self.gave_up()
            await self._dead_letter(_Entry(stream, entry_id, raw), None, attempt, exc)
            return
        crashed = self.crashed_too_often(attempt)  # earlier deliveries crashed their consumer
        if crashed is not None:
            self.gave_up()
            await self._dead_letter(_Entry(stream, entry_id, raw), envelope, attempt - 1, crashed)
            return
        try:
            error = await self.deliver(envelope, attempt)
        finally:
            self.current = None
        if error is None:
            self._acks[stream].append(entry_id)
            return
        step = self.failure(envelope, attempt, error)
        if step.action is Action.RETRY:
            self._schedule(stream, entry_id, attempt + 1, step.delay)
        else:
            await self._dead_letter(_Entry(stream, entry_id, raw), envelope, attempt, error)

    def _schedule(self, stream: bytes, entry_id: bytes, attempt: int, delay: float) -> None:
        """Deliver a held entry again (as ``attempt``) after ``delay`` seconds."""
        handle: asyncio.TimerHandle | None = None

        def due() -> None:
            assert handle is not None
            self._timers.discard(handle)
            self.retries.append((stream, entry_id, attempt))

        handle = asyncio.get_running_loop().call_later(delay, due)
        self._timers.add(handle)

    async def _run_retries(self) -> None:
        client = self.shared.client
        while self.retries and not self.stopping:
            stream, entry_id, attempt = self.retries[0]
            # Claiming it again counts the delivery and checks it is still ours.
            claimed = await client.xclaim(stream, self.group, self.shared.consumer, 0, [entry_id])
            self.retries.popleft()  # only now: a Redis error above leaves it due
            if not claimed:
                self._held[stream].discard(entry_id)
                logger.warning(
                    "subscriber %s: entry %s vanished before its retry (trimmed by hand, "
                    "or taken over and handled elsewhere)",
                    self.sub.id,
                    entry_id.decode(),
                    extra=self.log_extra(attempt=attempt),
                )
                continue
            _, fields = claimed[0]
            await self._deliver_safely(stream, entry_id, fields, attempt)
        await self._flush_acks()

    async def _dead_letter(
        self, entry: _Entry, envelope: Envelope | None, attempts: int, exc: BaseException
    ) -> None:
        """Dead-letter a held entry (counted already); if Redis refuses the write,
        keep it held and try again later, while the other entries keep flowing."""
        self.unwritten.append(
            DeadLetterStore.prepare(
                subscriber=self.sub.id,
                event_type=self.sub.event_name,
                stream=entry.stream,
                entry_id=entry.id,
                payload=entry.raw,
                envelope=envelope,
                attempts=attempts,
                error=exc,
                failed_at=datetime.now(UTC),
                max_event_size=self.max_event_size,
            )
        )
        if len(self.unwritten) == 1:
            await self._write_dead_letters()

    async def _write_dead_letters(self) -> None:
        """Write the dead letters waiting, oldest first; on a Redis error, stop and
        schedule the next try (exponential backoff), never dropping one."""
        store = self.shared.dead_letters()
        while self.unwritten:
            letter = self.unwritten[0]
            try:
                await store.write(letter, self.group, self.requeue)
            except Exception as exc:
                if self._unwritten_backoff.failures == 0:
                    logger.warning(
                        "subscriber %s: cannot write a dead letter (%s); %d waiting, "
                        "retrying until Redis accepts it",
                        self.sub.id,
                        error_text(exc, 200),
                        len(self.unwritten),
                        extra=self.log_extra(),
                    )
                delay = self._unwritten_backoff.next_delay()
                self._unwritten_due = asyncio.get_running_loop().time() + delay
                return
            self.unwritten.popleft()
            self._held[letter.stream].discard(letter.entry_id)
        self._unwritten_backoff.reset()

    async def completed(self, envelope: Envelope) -> None:
        """Recorded with the acknowledgement (:meth:`_flush_acks`), atomically."""
        self._completed.append(envelope.id)
        self._records.known[envelope.id] = True  # a duplicate later in the batch: skipped

    async def _flush_acks(self) -> None:
        if self._completed:
            await self._flush_acks_and_records()
            return
        client = self.shared.client
        for stream, ids in self._acks.items():
            if not ids:
                continue
            batch = list(ids)
            if stream == self.requeue:  # re-queued entries are deleted once handled
                pipe = client.pipeline(transaction=False)
                pipe.xack(stream, self.group, *batch)
                pipe.xdel(stream, *batch)
                await pipe.execute()
            else:
                await client.xack(stream, self.group, *batch)
            self._acked(stream, len(batch))

    async def _flush_acks_and_records(self) -> None:
        """Acknowledge and record completions in one script (``scripts.ACK_DONE``)."""
        client = self.shared.client
        if self._ack_done is None or self._ack_done.registered_client is not client:
            self._ack_done = client.register_script(ACK_DONE)
        done = list(self._completed)
        main = list(self._acks[self.stream])
        again = list(self._acks[self.requeue])
        await self._ack_done(
            keys=[self._records.key(self.sub), self.stream, self.requeue],
            args=[
                self.group,
                int(time.time() * 1000),
                self._records.horizon_ms(),
                len(done),
                *done,
                len(main),
                *main,
                *again,
            ],
        )
        del self._completed[: len(done)]
        self._acked(self.stream, len(main))
        self._acked(self.requeue, len(again))

    def _acked(self, stream: bytes, count: int) -> None:
        """The first ``count`` ids waiting for acknowledgement on ``stream`` are done."""
        ids = self._acks[stream]
        held = self._held[stream]
        for entry_id in ids[:count]:
            held.discard(entry_id)
        del ids[:count]

    # -- recovery ----------------------------------------------------------------

    async def _reclaim(self) -> None:
        """Take over entries left pending by dead consumers of the group."""
        client = self.shared.client
        idle_ms = int(self.shared.options.claim_idle * 1000)
        count = self.shared.options.read_count
        for stream in (self.stream, self.requeue):
            start: Any = b"0-0"
            while not self.stopping:
                reply = await client.xautoclaim(
                    stream, self.group, self.shared.consumer, idle_ms, start, count=count
                )
                start, claimed = reply[0], reply[1]
                deleted = reply[2] if len(reply) > 2 else []
                if deleted:
                    self.lost += len(deleted)
                    await record_lost(self.shared, self.sub.id, stream, deleted)
                if claimed:
                    await self._deliver_claimed(stream, claimed)
                if start in (b"0-0", "0-0"):
                    break
        await self._flush_acks()

    async def _deliver_claimed(self, stream: bytes, claimed: list[Any]) -> None:
        ids = [entry_id for entry_id, _ in claimed]
        # Held (so renewed) only once counted: should that fail, nobody renews
        # them and they are taken over again after claim_idle.
        counts = await delivery_counts(self.shared, self.group, stream, ids)
        for entry_id in ids:
            self._held[stream].add(entry_id)
        self.reclaimed += len(claimed)
        for entry_id, fields in claimed:
            if self.stopping:
                return
            if fields is None:  # deleted between claim and read
                self._held[stream].discard(entry_id)
                continue
            await self._deliver_safely(stream, entry_id, fields, counts.get(entry_id, 2))

    async def _recreate_groups(self) -> None:
        """NOGROUP: the group (or the whole stream) is gone, e.g. Redis lost its data.

        Recreate it just after the last entry this process read, so that
        nothing newer is skipped and nothing older is replayed; with no such
        entry, as a new group would start.
        """
        for stream in (self.stream, self.requeue):
            last = self._last_read.get(stream)
            start: str | bytes = (
                last
                if last is not None
                else (
                    "$"
                    if stream == self.stream and self.shared.options.group_start == "new"
                    else "0"
                )
            )
            await create_group(self.shared.client, stream, self.group, start)
        logger.warning(
            "subscriber %s: consumer group was missing on %s (Redis restarted without its "
            "data?); recreated after the last entry read here",
            self.sub.id,
            self.stream.decode(),
            extra=self.log_extra(),
        )

    async def hand_back(self, held: dict[bytes, list[bytes]]) -> None:
        """Entries (by stream) this process will not handle, as it stops: to the
        group's other consumers at once (see :func:`groups.hand_back`)."""
        for stream, ids in held.items():
            await hand_back(self.shared, self.group, stream, ids)
            mine = self._held[stream]
            for entry_id in ids:
                mine.discard(entry_id)

    def held_ids(self) -> dict[bytes, list[bytes]]:
        """Entries this consumer holds, to renew (being handled, waiting, read)."""
        return {stream: list(ids) for stream, ids in self._held.items() if ids}

    def cancel_timers(self) -> None:
        """Drop the retry timers and due retries (their entries stay held)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.retries.clear()

    async def stop_task(self, timeout: float) -> None:
        """Let the current handler finish within ``timeout``, then cancel."""
        self.stopping = True
        task, self.task = self.task, None
        if task is None:
            return
        # Blocked in a read: cancel it (redis-py drops that connection, so no
        # reply is misread). An entry delivered at that very instant stays
        # pending and is taken over after claim_idle.
        if self.reading:
            task.cancel()  # no await before: the task is still in its read
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._flush_acks()
        if self.unwritten:
            await self._write_dead_letters()  # a last try; else handed back with the rest

    def stats(self) -> SubscriberStats:
        """The subscription's counters in this process."""
        return self.snapshot(self.pending)


def _payload(fields: Fields) -> bytes | None:
    """The ``e`` field of an entry (the last one, should another program write two):
    fields as redis-py parses them, or as the server sent them (name, value, ...)."""
    if isinstance(fields, dict):
        return fields.get(b"e")
    if len(fields) == 2 and fields[0] == b"e":  # what hookbus writes
        return fields[1]
    found = None
    for index in range(0, len(fields) - 1, 2):
        if fields[index] == b"e":
            found = fields[index + 1]
    return found


def _field_names(fields: Fields) -> str:
    """The first field names of a foreign entry, for its dead letter's message."""
    names = list(fields)[:10] if isinstance(fields, dict) else fields[0::2][:10]
    count = len(fields) if isinstance(fields, dict) else len(fields) // 2
    text = ", ".join(name[:40].decode(errors="replace") for name in names)
    more = f" and {count - 10} more" if count > 10 else ""
    return text + more if names else "none"
