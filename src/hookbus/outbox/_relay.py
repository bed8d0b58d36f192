"""The outbox relay: publishes committed outbox rows to the bus's backend.

Started with the bus when ``outbox_url`` is set. Each pass takes the oldest
rows not sent yet, in a transaction, publishes them in order through the
backend (as ``emit`` would), and deletes them (or marks them sent, with
``keep_sent``) in the same transaction. Should the backend be unavailable,
the pass commits what it sent and stops; the rest waits for the next pass,
with backoff — nothing is lost, nothing raised to the code that emitted.

* **PostgreSQL**: rows are taken ``FOR UPDATE SKIP LOCKED``, so any number
  of relays (processes) share the work and never send one row twice in
  parallel; every commit of a row sends ``NOTIFY hookbus_outbox``, which
  wakes the relays at once (polling every ``poll_interval`` as a fallback).
* **SQLite**: no row locks: one relay per database file at a time. Any
  number of processes may start one: the one holding the file's relay lock
  relays, the others stand by and take over when it dies
  (:mod:`._relay_lock`). The relay polls — every few milliseconds for a
  second after this process wrote a row (its commit cannot be observed), else
  every ``poll_interval``.

A row that cannot be decoded any more (its event type no longer declared,
or garbage) is marked with the error and skipped: it blocks nothing.

Every few seconds the relay also looks at the backlog (logged while it
grows past ``backlog_warning``) and deletes inbox records older than the
idempotency retention. In local mode the relay is a
:class:`~hookbus.outbox._durable_local.DurableLocalRelay` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .._backoff import Backoff
from .._envelope import Envelope, decode_envelope
from .._event import declared
from .._exceptions import InvalidEnvelopeError, error_text
from .._logging import log_extra
from .._outbox_options import OutboxOptions
from ._inbox import InboxCompletions
from ._relay_lock import RelayLock
from ._tables import outbox_table
from ._writer import NOTIFY_CHANNEL

__all__ = ["OutboxRelay", "OutboxStatistics", "decode_rows"]

logger = logging.getLogger("hookbus")

Publish = Callable[[Envelope], Awaitable[None] | None]

_HOUSEKEEPING = 5.0  # seconds between looks at the backlog (and old inbox records)
_PAUSE_GRACE = 5.0  # seconds a pass in progress may take to end when the bus stops
_EXPECT_FOR = 1.0  # seconds of frequent looks after a row was written in this process
_EXPECT_POLL = 0.005


@dataclass(frozen=True, slots=True)
class OutboxStatistics:
    """The outbox's backlog: rows waiting, and how long the oldest has waited."""

    waiting: int
    oldest_age: float | None
    #: Rows that could not be decoded (kept, marked with their error).
    poisoned: int
    #: Rows this process's relay published since it started.
    relayed: int


def decode_rows(rows: Any) -> tuple[list[tuple[int, Envelope]], list[tuple[int, str]]]:
    """The envelopes of outbox rows ``(id, event type, payload)`` by row id, and the rows
    that cannot be decoded any more (poison), with the error."""
    decoded: list[tuple[int, Envelope]] = []
    poisoned: list[tuple[int, str]] = []
    for row_id, event_type, payload in rows:
        try:
            decoded.append((row_id, decode_envelope(bytes(payload), None, declared(event_type))))
        except InvalidEnvelopeError as exc:
            poisoned.append((row_id, error_text(exc, 2000)))
    return decoded, poisoned


