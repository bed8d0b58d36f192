"""Loading the application's bus (``module:bus``) and building the admin bus.

Commands other than ``worker`` never run a handler: they work through an
*admin bus* with the application's settings, ``consume=False`` (it joins no
consumer group, takes no message) and no outbox relay, on which they report
about, replay or repair the application's subscribers.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import replace

from .._bus import EventBus
from .._exceptions import HookbusError
from .._settings import Settings
from .._subscription import Subscription
from ._errors import EXIT_USAGE, CliError

__all__ = ["admin_bus", "apply_url", "load_bus", "settings_of"]

_SCHEMES = {
    "redis": ("redis", "HOOKBUS_REDIS_URL"),
    "rediss": ("redis", "HOOKBUS_REDIS_URL"),
    "unix": ("redis", "HOOKBUS_REDIS_URL"),
    "amqp": ("rabbitmq", "HOOKBUS_AMQP_URL"),
    "amqps": ("rabbitmq", "HOOKBUS_AMQP_URL"),
}


def apply_url(url: str | None) -> None:
    """``--url``: the mode and server of the environment, before the application loads
    (``redis://``, ``rediss://``, ``unix://``: redis mode; ``amqp://``, ``amqps://``:
    rabbitmq mode)."""
    if url is None:
        return
    scheme = url.partition("://")[0].lower()
    if scheme not in _SCHEMES or "://" not in url:
        raise CliError(
            f"--url must start with redis://, rediss://, unix://, amqp:// or amqps://, "
            f"got {url.split('@')[-1]!r}",
            EXIT_USAGE,
        )
    mode, variable = _SCHEMES[scheme]
    os.environ["EVENT_BUS_MODE"] = mode
    os.environ.pop("HOOKBUS_MODE", None)
    os.environ[variable] = url


def load_bus(target: str) -> EventBus:
    """The bus named by ``module:attribute`` (an EventBus or a function returning one)."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise CliError(f"expected module:attribute (e.g. myapp.events:bus), got {target!r}", 2)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import {module_name!r}: {exc}", EXIT_USAGE) from exc
    except HookbusError as exc:
        raise CliError(f"cannot load {target}: {exc}", EXIT_USAGE) from exc
    except Exception as exc:
        raise CliError(f"cannot load {target}: {type(exc).__name__}: {exc}", EXIT_USAGE) from exc
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        raise CliError(
            f"module {module_name!r} has no attribute {attribute!r}", EXIT_USAGE
        ) from None
    if not isinstance(obj, EventBus) and callable(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise CliError(
                f"cannot load {target}: {type(exc).__name__}: {exc}", EXIT_USAGE
            ) from exc
    if not isinstance(obj, EventBus):
        raise CliError(f"{target} is {type(obj).__name__}, not an EventBus", EXIT_USAGE)
    return obj


def settings_of(app: EventBus | None) -> Settings:
    """The application's settings, or the environment's without an application."""
    return app.settings if app is not None else Settings.from_env()


def admin_bus(
    settings: Settings, *, server: bool = True, subscriptions: tuple[Subscription, ...] = ()
) -> EventBus:
    """A bus with ``settings`` that consumes nothing and relays no outbox row, with
    ``subscriptions`` (durable ones: declared, never run). ``server``: the command
    needs the broker's view, which local mode (in the memory of each process) has not."""
    if server and settings.mode == "local":
        raise CliError(
            "local mode keeps its events, dead letters and counters in the memory of the "
            "process running the bus: use bus.status() / bus.dead_letters() there, or point "
            "this command at Redis or RabbitMQ (EVENT_BUS_MODE and its URL, or --url)",
            EXIT_USAGE,
        )
    admin = EventBus(
        settings=settings.with_options(
            redis=replace(settings.redis, consume=False),
            rabbitmq=replace(settings.rabbitmq, consume=False),
            outbox=replace(settings.outbox, relay=False),
        )
    )
    for sub in subscriptions:
        if sub.durable:
            admin.subscribe(
                sub.event_type,
                sub.handler,
                name=sub.id,
                retry=sub.retry,
                timeout=sub.timeout,
                idempotent=sub.idempotent,
            )
    return admin
