"""FastAPI integration (``pip install 'hookbus[fastapi]'``).

Three lines wire a bus into an app::

    bus = EventBus()
    app = FastAPI(lifespan=bus_lifespan(bus))          # starts and stops with the app
    app.include_router(event_feed(bus, authorize=current_user))   # GET /events/stream

The same feed over WebSocket: ``event_feed_websocket(bus, authorize=...)``
(``/events/ws``). Prometheus metrics (``hookbus[metrics]``):
``app.include_router(metrics_router(bus))`` (``/metrics``).
The web panel (status, live, and dead letters to retry or
discard): ``app.include_router(panel_router(dependencies=[Depends(require_admin)]),
prefix="/hookbus")``.

Routes get the bus with ``bus: EventBus = Depends(get_bus)``. On SIGTERM or
SIGINT the feeds close before the server waits for its connections;
``close_feeds(app)`` does the same from another server's shutdown hook.
"""

from .._exceptions import ConfigurationError

try:
    import fastapi  # noqa: F401 - only checked here; the modules below import from it
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        "hookbus.fastapi needs FastAPI: pip install 'hookbus[fastapi]'"
    ) from exc

from ._feed import EventFeedRouter, FeedStats, event_feed
from ._lifespan import bus_lifespan, get_bus
from ._metrics import metrics_router
from ._panel import panel_router
from ._shutdown import close_feeds
from ._websocket import event_feed_websocket

__all__ = [
    "EventFeedRouter",
    "FeedStats",
    "bus_lifespan",
    "close_feeds",
    "event_feed",
    "event_feed_websocket",
    "get_bus",
    "metrics_router",
    "panel_router",
]
