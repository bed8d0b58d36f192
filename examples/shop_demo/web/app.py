"""Wires the shop's modules on one bus per web process, with the dashboard at ``/`` and
hookbus's web panel at ``/hookbus/``.

Configuration comes from the environment, as in production:
``EVENT_BUS_MODE`` (``local`` or ``redis``) and ``HOOKBUS_REDIS_URL`` for the
bus; ``SHOP_DATA_DIR`` for the SQLite file every process shares, which also
holds the bus's transactional outbox (``outbox_url``) and the accounting's
inbox;
``SHOP_IMPORT_PACE`` for the seconds between two imported articles (so the
progress bar has time to move); ``SHOP_FLAKY_EVERY`` for how often the
accounting server fails a first attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

import hookbus.outbox
from hookbus import ConfigurationError, EventBus, RetryPolicy, event_types, is_durable
from hookbus.fastapi import bus_lifespan, event_feed, event_feed_websocket, panel_router

from .. import accounting
from ..database import open_engine, outbox_url
from . import barcodes, catalogue, dead_letters, imports, members, till
from .cache import Cache
from .counters import Counters
from .presence import Presence
from .served_by import ServedBy
from .store import DB_NAME

__all__ = ["Meta", "create_app", "data_dir_from_env"]

STATIC = Path(__file__).parent / "static"
FEED_PATH = "/events/stream"
WEBSOCKET_PATH = "/events/ws"
PANEL_PATH = "/hookbus"


class Meta(BaseModel):
    """What the dashboard needs to know about the server."""

    mode: str
    process: str
    feed: str
    event_types: dict[str, bool]


def data_dir_from_env() -> Path:
    """``SHOP_DATA_DIR``, or a fixed directory under the system's temporary one."""
    path = Path(os.environ.get("SHOP_DATA_DIR") or Path(tempfile.gettempdir()) / "hookbus-shop")
    path.mkdir(parents=True, exist_ok=True)
    return path


def create_app(data_dir: Path | None = None, bus: EventBus | None = None) -> FastAPI:
    """The shop's FastAPI app: a bus from the environment unless ``bus`` is given.

    The bus's outbox is the shop's SQLite file (a given ``bus`` must have
    ``outbox_url=outbox_url(<data dir>/shop.sqlite3)``); the outbox's tables are
    created at startup, before the bus starts.
    """
    db_path = (data_dir or data_dir_from_env()) / DB_NAME
    if bus is None:
        bus = EventBus(
            outbox_url=outbox_url(db_path),
            retry=RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=2.0),
        )
    elif bus.settings.outbox_url != outbox_url(db_path):
        raise ConfigurationError(
            f"the shop's bus needs its outbox in the shop's database: "
            f"outbox_url={outbox_url(db_path)!r}, not {bus.settings.outbox_url!r}"
        )
    engine = open_engine(db_path)
    cache, presence, counters = Cache(), Presence(), Counters(bus)
    importer = imports.Importer(db_path, pace=float(os.environ.get("SHOP_IMPORT_PACE", "0.05")))

    routers = [
        till.routes(db_path, engine),
        members.routes(db_path, cache),
        imports.routes(db_path, importer),
        catalogue.routes(db_path, cache),
        presence.routes(),
        counters.routes(),
        dead_letters.routes(),
    ]
    accounting.install(bus, engine, flaky_every=int(os.environ.get("SHOP_FLAKY_EVERY", "3")))
    members.install(bus, db_path)
    barcodes.install(bus, db_path)
    cache.install(bus)
    presence.install(bus)

    @asynccontextmanager
    async def background(app: FastAPI) -> AsyncIterator[None]:
        reporting = asyncio.create_task(counters.run(), name="counters")
        try:
            yield
        finally:
            reporting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporting
            await importer.stop()

    with_bus = bus_lifespan(bus, background)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            # Before the bus starts: its relay reads the outbox at once.
            await hookbus.outbox.create_tables(engine)  # the till's outbox, accounting's inbox
            await accounting.create_tables(engine)
            async with with_bus(app):
                yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="hookbus shop demo",
        summary="A ressourcerie's modules talking through hookbus",
        lifespan=lifespan,
    )
    for router in routers:
        app.include_router(router)
    # The demo's feed is public; a real shop passes authorize=<its login dependency>.
    app.include_router(event_feed(bus, public=True, path=FEED_PATH))
    app.include_router(event_feed_websocket(bus, public=True, path=WEBSOCKET_PATH))
    # So is the panel (bus status, dead letters to retry or discard). A real shop puts it
    # behind its operators' login: panel_router(dependencies=[Depends(require_admin)]).
    app.include_router(panel_router(public=True), prefix=PANEL_PATH)

    @app.get("/api/meta", tags=["dashboard"])
    async def meta() -> Meta:
        """The bus mode, the answering process, the feed's path and the event types
        (name -> durable)."""
        return Meta(
            mode=bus.mode,
            process=counters.process,
            feed=FEED_PATH,
            event_types={name: is_durable(cls) for name, cls in sorted(event_types().items())},
        )

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(ServedBy, process=counters.process)
    return app
