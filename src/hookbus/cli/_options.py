"""Options several commands share: the application, the server URL, JSON output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["app_option", "json_option", "url_option"]

F = TypeVar("F", bound=Callable[..., Any])

app_option = click.option(
    "--app",
    "app_target",
    metavar="MODULE:BUS",
    envvar="HOOKBUS_APP",
    default=None,
    help="The application's EventBus (or a function returning one), for its event types "
    "and subscribers [env HOOKBUS_APP].",
)

url_option = click.option(
    "--url",
    metavar="URL",
    default=None,
    help="The server, instead of EVENT_BUS_MODE and HOOKBUS_REDIS_URL / HOOKBUS_AMQP_URL: "
    "redis://, rediss://, unix:// (redis mode), amqp://, amqps:// (rabbitmq mode).",
)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output (JSON) instead of text."
)
