"""A small shop app for worker subprocesses: ``hookbus worker tests.apps.shop:bus``.

The bus is configured from the environment (``EVENT_BUS_MODE``, ``HOOKBUS_REDIS_URL``,
``HOOKBUS_REDIS_PREFIX``, ``HOOKBUS_CLAIM_IDLE`` ...), as a real application's would be.
Its two durable subscribers, ``accounting`` and ``invoices``, record every call in Redis so
that the test process can check what was handled, by whom, and how many times:

``<prefix>:test:calls:<subscriber>``    hash ``sale_id -> handler calls`` (failed ones included)
``<prefix>:test:handled:<subscriber>``  hash ``sale_id -> successful handlings``

Knobs (environment):

``SHOP_HANDLER_DELAY``     seconds each handler sleeps (between its call and its success)
``SHOP_FAIL_SUBSCRIBER``   subscriber id whose handler always raises (after recording the call)
``SHOP_RECORD_DIR``        a directory where each handler creates ``<subscriber>.<sale_id>.called``
                         when called and ``<subscriber>.<sale_id>.handled`` when it succeeds
                         (both modes)

In local mode (the default) nothing is recorded in Redis: the handlers only sleep and maybe
fail, and write files if ``SHOP_RECORD_DIR`` is set.
"""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal
from pathlib import Path

import redis.asyncio as aioredis

from hookbus import Event, EventBus

__all__ = [
    "SUBSCRIBERS",
    "SaleClosed",
    "bus",
    "calls_key",
    "handled_key",
]

SUBSCRIBERS = ("accounting", "invoices")


class SaleClosed(Event, name="shop.sale_closed"):
    """A sale was closed at the till."""

    sale_id: int
    total: Decimal


def handled_key(prefix: str, subscriber: str) -> str:
    """Hash ``sale_id -> successful handlings`` of one subscriber."""
    return f"{prefix}:test:handled:{subscriber}"


def calls_key(prefix: str, subscriber: str) -> str:
    """Hash ``sale_id -> handler calls`` (successful or not) of one subscriber."""
    return f"{prefix}:test:calls:{subscriber}"


bus = EventBus()

_DELAY = float(os.environ.get("SHOP_HANDLER_DELAY", "0") or 0)
_FAILING = os.environ.get("SHOP_FAIL_SUBSCRIBER", "")
_RECORD_DIR = os.environ.get("SHOP_RECORD_DIR", "")

_client: aioredis.Redis | None = None
_client_loop: asyncio.AbstractEventLoop | None = None


def _recorder() -> aioredis.Redis | None:
    """A client on the bus's Redis, created on first use in the running loop (redis mode)."""
    global _client, _client_loop  # noqa: PLW0603 - one client per worker process
    if bus.mode != "redis":
        return None
    loop = asyncio.get_running_loop()
    if _client is None or _client_loop is not loop:
        _client = aioredis.Redis.from_url(bus.settings.redis_url)
        _client_loop = loop
    return _client


def _record(subscriber: str, sale_id: int, what: str) -> None:
    """Create ``<subscriber>.<sale_id>.<what>`` in ``SHOP_RECORD_DIR``, if set."""
    if _RECORD_DIR:
        (Path(_RECORD_DIR) / f"{subscriber}.{sale_id}.{what}").touch()


async def _handle(subscriber: str, sale: SaleClosed) -> None:
    client = _recorder()
    prefix = bus.settings.redis.prefix
    field = str(sale.sale_id)
    _record(subscriber, sale.sale_id, "called")
    if client is not None:
        await client.hincrby(calls_key(prefix, subscriber), field, 1)
    if _DELAY > 0:
        await asyncio.sleep(_DELAY)
    if subscriber == _FAILING:
        raise RuntimeError(f"{subscriber} always fails (SHOP_FAIL_SUBSCRIBER)")
    if client is not None:
        await client.hincrby(handled_key(prefix, subscriber), field, 1)
    _record(subscriber, sale.sale_id, "handled")


@bus.on(SaleClosed, name="accounting")
async def book_sale(sale: SaleClosed) -> None:
    """Accounting books the sale."""
    await _handle("accounting", sale)


@bus.on(SaleClosed, name="invoices")
async def send_invoice(sale: SaleClosed) -> None:
    """Invoices sends the invoice."""
    await _handle("invoices", sale)
