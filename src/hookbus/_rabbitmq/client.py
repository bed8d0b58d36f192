"""Connections to RabbitMQ: the connection from the URL, and what broker errors mean."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aio_pika
from aiormq import exceptions as amqp_errors

from .._amqp_url import parse_amqp_url
from .._exceptions import ConfigurationError
from .._redis_url import safe_url
from .._settings import Settings

__all__ = ["amqp_errors", "connect", "is_refused", "is_transient", "refused_error"]

RECONNECT_INTERVAL = 1.0  # seconds between attempts to reconnect a lost connection

_REFUSALS: tuple[type[BaseException], ...] = (
    amqp_errors.ProbableAuthenticationError,
    amqp_errors.AuthenticationError,
    amqp_errors.ConnectionNotAllowed,
    amqp_errors.ChannelAccessRefused,
    amqp_errors.IncompatibleProtocolError,
    ssl.SSLCertVerificationError,
)


def is_refused(exc: BaseException) -> bool:
    """Whether the broker refuses us for good: credentials, virtual host, permissions, TLS."""
    if isinstance(exc, _REFUSALS):
        return True
    text = str(exc)
    if isinstance(exc, amqp_errors.InvalidFrameError) and "Connection.Close" in text:
        return True  # the broker closed the connection while opening it: e.g. no such vhost
    return "ACCESS_REFUSED" in text or "NOT_ALLOWED" in text or "CERTIFICATE_VERIFY" in text


def refused_error(exc: BaseException, url: str) -> ConfigurationError:
    """The ConfigurationError that explains a refusal."""
    return ConfigurationError(
        f"RabbitMQ at {safe_url(url)} refused hookbus: {exc}. Check the user and password "
        "and the virtual host of HOOKBUS_AMQP_URL (the vhost must exist and the user needs "
        "configure, write and read permissions on it), and for amqps:// the CA (?cafile=)"
    )


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` means "the broker is unreachable for now" rather than a bug."""
    if is_refused(exc):
        return False
    return isinstance(
        exc,
        (
            amqp_errors.AMQPConnectionError,
            amqp_errors.ChannelInvalidStateError,
            ConnectionError,
            OSError,
            asyncio.TimeoutError,
            RuntimeError,  # aio-pika: "Connection closed" / channel closed while reconnecting
        ),
    )


async def connect(settings: Settings, name: str) -> Any:
    """A robust connection (it reconnects by itself, re-declaring what was declared
    through it) to ``settings.amqp_url``; raises at once if the first attempt fails."""
    url = parse_amqp_url(settings.amqp_url)
    given = url.options.get("connection_timeout")
    timeout = float(given) if given else min(settings.rabbitmq.emit_timeout, 5.0)
    parts = urlsplit(url.url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "connection_timeout"]
    address = urlunsplit(parts._replace(query=urlencode(query)))
    return await aio_pika.connect_robust(
        address,
        timeout=timeout,
        client_properties={"connection_name": name},
        reconnect_interval=RECONNECT_INTERVAL,
    )
