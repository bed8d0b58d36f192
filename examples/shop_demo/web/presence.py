"""Presence: who has the dashboard open, in every process.

A dashboard says hello (``POST /api/presence``) whenever its feed connects,
when its visitor changes their name, and every ``HELLO_EVERY`` seconds while
it stays open; each hello is an ephemeral ``UserConnected``, which every process
hears. A hello carries the visitor's id, which a browser keeps whatever
name it gives, so a new name replaces the old one at once. A visitor not
heard from for ``FORGET_AFTER`` seconds is no longer online.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from hookbus import EventBus
from hookbus.fastapi import get_bus

from ..events import UserConnected

__all__ = ["FORGET_AFTER", "HELLO_EVERY", "SUBSCRIBER", "Presence"]

SUBSCRIBER = "presence"
HELLO_EVERY = 15.0
FORGET_AFTER = 40.0


class Hello(BaseModel):
    """A dashboard saying it is open, and under which name."""

    visitor: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    user: str = Field(min_length=1, max_length=40)


class Visitor(BaseModel):
    """One visitor online: their id, their name, seconds since last heard from."""

    visitor: str
    user: str
    ago: float


class Online(BaseModel):
    """Who was heard from lately, by name."""

    visitors: list[Visitor]


class Presence:
    """Each visitor's name and when they were last heard from, in this process."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}  # visitor -> (name, monotonic time)

    def install(self, bus: EventBus) -> None:
        """Subscribe to ``UserConnected`` (every process gets it)."""

        @bus.on(UserConnected, name=SUBSCRIBER)
        async def seen(event: UserConnected) -> None:
            self._seen[event.visitor] = (event.user, time.monotonic())

    def online(self) -> list[Visitor]:
        """Visitors heard from in the last ``FORGET_AFTER`` seconds, by name."""
        now = time.monotonic()
        for visitor in [v for v, (_, at) in self._seen.items() if now - at > FORGET_AFTER]:
            del self._seen[visitor]
        visitors = [
            Visitor(visitor=visitor, user=user, ago=round(now - at, 1))
            for visitor, (user, at) in self._seen.items()
        ]
        return sorted(visitors, key=lambda v: (v.user, v.visitor))

    def routes(self) -> APIRouter:
        """``POST /api/presence`` (hello) and ``GET /api/presence`` (who is online)."""
        router = APIRouter(prefix="/api/presence", tags=["presence"])

        @router.post("", status_code=202)
        async def hello(body: Hello, bus: Annotated[EventBus, Depends(get_bus)]) -> None:
            """Say that ``visitor`` has the dashboard open as ``user``: emits
            ``user_connected``; under a new name, it replaces the old one."""
            await bus.emit(UserConnected(visitor=body.visitor, user=body.user))

        @router.get("")
        async def online() -> Online:
            """Who is online."""
            return Online(visitors=self.online())

        return router
