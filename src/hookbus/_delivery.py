"""What happens to one delivery, decided the same way by every backend.

A backend keeps one :class:`Deliverer` per subscription (and per process).
For each event it calls :meth:`Deliverer.deliver`, which runs the handler
and counts the outcome; when the handler failed, :meth:`Deliverer.failure`
decides what comes next and logs it:

* ``RETRY`` after ``delay`` seconds (the subscription's backoff) while
  attempts remain;
* ``DEAD_LETTER`` once ``max_attempts`` tries failed (durable events);
* ``DROP`` for an ephemeral event, which is never retried.

Only how a retry is scheduled, how a dead letter is stored and how a success
is acknowledged differ between backends.

An idempotent subscription (``idempotent=True``) also gets the backend's
:class:`~hookbus._completions.Completions` store: :meth:`Deliverer.deliver`
skips an event the subscriber completed already, and records each
completion (:meth:`Deliverer.completed`; the redis consumer records it in
its acknowledgement instead).

A handler that raises :class:`asyncio.CancelledError` by itself (it awaited
something that was cancelled) has failed like any other; the cancellation is
propagated only when the bus is stopping, i.e. when the delivering task
itself is being cancelled.

Instruments (:mod:`hookbus.metrics`, :mod:`hookbus.tracing`) are installed
per deliverer with :meth:`Deliverer.instrument`, which recomposes the
invokers; without them, the invokers are the handler's own and nothing is
added to a delivery.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import inspect
import logging
from bisect import bisect_left
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple

from ._completions import Completions
from ._context import pin_delivery
from ._envelope import Envelope
from ._event import Event
from ._logging import log_extra
from ._subscription import SubscriberStats, Subscription

if TYPE_CHECKING:
    from ._timing import HandlerTimer

__all__ = [
    "Action",
    "Deliverer",
    "Invoker",
    "InvokerWrap",
    "Next",
    "RecordsUnavailableError",
    "bus_stopping",
    "make_invoker",
]

logger = logging.getLogger("hookbus")

#: What a backend calls for each delivery: an async function of the event.
Invoker = Callable[[Event], Awaitable[Any]]
#: An instrument around a deliverer's invoker (tracing): ``wrap(deliverer, invoke)``.
InvokerWrap = Callable[["Deliverer", Invoker], Invoker]


class RecordsUnavailableError(Exception):
    """An idempotent subscriber's completion records could not be read (their store is
    unreachable): the delivery waits, no attempt is counted."""


class Action(enum.Enum):
    """What becomes of a delivery whose handler failed."""

    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    DROP = "drop"


class Next(NamedTuple):
    """The decision after a failure: the action, and for ``RETRY`` the delay (seconds)."""

    action: Action
    delay: float = 0.0


def bus_stopping() -> bool:
    """True when the calling task is being cancelled (the bus stops), as opposed to
    a handler raising ``CancelledError`` by itself."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Deliverer:
    """One subscription's delivery in one process: handler, counters, decisions.

    ``current`` and ``attempt`` describe the delivery in progress; they are
    what :func:`hookbus.current_delivery` reports to the handler (the
    delivering task sets the ``_worker`` context variable to this object).
    """

    __slots__ = (
        "_handler",
        "attempt",
        "completions",
        "current",
        "dead_lettered",
        "dropped",
        "failed",
        "handled",
        "invoke",
        "invoke_one",
        "lost",
        "mode",
        "retried",
        "sampler",
        "skipped",
        "sub",
        "timer",
        "tracing",
    )

    def __init__(
        self,
        sub: Subscription,
        executor: Callable[[], Executor],
        completions: Completions | None = None,
        *,
        mode: str = "local",
    ) -> None:
        self.sub = sub
        #: The bus's mode, for log records.
        self.mode = mode
        self._handler = make_invoker(sub, executor)
        #: Instruments (see :meth:`instrument`).
        self.timer: HandlerTimer | None = None
        self.tracing: InvokerWrap | None = None
        self._compose()
        self.current: Envelope | None = None
        self.attempt = 1
        #: The completion records, for an idempotent subscription only.
        self.completions = completions if sub.idempotent else None
        self.reset_counters()

    def instrument(
        self, *, timer: HandlerTimer | None = None, tracing: InvokerWrap | None = None
    ) -> None:
        """Install handler timing (metrics) and/or tracing around the handler."""
        if timer is not None:
            self.timer = timer
        if tracing is not None:
            self.tracing = tracing
        self._compose()

    def _compose(self) -> None:
        """Set the invokers: ``invoke`` for :meth:`deliver_queue`, ``invoke_one`` for
        :meth:`deliver`, and ``sampler``, the timer a batch loop samples with (else
        ``None``: the backend calls :meth:`deliver_queue`, which times nothing)."""
        invoke = self._handler
        timer = self.timer
        if self.tracing is None:
            self.invoke = invoke
            self.invoke_one = invoke if timer is None else timer.timed(invoke)
            self.sampler = timer
        else:  # a span per delivery costs far more than a clock: every one is timed
            if timer is not None:
                invoke = timer.timed(invoke)
            self.invoke = self.invoke_one = self.tracing(self, invoke)
            self.sampler = None

    def reset_counters(self) -> None:
        """Start every counter at zero."""
        self.handled = self.failed = self.retried = 0
        self.dead_lettered = self.dropped = self.lost = self.skipped = 0

    async def deliver(self, envelope: Envelope, attempt: int) -> BaseException | None:
        """Run the handler on ``envelope`` (try number ``attempt``) and count the outcome.

        Returns ``None`` on success (or when an idempotent subscriber had
        completed the event: skipped), else the error the handler raised (pass
        it to :meth:`failure`). Re-raises :class:`asyncio.CancelledError` only
        when the bus is stopping, and raises :class:`RecordsUnavailableError`
        when the completion records cannot be read: the handler did not run,
        the backend tries again later without counting an attempt.
        """
        self.current = envelope
        self.attempt = attempt
        completions = self.completions
        if completions is not None:
            try:
                skip = await completions.done(self.sub, envelope)
            except Exception as exc:
                raise RecordsUnavailableError(
                    f"subscriber {self.sub.id}: cannot read its completion records ({exc!r})"
                ) from exc
            if skip:
                self.skipped += 1
                return None
        try:
            await self.invoke_one(envelope.event)
        except Exception as exc:
            self.failed += 1
            return exc
        except asyncio.CancelledError as exc:
            if bus_stopping():
                raise
            self.failed += 1  # raised by the handler itself
            return exc
        self.handled += 1
        if completions is not None:
            await self.completed(envelope)
        return None

    async def completed(self, envelope: Envelope) -> None:
        """Record that this idempotent subscriber completed ``envelope``'s event.

        A store that refuses the record is logged, not raised: the handler's
        work is done, and a later duplicate runs it again (at least once).
        """
        assert self.completions is not None
        try:
            await self.completions.record(self.sub, envelope)
        except Exception as exc:
            logger.warning(
                "subscriber %s: cannot record that %s %s was completed (%r); "
                "a redelivery would run the handler again",
                self.sub.id,
                envelope.type,
                envelope.id,
                exc,
                extra=self.log_extra(envelope),
            )

    async def deliver_queue(
        self,
        queue: deque[Envelope],
        count: int,
        failed: Callable[[Envelope, int, BaseException], None],
    ) -> None:
        """Deliver the first ``count`` envelopes of ``queue`` (first tries), in order.

        The steps of :meth:`deliver`, looped here: a coroutine per event would
        cost in-process delivery a fifth of its throughput. Each failure is
        passed to ``failed(envelope, 1, error)``.
        """
        invoke = self.invoke
        self.attempt = 1
        for _ in range(count):
            envelope = queue.popleft()
            self.current = envelope
            try:
                await invoke(envelope.event)
            except Exception as exc:
                self.failed += 1
                failed(envelope, 1, exc)
            except asyncio.CancelledError as exc:
                if bus_stopping():
                    raise
                self.failed += 1
                failed(envelope, 1, exc)
            else:
                self.handled += 1

    async def deliver_queue_sampled(
        self,
        queue: deque[Envelope],
        count: int,
        failed: Callable[[Envelope, int, BaseException], None],
        timer: HandlerTimer,
    ) -> None:
        """:meth:`deliver_queue`, timing the handler for ``timer`` (:attr:`sampler`).

        The first delivery of each run of ``timer.every`` is timed and counted
        for the whole run; the batch's time goes to the total. A clock read per
        delivery would cost in-process delivery a tenth of its throughput; a
        batch of one (a quiet bus) is timed exactly.
        """
        invoke = self.invoke
        every = timer.every
        bounds = timer.bounds
        counts = timer.counts
        clock = perf_counter
        self.attempt = 1
        left = count
        if not left:
            return
        begin = start = clock()
        while True:
            run = every if left > every else left
            left -= run
            envelope = queue.popleft()
            self.current = envelope
            try:
                await invoke(envelope.event)
            except Exception as exc:
                self.failed += 1
                failed(envelope, 1, exc)
            except asyncio.CancelledError as exc:
                if bus_stopping():
                    raise
                self.failed += 1
                failed(envelope, 1, exc)
            else:
                self.handled += 1
            end = clock()
            counts[bisect_left(bounds, end - start)] += run
            for _ in range(run - 1):  # the loop of deliver_queue
                envelope = queue.popleft()
                self.current = envelope
                try:
                    await invoke(envelope.event)
                except Exception as exc:
                    self.failed += 1
                    failed(envelope, 1, exc)
                except asyncio.CancelledError as exc:
                    if bus_stopping():
                        raise
                    self.failed += 1
                    failed(envelope, 1, exc)
                else:
                    self.handled += 1
            if not left:
                break
            start = clock()
        timer.total += (end if run == 1 else clock()) - begin

    def failure(self, envelope: Envelope, attempt: int, exc: BaseException) -> Next:
        """What comes after try ``attempt`` of ``envelope`` failed with ``exc``; counted
        and logged here, carried out by the backend."""
        sub = self.sub
        if not envelope.durable:
            logger.warning(
                "subscriber %s failed on ephemeral event %s %s (not retried): %r",
                sub.id,
                envelope.type,
                envelope.id,
                exc,
                extra=self.log_extra(envelope, attempt),
            )
            return Next(Action.DROP)
        retry = sub.retry
        if attempt >= retry.max_attempts:
            self.gave_up()
            return Next(Action.DEAD_LETTER)
        delay = retry.delay(attempt)
        logger.info(
            "subscriber %s failed on %s %s (attempt %d/%d), retrying in %.3fs: %r",
            sub.id,
            envelope.type,
            envelope.id,
            attempt,
            retry.max_attempts,
            delay,
            exc,
            extra=self.log_extra(envelope, attempt),
        )
        self.retried += 1
        return Next(Action.RETRY, delay)

    def log_extra(
        self, envelope: Envelope | None = None, attempt: int | None = None
    ) -> dict[str, Any]:
        """The extras of a log record about this subscription (and ``envelope``)."""
        return log_extra(
            self.mode,
            subscriber=self.sub.id,
            event_type=self.sub.event_name,
            event_id=None if envelope is None else envelope.id,
            attempt=attempt,
        )

    def crashed_too_often(self, attempt: int) -> BaseException | None:
        """For a broker that counts deliveries (crashes included): the error to
        dead-letter with when delivery number ``attempt`` is past ``max_attempts``."""
        if attempt <= self.sub.retry.max_attempts:
            return None
        return RuntimeError(f"delivered {attempt - 1} times without being acknowledged")

    def gave_up(self) -> None:
        """Count one event this subscriber will not handle: a dead letter (the
        backend logs it once stored, with where it is)."""
        self.dead_lettered += 1

    def snapshot(self, queued: int) -> SubscriberStats:
        """The counters as a :class:`SubscriberStats` record."""
        sub = self.sub
        return SubscriberStats(
            subscriber=sub.id,
            event_type=sub.event_name,
            handled=self.handled,
            failed=self.failed,
            retried=self.retried,
            dead_lettered=self.dead_lettered,
            dropped=self.dropped,
            queued=queued,
            lost=self.lost,
            skipped=self.skipped,
        )


def make_invoker(sub: Subscription, executor: Callable[[], Executor]) -> Invoker:
    """The async callable a backend awaits for one delivery.

    Async handlers are returned as they are (nothing added to the hot path);
    plain functions run in the bus's thread pool with a copy of the caller's
    context in which the delivery is pinned (see :func:`pin_delivery`);
    a ``timeout`` wraps either.
    """
    invoke: Invoker = sub.handler if sub.is_async else _threaded(sub.handler, executor)
    if sub.timeout is not None:
        invoke = _with_timeout(invoke, sub.timeout)
    return invoke


def _threaded(handler: Callable[[Event], Any], executor: Callable[[], Executor]) -> Invoker:
    async def run_in_thread(event: Event) -> None:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        ctx.run(pin_delivery)
        result = await loop.run_in_executor(executor(), ctx.run, handler, event)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError(
                f"handler {handler!r} is a plain function but returned an awaitable; "
                "declare it with 'async def' so it runs on the event loop"
            )

    return run_in_thread


def _with_timeout(invoke: Invoker, seconds: float) -> Invoker:
    async def run_with_timeout(event: Event) -> None:
        async with asyncio.timeout(seconds):
            await invoke(event)

    return run_with_timeout
