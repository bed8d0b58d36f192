"""The bus's Prometheus metrics as a route (needs ``hookbus[metrics]``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Response

from .._bus import EventBus

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["metrics_router"]


def metrics_router(
    bus: EventBus,
    *,
    path: str = "/metrics",
    registry: CollectorRegistry | None = None,
    dependencies: Sequence[Any] = (),
) -> APIRouter:
    """A router serving ``registry`` (default: prometheus_client's default registry)
    in Prometheus's text format at ``GET path``, with ``bus``'s metrics enabled in it
    (:func:`hookbus.metrics.enable`).

    Each scrape first refreshes the collector's asynchronous sources
    (:meth:`~hookbus.metrics.BusMetrics.add_source`). ``dependencies``: FastAPI
    dependencies run before it (``[Depends(allow_monitoring)]`` to restrict it).
    """
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    from .. import metrics

    collector = metrics.enable(bus, registry)
    served = REGISTRY if registry is None else registry
    router = APIRouter(dependencies=list(dependencies))

    @router.get(path, include_in_schema=False)
    async def serve_metrics() -> Response:
        await collector.refresh()
        return Response(generate_latest(served), media_type=CONTENT_TYPE_LATEST)

    return router
