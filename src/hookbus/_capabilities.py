"""What a backend promises, as data that tests and users can read."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Capabilities"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Delivery guarantees of one backend.

    Tests read these instead of special-casing backend names; users can check
    them at start-up (``assert bus.capabilities.durable``).
    """

    #: Critical events accepted by ``emit`` survive the emitting process dying.
    durable: bool
    #: Each subscriber sees events in emit order (retries aside).
    ordered: bool
    #: Events emitted while a subscriber's process is down reach it when it is back.
    survives_restart: bool
    #: Several processes can share one bus; each event is handled once per subscriber.
    multi_process: bool
    #: Past events can be delivered again (``bus.replay``).
    replay: bool
    #: Dead letters outlive the process.
    persistent_dead_letters: bool
