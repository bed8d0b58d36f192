"""FastAPI integration (``pip install 'hookbus[fastapi]'``).

Three lines wire a bus into an app::

    bus = EventBus()
    app = FastAPI(lifespan=bus_lifespan(bus))          # starts and stops with the app
    app.include_router(event_feed(bus, authorize=current_user))   # GET /events/stream

Routes get the bus with ``bus: EventBus = Depends(get_bus)``.
"""

from ._feed import EventFeedRouter, FeedStats, event_feed
from ._lifespan import bus_lifespan, get_bus

__all__ = ["EventFeedRouter", "FeedStats", "bus_lifespan", "event_feed", "get_bus"]
