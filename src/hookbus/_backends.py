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
    raise ConfigurationError(
        f"mode {settings.mode!r} is not available in this version of hookbus; "
        f"accepted: {', '.join(m for m in MODES if m == 'local')}"
    )
