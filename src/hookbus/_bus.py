""":class:`EventBus`: the one object modules use to emit and subscribe."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

from ._backend import Backend
from ._backends import create_backend
from ._capabilities import Capabilities
from ._context import _worker
from ._dead_letter import DeadLetter
from ._delivery import Deliverer
from ._envelope import Envelope
from ._event import Event, event_name, resolve_event_type
from ._exceptions import BusClosedError, ConfigurationError
from ._ids import new_event_id
from ._live import Listener, LiveStatistics
from ._local import LocalBackend
from ._retry import RetryPolicy
from ._settings import Settings, SettingsOptions
from ._size import EXACT, SizePlan, check_size, needs_check, size_plan
from ._status import BusStatus, diagnose
from ._subscription import (
    SubscriberStats,
    Subscription,
    check_subscriber_id,
    default_subscriber_id,
    is_async_callable,
)
from ._threads import on_loop_thread, run_on_loop

__all__ = ["EventBus"]

logger = logging.getLogger("hookbus")

E = TypeVar("E", bound=Event)
F = TypeVar("F", bound=Callable[..., Any])

#: Where ``emit`` hands an accepted envelope: the backend's ``publish`` (or an
#: instrument around it); an awaitable, if any, is awaited before emit returns.
Publish = Callable[[Envelope], Awaitable[None] | None]
#: Where ``emit(..., session=)`` hands it: the outbox write (or an instrument around it).
Write = Callable[[Any, Envelope], Awaitable[None]]


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class EventBus:
    """Emit typed events and subscribe handlers to them, in any mode.

    ``EventBus()`` reads its mode and options from the environment
    (``EVENT_BUS_MODE``, see :class:`Settings`); ``EventBus(mode="local")`` or
    ``EventBus(mode="redis", redis_url=...)`` or ``EventBus(mode="rabbitmq",
    amqp_url=...)`` choose explicitly, and keyword
    options (``max_event_size=``, ``queue_size=``, ``retry=``, ...) override
    single settings. Module code is the same in every mode.

    Use it as an async context manager (``async with bus:``) or call
    :meth:`start` and :meth:`stop`. Not thread-safe: call it from the event
    loop that started it; other threads (plain-function handlers, threads of
    the application) emit with :meth:`emit_sync`.
    """

    def __init__(
        self,
        mode: str | None = None,
        *,
        redis_url: str | None = None,
        amqp_url: str | None = None,
        outbox_url: str | None = None,
        settings: Settings | None = None,
        **options: Unpack[SettingsOptions],
    ) -> None:
        overrides: dict[str, Any] = dict(options)
        if mode is not None:
            overrides["mode"] = mode
        if redis_url is not None:
            overrides["redis_url"] = redis_url
        if amqp_url is not None:
            overrides["amqp_url"] = amqp_url
        if outbox_url is not None:
            overrides["outbox_url"] = outbox_url
        if settings is None:
            self._settings = Settings.from_env(**overrides)
        else:
            self._settings = settings.with_options(**overrides) if overrides else settings
        self._executor: ThreadPoolExecutor | None = None
        self._backend: Backend = create_backend(self._settings, self._get_executor)
        self._subscriptions: list[Subscription] = []
        self._types: dict[str, type[Event]] = {}
        self._state = _State.NEW
        self._accepting = False
        # Event classes already vetted -> their size plan, or None when no
        # instance can exceed the limit (every field fixed-size, and it fits).
        self._emittable: dict[type, SizePlan | None] = {}
        self._publish: Publish = self._backend.publish
        self._write: Write = _write_outbox
        #: Instruments installed on every subscription's deliverer (see _instrument).
        self._on_deliverer: list[Callable[[Deliverer], None]] = []
        self._max_size = self._settings.max_event_size
        self._source = self._settings.source
        self._lifecycle = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # while running: for emit_sync
        self._outbox: Any = None  # the outbox relay, while running with an outbox_url

    # -- configuration -------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The resolved settings."""
        return self._settings

    @property
    def mode(self) -> str:
        """``"local"`` or ``"redis"``."""
        return self._settings.mode

    @property
    def capabilities(self) -> Capabilities:
        """What the active backend guarantees (durable, ordered, ...)."""
        return self._backend.capabilities

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._state is _State.RUNNING

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """Every subscription made on this bus."""
        return tuple(self._subscriptions)

    @property
    def event_types(self) -> dict[str, type[Event]]:
        """The event types of this bus, by name: subscribed or registered (a copy)."""
        return dict(self._types)

    def register(self, *event_types: type[Event]) -> None:
        """Declare event types this bus emits by name without subscribing to them.

        Subscribed types are registered automatically. Event classes are also
        found by name globally, so this only matters when two classes share
        a name: the bus's own registration wins.
        """
        for cls in event_types:
            _check_event_type(cls)
            self._types[event_name(cls)] = cls

    def on(
        self,
        event_type: type[E] | str,
        *,
        name: str | None = None,
        max_attempts: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> Callable[[F], F]:
        """Decorator subscribing a handler to ``event_type``; returns the handler unchanged.

        ``name`` is the subscriber id (default ``"<module>.<qualname>"``); keep
        it stable, as in redis mode it names the consumer group.
        ``max_attempts`` and ``retry`` override the bus's retry policy;
        ``timeout`` (seconds) turns a handler that runs longer into a failed
        attempt. ``async def`` handlers run on the event loop; plain functions
        run in a worker thread (they emit with :meth:`emit_sync`).

        ``idempotent=True`` makes the subscriber effectively-once: an event id
        it already completed (a redelivery after a crash, a replay, a second
        relay of an outbox row) is acknowledged without running the handler
        again, for ``idempotency_retention`` seconds. For exactly-once effects
        on a database, record the completion in the handler's own transaction
        with :func:`hookbus.outbox.record_completion` (see docs/outbox.md).
        """

        def decorator(handler: F) -> F:
            self.subscribe(
                event_type,
                handler,
                name=name,
                max_attempts=max_attempts,
                retry=retry,
                timeout=timeout,
                idempotent=idempotent,
            )
            return handler

        return decorator

    def subscribe(
        self,
        event_type: type[E] | str,
        handler: Callable[[E], Any],
        *,
        name: str | None = None,
        max_attempts: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> Subscription:
        """Subscribe ``handler`` (the non-decorator form of :meth:`on`)."""
        cls: type[Event] = (
            resolve_event_type(event_type, self._types)
            if isinstance(event_type, str)
            else event_type
        )
        _check_event_type(cls)
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        policy = retry if retry is not None else self._settings.retry
        if max_attempts is not None:
            policy = RetryPolicy(max_attempts, policy.base_delay, policy.max_delay, policy.jitter)
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        subscription = Subscription(
            id=check_subscriber_id(name) if name is not None else default_subscriber_id(handler),
            event_type=cls,
            handler=handler,
            retry=policy,
            timeout=timeout,
            is_async=is_async_callable(handler),
            idempotent=bool(idempotent),
        )
        self._backend.subscribe(subscription)
        self._subscriptions.append(subscription)
        if self._on_deliverer:
            for deliverer in self._backend.deliverers():
                if deliverer.sub is subscription:
                    for install in self._on_deliverer:
                        install(deliverer)
        self._types.setdefault(event_name(cls), cls)
        return subscription

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start delivery (connect, in redis mode). Idempotent while running."""
        async with self._lifecycle:
            if self._state is _State.RUNNING:
                return
            await self._backend.start()
            if self._settings.outbox_url is not None:
                try:
                    await self._start_outbox(self._settings.outbox_url)
                except BaseException:
                    await self._backend.stop(0)
                    raise
            self._loop = asyncio.get_running_loop()
            self._state = _State.RUNNING
            self._accepting = True

    async def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully: refuse new emits, finish in-flight work, then cancel.

        In-flight and queued deliveries get ``timeout`` seconds (default
        ``settings.stop_timeout``); what is left after that is cancelled and
        logged. Calling it on a bus that is not running does nothing.
        """
        async with self._lifecycle:
            if self._state is not _State.RUNNING:
                return
            self._state = _State.STOPPING
            self._accepting = False
            outbox, self._outbox = self._outbox, None
            if outbox is not None:
                await outbox.pause()  # no more rows; durable local mode settles them below
            try:
                await self._backend.stop(
                    self._settings.stop_timeout if timeout is None else timeout
                )
            finally:
                if outbox is not None:
                    await outbox.stop()
                self._state = _State.STOPPED
                self._loop = None
                if self._executor is not None:
                    self._executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _get_executor(self) -> Executor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._settings.sync_workers, thread_name_prefix="hookbus"
            )
        return self._executor

    # -- emitting --------------------------------------------------------------

    async def emit(self, event: Event | str, /, *, session: Any = None, **fields: Any) -> str:
        """Emit an event; return its id once the bus has accepted it.

        Pass an :class:`Event` instance, or an event name and its fields
        (``emit("sale_closed", session_id=1, total="9.90")``), validated the
        same way. ``emit`` never runs, awaits or raises because of a
        subscriber; it may wait while a subscriber's queue is full
        (backpressure, local mode) or while the event is being stored
        (redis mode).

        ``session=``: an SQLAlchemy ``AsyncSession`` (or ``AsyncConnection``) in
        the caller's open transaction, on the outbox's database: the event is
        written to the outbox in that transaction instead of being sent, and
        exists only if it commits; the relay publishes it then (see
        :mod:`hookbus.outbox`). Needs ``outbox_url``. (An event with a field
        named ``session`` is emitted as an instance, not by name.)

        Raises :class:`UnknownEventError`, :class:`InvalidEventError`,
        :class:`EventTooLargeError`, :class:`BusClosedError` (bus not running)
        and, in redis and rabbitmq modes, :class:`BusUnavailableError`.
        """
        if fields or type(event) not in self._emittable:
            event = self._coerce(event, fields)
        plan = self._emittable[type(event)]
        if not self._accepting:
            raise BusClosedError(_closed_message(self._state))
        worker = _worker.get()
        if worker is None:
            envelope = Envelope(new_event_id(), event, self._source)  # type: ignore[arg-type]
        else:
            envelope = _child_envelope(event, self._source, worker.current)  # type: ignore[arg-type]
        if plan is not None:
            check_size(envelope, self._max_size, plan)
        if session is not None:
            return await self._emit_in(session, envelope)
        event_id = envelope.id
        pending = self._publish(envelope)
        if pending is not None:
            # Not kept alive while stored: hundreds of emits may wait at once.
            del envelope, event
            await pending
        return event_id

    async def emit_many(self, events: Iterable[Event], /, *, session: Any = None) -> list[str]:
        """Emit several events; return their ids, in order, once the bus has accepted all.

        Every event is vetted first (an :class:`Event` instance, valid, not too
        large): if one fails, the error is raised and none is emitted. They
        are then handed over in order, and each subscriber gets them in that
        order, as after a loop of :meth:`emit`. In redis mode they travel in
        the publisher's batches without a task or a wait per event: the
        fastest way to emit many events (far faster than gathering as many
        ``emit`` calls). In rabbitmq mode their publishes start in order and are
        confirmed together, as gathered emits are; in local mode, one after
        the other, as :meth:`emit` would.

        If the broker refuses some, the error of the first is raised once all
        the others are settled; some of them may then be stored already
        (emitting them again can deliver those twice, never zero times).
        ``session=``: as for :meth:`emit`, every event is written to the outbox
        in that transaction. Raises what :meth:`emit` raises.
        """
        envelopes = [self._envelope_of(event) for event in events]
        if session is not None:
            for envelope in envelopes:
                await self._emit_in(session, envelope)
            return [envelope.id for envelope in envelopes]
        ids = [envelope.id for envelope in envelopes]
        publish = self._publish
        in_order = self._backend.capabilities.ordered
        waiting: list[asyncio.Future[None]] = []
        try:
            for envelope in envelopes:
                pending = publish(envelope)
                if pending is None:
                    continue
                if isinstance(pending, asyncio.Future):
                    waiting.append(pending)  # in the publisher's batch already: order kept
                elif in_order:
                    await pending  # before the next one: order kept
                else:  # no order promised: started in order, confirmed together
                    waiting.append(asyncio.ensure_future(pending))
        except Exception:
            await _first_failure(waiting)  # the ones handed over settle first
            raise
        except BaseException:  # cancelled: the ones handed over may still be stored
            for future in waiting:
                future.cancel()
            raise
        del envelopes
        error = await _first_failure(waiting)
        if error is not None:
            raise error
        return ids

    def _envelope_of(self, event: Event) -> Envelope:
        """The vetted envelope of one event of :meth:`emit_many` (:meth:`emit` runs the
        same steps inline: it is the hot path)."""
        if not isinstance(event, Event):
            raise TypeError(f"emit_many() needs Event instances, got {event!r}")
        if type(event) not in self._emittable:
            event = self._coerce(event, {})
        plan = self._emittable[type(event)]
        if not self._accepting:
            raise BusClosedError(_closed_message(self._state))
        worker = _worker.get()
        envelope = _child_envelope(event, self._source, None if worker is None else worker.current)
        if plan is not None:
            check_size(envelope, self._max_size, plan)
        return envelope

    async def _emit_in(self, session: Any, envelope: Envelope) -> str:
        """The outbox side of ``emit(..., session=)``."""
        if self._outbox is None:
            raise ConfigurationError(
                "emit(..., session=) writes to the transactional outbox: configure it with "
                "EventBus(outbox_url=...) or HOOKBUS_OUTBOX_URL"
            )
        await self._write(session, envelope)
        self._outbox.expect()  # committed soon, most likely: no poll interval to wait
        return envelope.id

    async def _start_outbox(self, url: str) -> None:
        from .outbox import DurableLocalRelay, InboxCompletions, OutboxRelay

        settings = self._settings
        backend = self._backend
        relay: OutboxRelay
        if isinstance(backend, LocalBackend):  # durable local mode
            relay = DurableLocalRelay(
                url, backend.publish_tracked, settings.outbox, settings.idempotency_retention
            )
            engine = await relay.open()
            backend.use_completions(InboxCompletions(engine, settings.idempotency_retention))
        else:
            relay = OutboxRelay(
                url,
                backend.publish,
                settings.outbox,
                settings.idempotency_retention,
                mode=settings.mode,
            )
        try:
            await relay.start(settings.outbox.relay)
        except BaseException:
            await relay.stop()
            raise
        self._outbox = relay

    async def outbox_statistics(self) -> Any:
        """The outbox's backlog (:class:`hookbus.outbox.OutboxStatistics`): rows waiting,
        the age of the oldest, poisoned rows, rows this process relayed."""
        if self._outbox is None:
            raise ConfigurationError("no outbox: configure outbox_url, and start the bus")
        return await self._outbox.statistics()

    def emit_sync(self, event: Event | str, /, **fields: Any) -> str:
        """Emit from another thread than the bus's event loop; block until accepted.

        For plain-function handlers (they run in worker threads) and threads
        the application starts. It takes the same arguments as :meth:`emit`,
        runs it on the bus's event loop and returns the event id, or raises
        the same errors in the calling thread. An event emitted by a handler
        (async or plain) records the handled event as its cause and keeps its
        correlation id. From a handler it never waits for queue space; from
        another thread it waits while a subscriber's queue is full
        (backpressure, local mode), and the loop keeps running meanwhile.

        Raises :class:`BusClosedError` if the bus is not running or stops
        before accepting the event, and :class:`RuntimeError` when called on
        the bus's event loop thread, where waiting would block the loop that
        has to do the work: there, ``await bus.emit(...)``.
        """
        loop = self._loop
        if loop is None:
            raise BusClosedError(_closed_message(self._state))
        if on_loop_thread(loop):
            raise RuntimeError(
                "emit_sync() was called on the bus's event loop thread, where it would "
                "block the loop it waits for; use 'await bus.emit(...)' there"
            )
        return run_on_loop(self.emit(event, **fields), loop)

    def _coerce(self, event: Event | str, fields: dict[str, Any]) -> Event:
        """Build the event of an emit by name; vet an instance of a class not seen yet."""
        if isinstance(event, str):
            event = resolve_event_type(event, self._types)(**fields)
        elif not isinstance(event, Event):
            raise TypeError(f"emit() needs an Event instance or an event name, got {event!r}")
        elif fields:
            raise TypeError("emit() takes field values only with an event name, not an instance")
        cls = type(event)
        if cls not in self._emittable:
            self._emittable[cls] = self._size_plan(cls)
        return event

    def _size_plan(self, cls: type[Event]) -> SizePlan | None:
        """How emits of ``cls`` are checked against ``max_event_size`` (None: never needed)."""
        if self._backend.encodes_envelopes:
            return EXACT  # the encoding is needed anyway: measuring it is free
        return size_plan(cls) if needs_check(cls, self._max_size) else None

    # -- observing and repairing ----------------------------------------------

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every subscriber has finished every event emitted so far.

        Finished means handled, dead-lettered, or (ephemeral) dropped;
        pending retries are waited for. Raises :class:`DrainTimeoutError`
        after ``timeout`` seconds (default: wait as long as it takes).
        """
        await self._backend.drain(timeout)

    async def dead_letters(
        self, subscriber: str | None = None, *, limit: int | None = None
    ) -> list[DeadLetter]:
        """Events that used up their attempts, oldest first (optionally of one subscriber)."""
        return await self._backend.dead_letters(subscriber, limit)

    async def retry_dead_letter(self, dead_letter: DeadLetter | str) -> None:
        """Deliver a dead letter's event again to its subscriber, with fresh attempts.

        The dead letter is removed; if the event fails again it comes back as
        a new dead letter. Raises :class:`DeadLetterNotFoundError`.
        """
        await self._backend.retry_dead_letter(_letter_id(dead_letter))

    async def discard_dead_letter(self, dead_letter: DeadLetter | str) -> None:
        """Delete a dead letter for good. Raises :class:`DeadLetterNotFoundError`."""
        await self._backend.discard_dead_letter(_letter_id(dead_letter))

    def listen(self, *event_types: type[Event] | str, buffer: int | None = None) -> Listener:
        """A live listener of the events emitted from now on (of these types; all if none).

        Both kinds are seen: ephemeral events as broadcast, durable ones once
        stored. Use ``async with bus.listen(SaleClosed) as feed: async for
        envelope in feed: ...``; entering the ``async with`` waits until the
        listener is in place (redis mode: subscribed), so nothing emitted
        after it is missed. A listener more than ``buffer`` events
        behind (default ``live_buffer`` of the redis or rabbitmq options) is closed with
        :class:`ListenerOverflowError`; it never slows the bus.
        """
        names = [e if isinstance(e, str) else event_name(e) for e in event_types]
        for name in names:
            self._types.setdefault(name, resolve_event_type(name, self._types))
        settings = self._settings
        default = (
            settings.rabbitmq.live_buffer
            if settings.mode == "rabbitmq"
            else settings.redis.live_buffer
        )
        size = buffer if buffer is not None else default
        if size < 1:
            raise ConfigurationError(f"buffer must be >= 1, got {size!r}")
        return self._backend.hub.listen(names or None, size)

    def keep_history(self, size: int) -> None:
        """Let :meth:`events_after` look back ``size`` durable events in local mode
        (redis mode reads the streams and needs nothing)."""
        self._backend.keep_history(size)

    async def events_after(
        self, event_id: str, *event_types: type[Event] | str, limit: int = 1000
    ) -> list[Envelope] | None:
        """Durable events emitted after ``event_id``, oldest first (of these types; all if
        none): what a reconnecting feed missed. ``None`` if ``event_id`` is unknown (too
        old, or never seen). Local mode answers from the last events kept
        (:meth:`keep_history`); redis mode from the streams."""
        names = frozenset(e if isinstance(e, str) else event_name(e) for e in event_types)
        return await self._backend.events_after(event_id, names or None, limit)

    async def replay(
        self,
        subscriber: str,
        *,
        since: str | datetime,
        event_type: type[Event] | str | None = None,
    ) -> None:
        """Deliver a subscriber's events again, from an event id or a point in time.

        The subscriber's consumer group is set back so that every stored
        event from ``since`` on (the event with that id included) comes again,
        to that subscriber only; other subscribers are untouched. Limit it to
        one event type with ``event_type``. Needs ``capabilities.replay``
        (redis mode); raises :class:`UnsupportedError` otherwise.
        """
        name = (
            None
            if event_type is None
            else (event_type if isinstance(event_type, str) else event_name(event_type))
        )
        rewound = await self._backend.replay(subscriber, name, since)
        if not rewound and self.capabilities.replay:
            raise ConfigurationError(
                f"subscriber {subscriber!r} is not subscribed"
                + ("" if name is None else f" to {name!r}")
                + " on this bus"
            )

    async def status(
        self,
        previous: BusStatus | None = None,
        *,
        subscriptions: Iterable[Subscription] | None = None,
    ) -> BusStatus:
        """A snapshot of the bus: per event type and subscriber, what waits (lag), what is
        held unacknowledged (pending, and its oldest's age), live consumers, dead letters;
        the outbox's backlog; and the problems found (see :class:`BusStatus`).

        Pass the status taken before as ``previous`` to see what grows (a lag, the
        outbox's backlog). ``subscriptions`` reports on other subscriptions than this
        bus's: an admin bus that consumes nothing (``consume=False``) reports on an
        application's (``status(subscriptions=app.subscriptions)``), which is what
        ``hookbus status`` does. In redis and rabbitmq modes the bus must be started;
        the figures are those of every process, read from the broker.
        """
        subs = self._subscriptions if subscriptions is None else list(subscriptions)
        parts = await self._backend.status(subs)
        outbox = await self._outbox.statistics() if self._outbox is not None else None
        status = BusStatus(
            mode=self.mode,
            taken_at=datetime.now(UTC),
            event_types=parts.event_types,
            subscribers=parts.subscribers,
            outbox=outbox,
        )
        return replace(status, problems=diagnose(status, previous))

    def live_statistics(self) -> LiveStatistics:
        """Pub/Sub disconnects of this process, ephemeral events missed meanwhile, and
        durable events caught up from the streams for live listeners (redis mode)."""
        return self._backend.live_statistics()

    def statistics(self) -> list[SubscriberStats]:
        """Counters of every subscription in this process (handled, failed, retried, ...)."""
        return self._backend.statistics()

    # -- instruments (hookbus.metrics, hookbus.tracing) ------------------------

    def _instrument(
        self,
        *,
        publish: Callable[[Publish], Publish] | None = None,
        write: Callable[[Write], Write] | None = None,
        deliverer: Callable[[Deliverer], None] | None = None,
    ) -> None:
        """Install an instrument: ``publish`` and ``write`` wrap what emit hands its
        envelopes to; ``deliverer`` is called on the deliverer of every subscription,
        present and future. Without instruments emit calls the backend directly, and
        deliverers run handlers as they are."""
        if publish is not None:
            self._publish = publish(self._publish)
        if write is not None:
            self._write = write(self._write)
        if deliverer is not None:
            self._on_deliverer.append(deliverer)
            for each in self._backend.deliverers():
                deliverer(each)

    def _check_size_again(self, envelope: Envelope) -> None:
        """The size check of :meth:`emit`, for an envelope an instrument changed."""
        plan = self._emittable.get(type(envelope.event))
        if plan is not None:
            check_size(envelope, self._max_size, plan)

    def __repr__(self) -> str:
        state = self._state.value
        return f"<EventBus mode={self.mode} {state} subscriptions={len(self._subscriptions)}>"


async def _write_outbox(session: Any, envelope: Envelope) -> None:
    from .outbox import write

    await write(session, envelope)


async def _first_failure(futures: list[asyncio.Future[None]]) -> Exception | None:
    """Wait for every future; the first one's error, if any failed. Cancelled while
    waiting: the futures not done yet are cancelled too."""
    error: Exception | None = None
    for index, future in enumerate(futures):
        try:
            await future
        except asyncio.CancelledError:
            for rest in futures[index:]:
                rest.cancel()
            raise
        except Exception as exc:
            if error is None:
                error = exc
    return error


def _child_envelope(event: Event, source: str, parent: Envelope | None) -> Envelope:
    """Envelope of an event emitted while handling ``parent``: same correlation and trace."""
    if parent is None:
        return Envelope(new_event_id(), event, source)
    child = Envelope(
        new_event_id(),
        event,
        source,
        correlation_id=parent.correlation_id or parent.id,
        causation_id=parent.id,
        traceparent=parent.traceparent,
    )
    if parent.traceparent is not None and parent.tracestate is not None:
        child.set_trace(parent.traceparent, parent.tracestate)
    return child


def _check_event_type(cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Event)) or cls is Event:
        raise TypeError(f"expected a subclass of hookbus.Event, got {cls!r}")


def _letter_id(dead_letter: DeadLetter | str) -> str:
    return dead_letter if isinstance(dead_letter, str) else dead_letter.id


def _closed_message(state: _State) -> str:
    if state is _State.NEW:
        return "the bus is not started: use 'async with bus:' or 'await bus.start()' first"
    return "the bus is stopped (or stopping): it accepts no more events"
