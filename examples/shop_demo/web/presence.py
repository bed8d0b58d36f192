"""Presence: who has the dashboard open, in every process.

A dashboard says hello (``POST /api/presence``) when it opens and every
``HELLO_EVERY`` seconds while it stays open; each says so with an ephemeral
``UserConnected``, which every process hears. Someone not heard from for
``FORGET_AFTER`` seconds is no longer online.
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
    """A dashboard saying it is open."""

    user: str = Field(min_length=1, max_length=40)


class Online(BaseModel):
    """Who was heard from lately, and how long ago (seconds)."""

    users: dict[str, float]


class Presence:
    """Last time each user was heard from, in this process."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def install(self, bus: EventBus) -> None:
        """Subscribe to ``UserConnected`` (every process gets it)."""

        @bus.on(UserConnected, name=SUBSCRIBER)
        async def seen(event: UserConnected) -> None:
            self._seen[event.user] = time.monotonic()

    def online(self) -> dict[str, float]:
        """Users heard from in the last ``FORGET_AFTER`` seconds -> seconds since."""
        now = time.monotonic()
        for user in [u for u, at in self._seen.items() if now - at > FORGET_AFTER]:
            del self._seen[user]
        return {user: round(now - at, 1) for user, at in sorted(self._seen.items())}

    def routes(self) -> APIRouter:
        """``POST /api/presence`` (hello) and ``GET /api/presence`` (who is online)."""
        router = APIRouter(prefix="/api/presence", tags=["presence"])

        @router.post("", status_code=202)
        async def hello(body: Hello, bus: Annotated[EventBus, Depends(get_bus)]) -> None:
            """Say that ``user`` has the dashboard open: emits ``user_connected``."""
            await bus.emit(UserConnected(user=body.user))

        @router.get("")
        async def online() -> Online:
            """Who is online."""
            return Online(users=self.online())

        return router
