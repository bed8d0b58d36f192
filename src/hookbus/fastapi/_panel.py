"""The web panel: ``panel_router()``, what ``hookbus status`` shows, live, in a browser,
with the dead letters to look at, retry and discard.

Every route is behind the ``dependencies`` the application passes (its login):
the page, its static files, the JSON and the actions. The page is plain HTML,
CSS and JavaScript shipped in the package (``static/``), with relative URLs
only, so the router can be mounted under any prefix; it polls
``api/status`` every ``refresh`` seconds. Routes, relative to the prefix::

    GET    /                               the page
    GET    /static/{file}                  its script, style sheet and icon
    GET    /api/status                     BusStatus.to_dict() (hookbus status --json)
    GET    /api/dead-letters               ?subscriber=&type=&limit=: {"total", "dead_letters"}
    GET    /api/dead-letters/{id}          DeadLetter.to_dict()
    POST   /api/dead-letters/{id}/retry    (header X-Hookbus-Panel)
    DELETE /api/dead-letters/{id}          (header X-Hookbus-Panel)
"""

from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, params
from fastapi.responses import HTMLResponse, JSONResponse, Response

from .._bus import EventBus
from .._exceptions import ConfigurationError, HookbusError
from .._subscription import Subscription
from ._lifespan import get_bus
from ._panel_letters import add_letter_routes, unavailable
from ._status_sampler import StatusSampler

__all__ = ["DEFAULT_REFRESH", "panel_router"]

#: Seconds between two status requests of an open page, by default.
DEFAULT_REFRESH = 2.0
STATIC = Path(__file__).parent / "static"
_ASSETS = {
    "panel.js": "text/javascript; charset=utf-8",
    "panel.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
_NO_STORE = {"cache-control": "no-store"}

BusSource = EventBus | Callable[..., EventBus | Awaitable[EventBus]]


def panel_router(
    bus: BusSource | None = None,
    *,
    dependencies: Sequence[params.Depends] | None = None,
    public: bool = False,
    prefix: str = "",
    refresh: float = DEFAULT_REFRESH,
    subscriptions: Iterable[Subscription] | None = None,
) -> APIRouter:
    """A router serving the web panel of a bus: its status, live, and its dead letters.

    ``app.include_router(panel_router(dependencies=[Depends(require_admin)]),
    prefix="/hookbus")`` serves it at ``/hookbus/``. ``dependencies`` protect
    every route (page, static files, JSON, actions): an operator's login, which
    raises ``HTTPException`` (401, 403) to refuse. Without any, pass
    ``public=True`` explicitly (only where the router is included behind
    dependencies of its own, or in a demo): the panel retries and discards
    dead letters.

    ``bus``: the application's (``app.state.hookbus``, from
    :func:`~hookbus.fastapi.bus_lifespan`) by default; or an :class:`EventBus`;
    or a FastAPI dependency returning one. ``subscriptions`` reports on other
    subscriptions than the bus's own, as ``bus.status(subscriptions=...)`` does
    (an admin bus watching an application's workers). ``refresh``: seconds
    between two status requests of an open page.
    """
    if not dependencies and not public:
        raise ConfigurationError(
            "panel_router needs dependencies=[Depends(<your login dependency>)] "
            "or an explicit public=True"
        )
    if refresh <= 0:
        raise ConfigurationError(f"refresh must be > 0, got {refresh!r}")
    source = _bus_dependency(bus)
    sampler = StatusSampler(refresh, subscriptions)
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{refresh}}", f"{refresh:g}")
    assets = {name: ((STATIC / name).read_bytes(), kind) for name, kind in _ASSETS.items()}
    router = APIRouter(prefix=prefix, dependencies=list(dependencies or ()), tags=["hookbus panel"])
    BusDep = Annotated[EventBus, Depends(source)]

    @router.get("/", response_class=HTMLResponse, summary="The panel's page")
    async def panel_page() -> HTMLResponse:
        return HTMLResponse(page, headers=_NO_STORE)

    @router.get("/static/{name}", include_in_schema=False)
    async def panel_asset(name: str) -> Response:
        if name not in assets:
            raise HTTPException(status_code=404)
        body, media_type = assets[name]
        return Response(body, media_type=media_type, headers=_NO_STORE)

    @router.get("/api/status", summary="The bus's status (hookbus status --json)")
    async def panel_status(bus: BusDep) -> JSONResponse:
        """Per event type and subscriber: lag, pending, consumers, dead letters; the
        outbox; the problems. Unknown figures are ``null``."""
        try:
            status = await sampler.status(bus)
        except HookbusError as exc:
            raise unavailable(exc) from exc
        return JSONResponse(status.to_dict(), headers=_NO_STORE)

    add_letter_routes(router, source, sampler)
    return router


def _bus_dependency(bus: BusSource | None) -> Callable[..., Any]:
    if bus is None:
        return get_bus
    if isinstance(bus, EventBus):
        fixed = bus

        def given_bus() -> EventBus:
            return fixed

        return given_bus
    return bus
