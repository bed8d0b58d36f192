"""Durable local mode: the outbox relay of a local-mode bus.

In local mode "published" means "queued in this process's memory", which a
crash loses. So this relay keeps each row in the outbox until every
subscriber of the process has *finished* it (handled, dead-lettered or, for
an ephemeral event, dropped), and only then deletes it (or marks it sent):

1. a pass claims the oldest free rows — ``claimed_until`` set a lease ahead
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so relays of several
   processes never claim one row together) — and commits;
2. it hands each row's event to the local backend
   (:meth:`~hookbus._local.LocalBackend.publish_tracked`), whose future
   resolves once every subscriber finished it;
3. finished rows are settled in the next pass; rows still in the handlers
   have their lease renewed, a third of a lease before it runs out.

When the process dies, its rows are claimed again once their lease has run
out (``OutboxOptions.lease``) — on SQLite, where one relay at a time
serves a database file, the process that takes over frees them at once. They are then delivered
to every subscriber again: idempotent subscribers that had completed them
skip them, since their completions are in the same database.

On a graceful stop the backend drains first; rows still unfinished after
the stop timeout are freed for the next start.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, update

from .._envelope import Envelope
from .._logging import log_extra
from .._outbox_options import OutboxOptions
from ._relay import OutboxRelay, decode_rows
from ._tables import outbox_table

__all__ = ["DurableLocalRelay"]

logger = logging.getLogger("hookbus")

PublishTracked = Callable[[Envelope], "asyncio.Future[None]"]

_IN_FLIGHT_BATCHES = 4  # rows in the handlers at most: this many batches


class DurableLocalRelay(OutboxRelay):
    """Relays outbox rows to a local backend, deleting each once it is finished."""

    def __init__(
        self, url: str, publish: PublishTracked, options: OutboxOptions, retention: float
    ) -> None:
        super().__init__(url, publish, options, retention)
        self._publish_tracked = publish
        self._in_flight: set[int] = set()
        self._finished: list[int] = []
        self._renew_due = 0.0

    async def took_over(self) -> None:
        """The one relay of this SQLite file now: claims left are a dead relay's."""
        await self._free(None)

    async def stop(self) -> None:
        """Settle what finished, free what did not (for the next start), close."""
        await self.pause()
        if self.engine is not None:
            try:
                await self._settle_finished()
                await self._free(sorted(self._in_flight))
            except Exception as exc:  # their leases run out instead
                logger.warning(
                    "hookbus outbox: cannot free claimed rows on stop (%r)",
                    exc,
                    extra=log_extra(self.mode),
                )
            self._in_flight.clear()
        await super().stop()

    async def relay_once(self) -> int:
        """Settle finished rows, renew claims due, claim and hand over new rows."""
        await self._settle_finished()
        if self._in_flight and time.monotonic() >= self._renew_due:
            await self._renew()
        room = self._options.batch * _IN_FLIGHT_BATCHES - len(self._in_flight)
        if room <= 0:
            return 0
        return await self._claim(min(room, self._options.batch))

    async def _claim(self, limit: int) -> int:
        assert self.engine is not None
        table = outbox_table
        now = datetime.now(UTC)
        free = or_(table.c.claimed_until.is_(None), table.c.claimed_until < now)
        async with self.engine.begin() as connection:
            rows = (await connection.execute(self.oldest_rows(limit, free))).all()
            claimed, poisoned = decode_rows(rows)
            await self._settle(connection, [], poisoned)
            if claimed:
                await connection.execute(
                    update(table)
                    .where(table.c.id.in_([row_id for row_id, _ in claimed]))
                    .values(claimed_until=now + timedelta(seconds=self._options.lease))
                )
        if claimed and not self._in_flight:
            self._renew_due = time.monotonic() + self._options.lease / 3
        for row_id, envelope in claimed:  # no await from here on: all handed over, or none
            self._in_flight.add(row_id)
            self._publish_tracked(envelope).add_done_callback(functools.partial(self._done, row_id))
        self.relayed += len(claimed)
        return len(rows)

    def _done(self, row_id: int, done: asyncio.Future[None]) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # the bus stops: the row is freed by stop()
        self._finished.append(row_id)
        self.wake()

    async def _settle_finished(self) -> None:
        finished, self._finished = self._finished, []
        if not finished:
            return
        try:
            async with self.engine.begin() as connection:  # type: ignore[union-attr]
                await self._settle(connection, finished, [])
        except BaseException:
            self._finished[:0] = finished  # settled by a later pass
            raise
        self._in_flight.difference_update(finished)

    async def _renew(self) -> None:
        """Push the lease of the rows in the handlers further."""
        assert self.engine is not None
        until = datetime.now(UTC) + timedelta(seconds=self._options.lease)
        async with self.engine.begin() as connection:
            await connection.execute(
                update(outbox_table)
                .where(outbox_table.c.id.in_(sorted(self._in_flight)))
                .values(claimed_until=until)
            )
        self._renew_due = time.monotonic() + self._options.lease / 3

    async def _free(self, row_ids: list[int] | None) -> None:
        """Release claims: of ``row_ids``, or of every row not sent yet (``None``)."""
        if row_ids == []:
            return
        assert self.engine is not None
        table = outbox_table
        statement: Any = update(table).where(table.c.sent_at.is_(None))
        if row_ids is not None:
            statement = statement.where(table.c.id.in_(row_ids))
        async with self.engine.begin() as connection:
            await connection.execute(statement.values(claimed_until=None))
