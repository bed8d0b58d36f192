"""The server a bus talks to, for headings and messages (password hidden)."""

from __future__ import annotations

from .._redis_url import safe_url
from .._settings import Settings

__all__ = ["server_of"]


def server_of(settings: Settings) -> str:
    """``redis://host:6379/0``, ``amqp://user@host/vhost`` ... or ``in-process``."""
    if settings.mode == "redis":
        return safe_url(settings.redis_url)
    if settings.mode == "rabbitmq":
        return safe_url(settings.amqp_url)
    return "in-process"
