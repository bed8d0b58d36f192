"""The in-process backend (``mode="local"``), also the reference for the conformance suite.

Each subscription has a bounded queue (a deque) and one worker task that
takes envelopes from it in order and awaits the handler. ``publish`` only
appends to the queues of the event's subscriptions and wakes idle workers:
no task, lock or future is created per event. A failed delivery is re-queued
by a timer after its backoff delay, so the subscriber's other events keep
flowing meanwhile.

What this mode loses: everything still queued or waiting for a retry when the
process dies, and its dead letters (kept in memory) — unless the events were
emitted through an outbox (durable local mode): the relay hands each row over
with :meth:`LocalBackend.publish_tracked` and deletes it only once every
subscriber finished it, so a restart delivers what a crash interrupted.

Idempotent subscriptions, and every subscription in durable local mode, are
delivered one event at a time (:meth:`Deliverer.deliver`), since each event
then has a completion to record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime

from ._backend import Backend
from ._capabilities import Capabilities
from ._completions import Completions, MemoryCompletions
from ._context import _worker
from ._dead_letter import DeadLetter, error_type_name
from ._delivery import Action, Deliverer, RecordsUnavailableError
from ._envelope import Envelope
from ._exceptions import (
    BusClosedError,
    ConfigurationError,
    DeadLetterNotFoundError,
    DrainTimeoutError,
    error_text,
)
from ._ids import new_event_id
from ._local_status import local_status
from ._logging import log_extra
from ._settings import Settings
from ._status import BackendStatus
from ._subscription import SubscriberStats, Subscription, claim_subscriber

__all__ = ["LocalBackend"]

logger = logging.getLogger("hookbus")

_BATCH = 256  # queued deliveries run between two looks at the retries due
_PAUSE_EVERY = 256  # a queue this long (or a multiple) makes the emitter yield once
_PAUSE_MASK = _PAUSE_EVERY - 1


class _Worker(Deliverer):
    """Delivers one subscription's queue, in order, one event at a time."""

    __slots__ = (
        "_idle_waiters",
        "_space_waiters",
        "_timers",
        "backend",
        "low_water",
        "queue",
        "retries",
        "task",
        "unavailable",
        "waiter",
    )

    def __init__(self, sub: Subscription, backend: LocalBackend) -> None:
        super().__init__(sub, backend.executor, backend.completions, mode=backend.settings.mode)
        self.backend = backend
        self.queue: deque[Envelope] = deque()
        self.retries: deque[tuple[Envelope, int]] = deque()
        self.low_water = max(1, backend.settings.queue_size // 2)
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self._space_waiters: list[asyncio.Future[None]] = []
        self._idle_waiters: list[asyncio.Future[None]] = []
        #: Retries waiting for their delay, with their envelope.
        self._timers: dict[asyncio.TimerHandle, Envelope] = {}
        #: Deliveries in a row that found the completion records unreachable.
        self.unavailable = 0

    # -- emit side ---------------------------------------------------------

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait_space(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._space_waiters.append(fut)
        await fut

    # -- worker side ---------------------------------------------------------

    @property
    def pending(self) -> int:
        """Deliveries not finished: in the handler, queued, or waiting for a retry."""
        in_flight = 0 if self.current is None else 1
        return len(self.queue) + len(self.retries) + len(self._timers) + in_flight

    def held(self) -> list[Envelope]:
        """The envelopes delivered and not finished: in the handler, or waiting for a retry."""
        held = [envelope for envelope, _ in self.retries] + list(self._timers.values())
        return held if self.current is None else [self.current, *held]

    @property
    def idle(self) -> bool:
        return self.waiter is not None and not self.pending

    async def run(self) -> None:
        queue = self.queue
        retries = self.retries
        _worker.set(self)
        loop = asyncio.get_running_loop()
        backend = self.backend
        while True:
            while queue:
                if self.completions is not None or backend.tracking:
                    await self._deliver_next()
                else:
                    # A batch at a time: retries that came due meanwhile go next. With
                    # emitters waiting for room, the batch ends at the low-water mark.
                    count = min(len(queue), _BATCH)
                    if self._space_waiters:
                        count = max(1, min(count, len(queue) - self.low_water))
                    if self.sampler is None:
                        await self.deliver_queue(queue, count, self._failed)
                    else:  # metrics: the handler is timed
                        await self.deliver_queue_sampled(queue, count, self._failed, self.sampler)
                if self._space_waiters and len(queue) <= self.low_water:
                    _release(self._space_waiters)
                if retries:
                    await self._run_retries()
            if retries:
                await self._run_retries()
                continue
            self.current = None
            if self._space_waiters:
                _release(self._space_waiters)
            self.waiter = loop.create_future()
            if self._idle_waiters and not self._timers:
                _release(self._idle_waiters)
            await self.waiter

    async def _deliver_next(self) -> None:
        """Deliver the next queued envelope on its own (its completion is recorded)."""
        await self._deliver_one(self.queue.popleft(), 1)

    async def _run_retries(self) -> None:
        retries = self.retries
        while retries:
            await self._deliver_one(*retries.popleft())

    async def _deliver_one(self, envelope: Envelope, attempt: int) -> None:
        try:
            error = await self.deliver(envelope, attempt)
        except RecordsUnavailableError as exc:  # the outbox database is down: wait for it
            self.unavailable += 1
            delay = self.sub.retry.delay(min(self.unavailable, 10))
            logger.warning(
                "%s; %s %s waits %.1fs",
                exc,
                envelope.type,
                envelope.id,
                delay,
                extra=self.log_extra(envelope, attempt),
            )
            self._later(envelope, attempt, delay)
            return
        self.unavailable = 0
        if error is None:
            self.backend.finished(envelope)
        else:
            self._failed(envelope, attempt, error)

    def _failed(self, envelope: Envelope, attempt: int, error: BaseException) -> None:
        step = self.failure(envelope, attempt, error)
        if step.action is not Action.RETRY:
            if step.action is Action.DEAD_LETTER:
                self.backend.add_dead_letter(self.sub, envelope, attempt, error)
            self.backend.finished(envelope)
        else:
            self._later(envelope, attempt + 1, step.delay)

    def _later(self, envelope: Envelope, attempt: int, delay: float) -> None:
        """Deliver ``envelope`` again (as try ``attempt``) in ``delay`` seconds."""
        handle: asyncio.TimerHandle | None = None

        def due() -> None:
            assert handle is not None
            self._timers.pop(handle, None)
            self.retries.append((envelope, attempt))
            self.wake()

        handle = asyncio.get_running_loop().call_later(delay, due)
        self._timers[handle] = envelope

    async def wait_idle(self) -> None:
        if self.idle:
            return
        fut = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(fut)
        await fut

    def requeue(self, envelope: Envelope) -> None:
        self.queue.append(envelope)
        self.wake()

    async def cancel(self) -> int:
        """Stop now; return how many deliveries were abandoned."""
        abandoned = self.pending
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.queue.clear()
        self.retries.clear()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        self.waiter = None
        _release(self._space_waiters)
        _release(self._idle_waiters)
        return abandoned

    def stats(self) -> SubscriberStats:
        return self.snapshot(self.pending)


class _Tracked:
    """An envelope from the outbox, until every subscriber finished it."""

    __slots__ = ("done", "envelope", "remaining")

    def __init__(self, envelope: Envelope, remaining: int, done: asyncio.Future[None]) -> None:
        self.envelope = envelope
        self.remaining = remaining
        self.done = done


def _forward_failure(task: asyncio.Future[None], done: asyncio.Future[None]) -> None:
    """Fail ``done`` if the publish it tracks was refused (the bus stopped meanwhile)."""
    if not task.cancelled() and task.exception() is not None and not done.done():
        done.set_exception(task.exception())  # type: ignore[arg-type]


def _release(waiters: list[asyncio.Future[None]]) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)
    waiters.clear()


class LocalBackend(Backend):
    """In-process delivery: asynchronous, isolated, ordered per subscriber, retried."""

    capabilities = Capabilities(
        durable=False,
        ordered=True,
        survives_restart=False,
        multi_process=False,
        replay=False,
        persistent_dead_letters=False,
    )

    def __init__(self, settings: Settings, executor: Callable[[], Executor]) -> None:
        super().__init__(settings, executor)
        self._workers: dict[tuple[str, str], _Worker] = {}
        self._by_type: dict[str, tuple[_Worker, ...]] = {}
        self._dead: dict[str, DeadLetter] = {}
        self._running = False
        self._queue_size = settings.queue_size
        self._listeners = self.hub._listeners  # read per publish: is anyone listening?
        self._history: deque[Envelope] | None = None
        #: Where idempotent subscribers' completions are kept (the outbox's database
        #: in durable local mode, see :meth:`use_completions`).
        self.completions: Completions = MemoryCompletions(settings.idempotency_retention)
        #: Durable local mode: envelopes handed over by the outbox relay, by ``id()``,
        #: with the subscribers that have not finished them and the future to resolve.
        self.tracking = settings.outbox_url is not None and settings.mode == "local"
        self._tracked: dict[int, _Tracked] = {}

    def use_completions(self, completions: Completions) -> None:
        """Keep idempotent subscribers' completions in ``completions`` from now on."""
        self.completions = completions
        for worker in self._workers.values():
            if worker.completions is not None:
                worker.completions = completions

    def publish_tracked(self, envelope: Envelope) -> asyncio.Future[None]:
        """Publish an envelope from the outbox; the future resolves once every
        subscriber has finished it (handled, dead-lettered or dropped)."""
        done = asyncio.get_running_loop().create_future()
        count = len(self._by_type.get(envelope.type, ()))
        if not count:
            done.set_result(None)
            self.publish(envelope)  # live listeners still see it
            return done
        self._tracked[id(envelope)] = _Tracked(envelope, count, done)
        pending = self.publish(envelope)
        if pending is not None:
            accepted = asyncio.ensure_future(pending)
            accepted.add_done_callback(lambda task: _forward_failure(task, done))
        return done

    def finished(self, envelope: Envelope) -> None:
        """One subscriber has finished ``envelope`` (durable local mode bookkeeping)."""
        if self._tracked:
            tracked = self._tracked.get(id(envelope))
            if tracked is not None and tracked.envelope is envelope:
                tracked.remaining -= 1
                if tracked.remaining <= 0:
                    del self._tracked[id(envelope)]
                    if not tracked.done.done():
                        tracked.done.set_result(None)

    async def start(self) -> None:
        self._running = True
        for worker in self._workers.values():
            self._start_worker(worker)

    def _start_worker(self, worker: _Worker) -> None:
        if worker.task is None:
            worker.task = asyncio.get_running_loop().create_task(
                worker.run(), name=f"hookbus:{worker.sub.id}:{worker.sub.event_name}"
            )

    async def stop(self, timeout: float) -> None:
        with contextlib.suppress(DrainTimeoutError):
            await self.drain(timeout)
        self._running = False
        self.hub.close_all()  # live listeners end (feeds close their connections)
        abandoned = 0
        for worker in self._workers.values():
            abandoned += await worker.cancel()
        tracked, self._tracked = self._tracked, {}
        for entry in tracked.values():  # their outbox rows stay, for the next start
            entry.done.cancel()
        if abandoned:
            logger.warning(
                "local bus stopped after %.1fs with %d deliveries not done (lost)",
                timeout,
                abandoned,
                extra=log_extra(self.settings.mode),
            )

    def subscribe(self, subscription: Subscription) -> None:
        key = claim_subscriber(self._workers, subscription)
        worker = _Worker(subscription, self)
        self._workers[key] = worker
        name = subscription.event_name
        self._by_type[name] = (*self._by_type.get(name, ()), worker)
        if self._running:
            self._start_worker(worker)

    def publish(self, envelope: Envelope) -> Awaitable[None] | None:
        if self._listeners:
            self.hub.deliver(envelope)
        if self._history is not None and envelope.durable:
            self._history.append(envelope)
        workers = self._by_type.get(envelope.type)
        if not workers:
            return None
        limit = self._queue_size
        for index, worker in enumerate(workers):
            queue = worker.queue
            if len(queue) >= limit:
                return self._publish_waiting(envelope, workers[index:])
            queue.append(envelope)
            if worker.waiter is not None:
                worker.wake()
        if not len(queue) & _PAUSE_MASK:
            # A burst of emits that never yields would pile thousands of events
            # up before any handler runs (slow: they fall out of the CPU caches):
            # every _PAUSE_EVERY queued events, the emitter lets the workers run.
            return asyncio.sleep(0)
        return None

    async def _publish_waiting(self, envelope: Envelope, workers: tuple[_Worker, ...]) -> None:
        """The slow path of ``publish``: some queue is full."""
        limit = self._queue_size
        for worker in workers:
            queue = worker.queue
            if len(queue) >= limit:
                if not envelope.durable:
                    worker.dropped += 1
                    self.finished(envelope)
                    continue
                # A handler that emits must never wait on a queue that only
                # its own progress can empty: emits from handlers may overflow.
                while len(queue) >= limit and _worker.get() is None and worker.task:
                    await worker.wait_space()
            if worker.task is None:  # stopped while this emit waited: nobody would deliver it
                raise BusClosedError(
                    "the bus stopped while the event waited for room in a subscriber's queue"
                )
            queue.append(envelope)
            if worker.waiter is not None:
                worker.wake()

    def offer(self, envelope: Envelope) -> None:
        """Queue an envelope without ever waiting: full queues drop it (counted)."""
        for worker in self._by_type.get(envelope.type, ()):
            if len(worker.queue) >= self._queue_size:
                worker.dropped += 1
                continue
            worker.queue.append(envelope)
            if worker.waiter is not None:
                worker.wake()

    def keep_history(self, size: int) -> None:
        if self._history is None or (self._history.maxlen or 0) < size:
            self._history = deque(self._history or (), maxlen=size)

    async def events_after(
        self, event_id: str, types: frozenset[str] | None, limit: int
    ) -> list[Envelope] | None:
        history = list(self._history or ())
        for index, envelope in enumerate(history):
            if envelope.id == event_id:
                later = history[index + 1 :]
                return [e for e in later if types is None or e.type in types][:limit]
        return None

    def workers(self) -> list[_Worker]:
        """Every subscription's worker."""
        return list(self._workers.values())

    def deliverers(self) -> list[Deliverer]:
        return list(self._workers.values())

    async def drain(self, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                while busy := [w for w in self._workers.values() if not w.idle and w.task]:
                    await asyncio.gather(*(w.wait_idle() for w in busy))
        except TimeoutError:
            pending = sum(w.pending for w in self._workers.values())
            raise DrainTimeoutError(
                f"drain timed out after {timeout}s with {pending} deliveries still pending"
            ) from None

    def add_dead_letter(
        self, sub: Subscription, envelope: Envelope, attempts: int, exc: BaseException
    ) -> None:
        letter = DeadLetter(
            id=new_event_id(),
            subscriber=sub.id,
            event_type=envelope.type,
            event_id=envelope.id,
            envelope=envelope,
            attempts=attempts,
            error_type=error_type_name(exc),
            error_message=error_text(exc),
            failed_at=datetime.now(UTC),
        )
        logger.error(
            "subscriber %s gave up on %s %s after %d attempts: %r",
            sub.id,
            envelope.type,
            envelope.id,
            attempts,
            exc,
            extra=log_extra(
                self.settings.mode,
                subscriber=sub.id,
                event_type=envelope.type,
                event_id=envelope.id,
                attempt=attempts,
            ),
        )
        self._dead[letter.id] = letter
        while len(self._dead) > self.settings.max_dead_letters:
            oldest = next(iter(self._dead))
            dropped = self._dead[oldest]
            logger.error(
                "dead letter store full: dropping oldest %s",
                oldest,
                extra=log_extra(
                    self.settings.mode,
                    subscriber=dropped.subscriber,
                    event_type=dropped.event_type,
                    event_id=dropped.event_id,
                ),
            )
            del self._dead[oldest]

    async def dead_letters(self, subscriber: str | None, limit: int | None) -> list[DeadLetter]:
        letters = [d for d in self._dead.values() if subscriber in (None, d.subscriber)]
        return letters if limit is None else letters[:limit]

    async def retry_dead_letter(self, dead_letter_id: str) -> None:
        letter = self._dead.get(dead_letter_id)
        if letter is None:
            raise DeadLetterNotFoundError(f"no dead letter with id {dead_letter_id!r}")
        worker = self._workers.get((letter.subscriber, letter.event_type))
        if worker is None:
            raise ConfigurationError(
                f"subscriber {letter.subscriber!r} is not subscribed to {letter.event_type!r} "
                "on this bus; subscribe it before retrying its dead letters"
            )
        if letter.envelope is None:  # pragma: no cover - local dead letters always have one
            raise ConfigurationError(f"dead letter {dead_letter_id!r} has no event to retry")
        del self._dead[dead_letter_id]
        worker.requeue(letter.envelope)

    async def discard_dead_letter(self, dead_letter_id: str) -> None:
        if self._dead.pop(dead_letter_id, None) is None:
            raise DeadLetterNotFoundError(f"no dead letter with id {dead_letter_id!r}")

    def statistics(self) -> list[SubscriberStats]:
        return [w.stats() for w in self._workers.values()]

    async def status(self, subscriptions: Sequence[Subscription]) -> BackendStatus:
        return local_status(self._workers, list(self._dead.values()), subscriptions)
