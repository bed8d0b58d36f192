"""The dead letters of every subscriber: list them, deliver one again, or discard it.

Dead letters are kept by the bus (in Redis in redis mode, shared by every
process; in the process in local mode). Retrying gives the event fresh
attempts; if it fails again it comes back as a new dead letter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from hookbus import DeadLetter, DeadLetterNotFoundError, EventBus
from hookbus.fastapi import get_bus

__all__ = ["DeadLetterOut", "routes"]

LIMIT = 50
BusDep = Annotated[EventBus, Depends(get_bus)]


class DeadLetterOut(BaseModel):
    """An event a subscriber gave up on, and why."""

    id: str
    subscriber: str
    event_type: str
    event_id: str
    attempts: int
    error: str
    failed_at: datetime
    data: dict[str, Any] | None


def _out(letter: DeadLetter) -> DeadLetterOut:
    event = letter.event
    return DeadLetterOut(
        id=letter.id,
        subscriber=letter.subscriber,
        event_type=letter.event_type,
        event_id=letter.event_id,
        attempts=letter.attempts,
        error=f"{letter.error_type}: {letter.error_message}",
        failed_at=letter.failed_at,
        data=None if event is None else event.model_dump(mode="json"),
    )


def routes() -> APIRouter:
    """``/api/dead-letters``: list, retry, discard."""
    router = APIRouter(prefix="/api/dead-letters", tags=["dead letters"])

    @router.get("")
    async def list_dead_letters(bus: BusDep) -> list[DeadLetterOut]:
        """The last 50 dead letters, oldest first."""
        letters = await bus.dead_letters()
        return [_out(letter) for letter in letters[-LIMIT:]]

    @router.post("/{letter_id}/retry", status_code=202)
    async def retry(letter_id: str, bus: BusDep) -> None:
        """Deliver the event again to its subscriber, with fresh attempts."""
        try:
            await bus.retry_dead_letter(letter_id)
        except DeadLetterNotFoundError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc

    @router.delete("/{letter_id}", status_code=204)
    async def discard(letter_id: str, bus: BusDep) -> None:
        """Forget the dead letter."""
        try:
            await bus.discard_dead_letter(letter_id)
        except DeadLetterNotFoundError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc

    return router
