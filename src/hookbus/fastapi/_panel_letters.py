"""The web panel's dead-letter routes: list (filtered), show, retry, discard.

Dead letters are served as :meth:`hookbus.DeadLetter.to_dict` gives them (the
JSON of ``hookbus dead-letters``); the list leaves out the envelope and the
raw payload, which the detail has. Ids may hold a ``/`` (a Redis Cluster's
``<entry id>/<type>``): the routes take the rest of the path. Retrying and
discarding need the ``X-Hookbus-Panel`` header, which a page of another site
cannot send (the browser would ask for CORS first): a panel behind a cookie
login cannot be driven from elsewhere.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response

from .._bus import EventBus
from .._dead_letter import DeadLetter
from .._exceptions import ConfigurationError, DeadLetterNotFoundError, HookbusError
from ._status_sampler import StatusSampler

__all__ = ["ACTION_HEADER", "add_letter_routes", "unavailable"]

#: The header (any value) that retry and discard requests must carry.
ACTION_HEADER = "X-Hookbus-Panel"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_SUMMARY_LEAVES_OUT = ("envelope", "payload", "payload_base64")


def unavailable(exc: HookbusError) -> HTTPException:
    """A 503 saying why the broker could not answer."""
    return HTTPException(status_code=503, detail=f"{type(exc).__name__}: {exc}")


async def _require_action_header(
    panel: Annotated[str | None, Header(alias=ACTION_HEADER)] = None,
) -> None:
    if not panel:
        raise HTTPException(
            status_code=403,
            detail=f"retry and discard need the {ACTION_HEADER} header (any value)",
        )


def add_letter_routes(
    router: APIRouter, get_bus: Callable[..., Any], sampler: StatusSampler
) -> None:
    """Add the dead-letter routes to ``router``, on the bus ``get_bus`` gives."""
    BusDep = Annotated[EventBus, Depends(get_bus)]

    @router.get("/api/dead-letters", summary="Dead letters, oldest first")
    async def list_letters(
        bus: BusDep,
        subscriber: Annotated[str | None, Query(description="only this subscriber's")] = None,
        event_type: Annotated[
            str | None, Query(alias="type", description="only this event type's")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> dict[str, Any]:
        """``total`` matching dead letters and the first ``limit`` of them, without their
        envelope or payload (``GET /api/dead-letters/{id}`` has those)."""
        try:
            letters = await bus.dead_letters(subscriber or None)
        except HookbusError as exc:
            raise unavailable(exc) from exc
        if event_type:
            letters = [letter for letter in letters if letter.event_type == event_type]
        return {"total": len(letters), "dead_letters": [_summary(x) for x in letters[:limit]]}

    @router.get("/api/dead-letters/{letter_id:path}", summary="One dead letter in full")
    async def show_letter(letter_id: str, bus: BusDep) -> dict[str, Any]:
        """The dead letter with its envelope (or the raw payload it could not decode)."""
        return (await _find(bus, letter_id)).to_dict()

    @router.post(
        "/api/dead-letters/{letter_id:path}/retry",
        dependencies=[Depends(_require_action_header)],
        summary="Deliver a dead letter's event again",
    )
    async def retry_letter(letter_id: str, bus: BusDep) -> dict[str, str]:
        """Send the event back to its subscriber only, with fresh attempts; the dead
        letter goes (a new one comes if it fails again)."""
        await _act(bus.retry_dead_letter, letter_id, sampler)
        return {"retried": letter_id}

    @router.delete(
        "/api/dead-letters/{letter_id:path}",
        status_code=204,
        dependencies=[Depends(_require_action_header)],
        summary="Delete a dead letter",
    )
    async def discard_letter(letter_id: str, bus: BusDep) -> Response:
        """Delete the dead letter for good."""
        await _act(bus.discard_dead_letter, letter_id, sampler)
        return Response(status_code=204)


def _summary(letter: DeadLetter) -> dict[str, Any]:
    data = letter.to_dict()
    for key in _SUMMARY_LEAVES_OUT:
        data.pop(key, None)
    return data


async def _find(bus: EventBus, letter_id: str) -> DeadLetter:
    try:
        letters = await bus.dead_letters()
    except HookbusError as exc:
        raise unavailable(exc) from exc
    for letter in letters:
        if letter.id == letter_id:
            return letter
    raise HTTPException(status_code=404, detail=f"no dead letter with id {letter_id!r}")


async def _act(
    action: Callable[[str], Awaitable[None]], letter_id: str, sampler: StatusSampler
) -> None:
    try:
        await action(letter_id)
    except DeadLetterNotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except ConfigurationError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except HookbusError as exc:
        raise unavailable(exc) from exc
    finally:
        sampler.invalidate()
