"""Building rabbitmq-mode buses and raw clients in tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika

from hookbus import EventBus, RabbitMQOptions
from hookbus.testing import test_settings


def new_prefix() -> str:
    """A name prefix unique to the test."""
    return "t" + uuid.uuid4().hex[:12]


def rabbitmq_bus(
    url: str, prefix: str, *, bus_options: dict[str, Any] | None = None, **options: Any
) -> EventBus:
    """A rabbitmq-mode bus under ``prefix`` with fast retries; ``options`` for RabbitMQOptions."""
    return EventBus(
        mode="rabbitmq",
        amqp_url=url,
        settings=test_settings(
            rabbitmq=RabbitMQOptions(prefix=prefix, **options), **(bus_options or {})
        ),
    )


@asynccontextmanager
async def raw_channel(url: str) -> AsyncIterator[Any]:
    """A plain aio-pika channel (publisher confirms on), as another program has."""
    connection = await aio_pika.connect(url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()
