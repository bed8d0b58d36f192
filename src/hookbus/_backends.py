"""Choosing the backend for a mode, importing optional dependencies only when needed."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor

from ._backend import Backend
from ._exceptions import ConfigurationError
from ._local import LocalBackend
from ._settings import MODES, Settings

__all__ = ["create_backend"]


def create_backend(settings: Settings, executor: Callable[[], Executor]) -> Backend:
    """The backend for ``settings.mode``."""
    if settings.mode == "local":
        return LocalBackend(settings, executor)
    if settings.mode == "redis":
        from ._redis import RedisBackend  # needs the optional redis client (hookbus[redis])

        return RedisBackend(settings, executor)
    if settings.mode == "rabbitmq":
        from ._rabbitmq import RabbitMQBackend  # needs aio-pika (hookbus[rabbitmq])

        return RabbitMQBackend(settings, executor)
    raise ConfigurationError(
        f"unknown event bus mode {settings.mode!r}; accepted: {', '.join(MODES)}"
    )