class OutboxRelay:
    """Publishes the outbox's committed rows through ``publish``."""

    def __init__(
        self,
        url: str,
        publish: Publish,
        options: OutboxOptions,
        retention: float,
        *,
        mode: str = "local",
    ) -> None:
        self._url = url
        #: The bus's mode, for log records.
        self.mode = mode
        self._publish = publish
        self._options = options
        self._retention = retention
        self.engine: AsyncEngine | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._listener: Any = None
        self._housekeeping_due = 0.0
        self._last_backlog = 0
        self._stopping = False
        self._expect_until = 0.0
        self._lock: RelayLock | None = None
        self.relayed = 0

    @property
    def postgres(self) -> bool:
        """Whether the outbox is on PostgreSQL (row locks, LISTEN/NOTIFY)."""
        return self.engine is not None and self.engine.dialect.name == "postgresql"

    async def open(self) -> AsyncEngine:
        """Open the engine (the outbox can be written to); return it."""
        self.engine = create_async_engine(self._url)
        return self.engine

    async def start(self, relay: bool) -> None:
        """Open the engine if needed; with ``relay``, start relaying in the background."""
        if self.engine is None:
            await self.open()
        if relay:
            assert self.engine is not None
            self._lock = RelayLock(self.engine.url)
            if self.postgres:
                await self._listen()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="hookbus:outbox-relay"
            )

    async def pause(self) -> None:
        """Take no more rows: the pass in progress may end (for a few seconds; after
        that it is cancelled and its transaction rolls back)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wakeup.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), _PAUSE_GRACE)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def stop(self) -> None:
        """Stop relaying and close the engine."""
        await self.pause()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None

    def wake(self) -> None:
        """Look at the outbox now (a row was committed)."""
        self._wakeup.set()

    def expect(self) -> None:
        """A row was written in this process, to be committed soon: look often (every
        ``_EXPECT_POLL`` seconds) for a while, rather than every ``poll_interval``."""
        self._expect_until = time.monotonic() + _EXPECT_FOR
        self._wakeup.set()

    async def _listen(self) -> None:
        """LISTEN on a connection of its own (asyncpg), waking the relay on NOTIFY."""
        import asyncpg

        assert self.engine is not None
        url = self.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        try:
            self._listener = await asyncpg.connect(dsn)
            await self._listener.add_listener(NOTIFY_CHANNEL, lambda *_: self.wake())
        except Exception as exc:  # polling still works
            logger.warning(
                "hookbus outbox: LISTEN failed (%s); polling instead",
                exc,
                extra=log_extra(self.mode),
            )
            self._listener = None

    async def _run(self) -> None:
        backoff = Backoff(cap=5.0)
        lock = self._lock
        assert lock is not None
        taking_over = False
        while not self._stopping:
            # Cleared before the pass, not after: a commit notified during the pass
            # leaves the flag set, and the next pass follows at once.
            self._wakeup.clear()
            if not lock.held:
                if not lock.acquire():  # another process relays this SQLite file
                    await self._sleep(self._options.poll_interval)
                    continue
                logger.info(
                    "hookbus outbox: this process relays %s", lock.path, extra=log_extra(self.mode)
                )
                taking_over = True
            try:
                if taking_over:
                    await self.took_over()
                    taking_over = False
                sent = await self.relay_once()
                if time.monotonic() >= self._housekeeping_due:
                    await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "hookbus outbox: relay pass failed (%s); rows wait",
                    error_text(exc, 300),
                    extra=log_extra(self.mode),
                )
                await self._sleep(backoff.next_delay())
                continue
            backoff.reset()
            if sent < self._options.batch:
                expecting = time.monotonic() < self._expect_until
                await self._sleep(_EXPECT_POLL if expecting else self._options.poll_interval)

    async def took_over(self) -> None:
        """Called when this process becomes the relay of an SQLite file."""

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if woken (a commit, a completion, the bus stopping)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()

    async def relay_once(self) -> int:
        """One pass: publish up to ``batch`` of the oldest rows; how many were sent.

        Raises what the backend raised if it could publish none of them.
        """
        assert self.engine is not None
        sent: list[int] = []
        failure: BaseException | None = None
        async with self.engine.begin() as connection:
            rows = (await connection.execute(self.oldest_rows(self._options.batch))).all()
            decoded, poisoned = decode_rows(rows)
            for row_id, envelope in decoded:
                try:
                    pending = self._publish(envelope)
                    if pending is not None:
                        await pending
                except Exception as exc:
                    failure = exc  # the backend is down: the rest waits
                    break
                sent.append(row_id)
            await self._settle(connection, sent, poisoned)
        self.relayed += len(sent)
        if failure is not None and not sent:
            raise failure
        return len(sent) + len(poisoned)

    def oldest_rows(self, limit: int, *conditions: Any) -> Any:
        """The query taking the ``limit`` oldest rows not sent, not poisoned (and matching
        ``conditions``): locked, skipping rows other relays hold, on PostgreSQL."""
        table = outbox_table
        query = (
            select(table.c.id, table.c.event_type, table.c.payload)
            .where(table.c.sent_at.is_(None), table.c.error.is_(None), *conditions)
            .order_by(table.c.id)
            .limit(limit)
        )
        return query.with_for_update(skip_locked=True) if self.postgres else query

    async def _settle(
        self, connection: Any, sent: list[int], poisoned: list[tuple[int, str]]
    ) -> None:
        table = outbox_table
        now = datetime.now(UTC)
        if sent:
            if self._options.keep_sent:
                await connection.execute(
                    update(table).where(table.c.id.in_(sent)).values(sent_at=now)
                )
                horizon = now - timedelta(seconds=self._options.keep_sent)
                await connection.execute(delete(table).where(table.c.sent_at < horizon))
            else:
                await connection.execute(delete(table).where(table.c.id.in_(sent)))
        for row_id, error in poisoned:
            logger.error(
                "hookbus outbox: row %s cannot be published: %s",
                row_id,
                error,
                extra=log_extra(self.mode),
            )
            await connection.execute(update(table).where(table.c.id == row_id).values(error=error))

    async def _housekeeping(self) -> None:
        """Log a growing backlog; delete inbox records past the retention."""
        self._housekeeping_due = time.monotonic() + _HOUSEKEEPING
        assert self.engine is not None
        stats = await self.statistics()
        if stats.waiting > self._options.backlog_warning and stats.waiting > self._last_backlog:
            logger.warning(
                "hookbus outbox: %d rows waiting, the oldest for %.1fs; the backlog grows",
                stats.waiting,
                stats.oldest_age or 0.0,
                extra=log_extra(self.mode),
            )
        self._last_backlog = stats.waiting
        await InboxCompletions(self.engine, self._retention).forget_old()

    async def statistics(self) -> OutboxStatistics:
        """The backlog, read from the table."""
        assert self.engine is not None
        table = outbox_table
        async with self.engine.connect() as connection:
            waiting, oldest = (
                await connection.execute(
                    select(func.count(), func.min(table.c.created_at)).where(
                        table.c.sent_at.is_(None), table.c.error.is_(None)
                    )
                )
            ).one()
            poisoned = (
                await connection.execute(select(func.count()).where(table.c.error.is_not(None)))
            ).scalar_one()
        age = None
        if oldest is not None:
            if oldest.tzinfo is None:  # SQLite keeps no time zone
                oldest = oldest.replace(tzinfo=UTC)
            age = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        return OutboxStatistics(int(waiting), age, int(poisoned), self.relayed)
