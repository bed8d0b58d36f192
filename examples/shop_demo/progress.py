"""Progress printer: shows live ``ProgressUpdated`` events at each quarter."""

from __future__ import annotations

from collections.abc import Callable

from hookbus import EventBus

from .events import ProgressUpdated

__all__ = ["SUBSCRIBER", "install"]

SUBSCRIBER = "progress"
STEP = 25.0


def install(bus: EventBus, out: Callable[[str], None] = print) -> None:
    """Print a line each time a job crosses 25, 50, 75 and 100 percent.

    Progress events are ephemeral and may be dropped under load, so the
    printer reports the last milestone crossed rather than expecting each one.
    """
    shown: dict[str, float] = {}

    @bus.on(ProgressUpdated, name=SUBSCRIBER)
    async def show_progress(event: ProgressUpdated) -> None:
        milestone = (event.percent // STEP) * STEP
        if milestone > shown.get(event.job_id, 0.0):
            shown[event.job_id] = milestone
            out(f"  {event.job_id}: {milestone:3.0f}% of the day's sales keyed in")
