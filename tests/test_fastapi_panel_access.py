"""The web panel behind the application's own login: every route (page, static files,
JSON, actions) answers what the application's dependency says — 401 without credentials,
403 for a user who is not an operator — and a refused action changes nothing. A panel
with neither dependencies nor ``public=True`` is refused at once. Local mode, the bus
from ``bus_lifespan`` (``get_bus``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from hookbus import ConfigurationError, Event, EventBus
from hookbus.fastapi import bus_lifespan, panel_router
from hookbus.testing import test_settings


class Parcel(Event, name="panel_access.parcel"):
    number: int


OPERATOR = {"Authorization": "Bearer operator"}
ACTION = {"X-Hookbus-Panel": "1"}


def require_operator(authorization: Annotated[str | None, Header()] = None) -> str:
    """The application's login: a bearer token naming the user; only "operator" may in."""
    if authorization is None or not authorization.startswith("Bearer "):
        raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"})
    user = authorization.removeprefix("Bearer ")
    if user != "operator":
        raise HTTPException(status_code=403, detail=f"{user} is not an operator")
    return user


@pytest.fixture
def client() -> Iterator[TestClient]:
    bus = EventBus(mode="local", settings=test_settings())

    @bus.on(Parcel, name="broken", max_attempts=1)
    async def broken(parcel: Parcel) -> None:
        raise RuntimeError("broken")

    app = FastAPI(lifespan=bus_lifespan(bus, signals=()))
    app.include_router(
        panel_router(dependencies=[Depends(require_operator)]), prefix="/admin/hookbus"
    )
    with TestClient(app) as client:
        for number in range(2):
            run(client, bus.emit, Parcel(number=number))
        run(client, bus.drain)
        yield client


def run(client: TestClient, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """``function(*args)`` on the app's event loop (where the bus runs)."""
    assert client.portal is not None
    return client.portal.call(function, *args)


def letter_ids(client: TestClient) -> list[str]:
    listed = client.get("/admin/hookbus/api/dead-letters", headers=OPERATOR).json()
    return [letter["id"] for letter in listed["dead_letters"]]


def routes(letter_id: str) -> list[tuple[str, str]]:
    base = "/admin/hookbus"
    return [
        ("GET", f"{base}/"),
        ("GET", f"{base}/static/panel.js"),
        ("GET", f"{base}/static/panel.css"),
        ("GET", f"{base}/static/icon.svg"),
        ("GET", f"{base}/api/status"),
        ("GET", f"{base}/api/dead-letters"),
        ("GET", f"{base}/api/dead-letters/{letter_id}"),
        ("POST", f"{base}/api/dead-letters/{letter_id}/retry"),
        ("DELETE", f"{base}/api/dead-letters/{letter_id}"),
    ]


def test_every_route_is_behind_the_applications_dependency(client: TestClient) -> None:
    ids = letter_ids(client)
    assert len(ids) == 2
    for method, url in routes(ids[0]):
        anonymous = client.request(method, url, headers=ACTION)
        assert anonymous.status_code == 401, (method, url)
        assert anonymous.headers["www-authenticate"] == "Bearer"
        visitor = client.request(method, url, headers={"Authorization": "Bearer ann", **ACTION})
        assert visitor.status_code == 403, (method, url)
        assert visitor.json() == {"detail": "ann is not an operator"}
    assert letter_ids(client) == ids  # refused actions did nothing

    for method, url in routes(ids[0])[:-2]:
        assert client.request(method, url, headers=OPERATOR).status_code == 200, (method, url)
    retry = routes(ids[0])[-2][1]
    assert client.post(retry, headers=OPERATOR).status_code == 403  # no X-Hookbus-Panel
    assert letter_ids(client) == ids
    assert client.post(retry, headers={**OPERATOR, **ACTION}).status_code == 200
    discard = routes(ids[1])[-1][1]
    assert client.delete(discard, headers={**OPERATOR, **ACTION}).status_code == 204
    run(client, client.app.state.hookbus.drain)  # type: ignore[attr-defined]
    assert len(letter_ids(client)) == 1  # the retried event failed again: a new dead letter
    assert letter_ids(client) != ids[:1]


def test_local_mode_status(client: TestClient) -> None:
    status = client.get("/admin/hookbus/api/status", headers=OPERATOR).json()
    assert status["mode"] == "local"
    assert status["event_types"] == [
        {"name": "panel_access.parcel", "durable": True, "stored": None}  # "?" on the page
    ]
    [row] = status["subscribers"]
    assert (row["subscriber"], row["lag"], row["pending"], row["consumers"]) == ("broken", 0, 0, 1)
    assert row["dead_letters"] == 2
    assert [p["kind"] for p in status["problems"]] == ["dead_letters"]


def test_a_panel_without_protection_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"dependencies=\[Depends"):
        panel_router()
    with pytest.raises(ConfigurationError, match="refresh"):
        panel_router(public=True, refresh=0)
