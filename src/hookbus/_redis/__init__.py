"""The redis backend (``mode="redis"``), one private package.

Importing it needs the ``redis`` client (``pip install 'hookbus[redis]'``):
without it, a :class:`~hookbus.ConfigurationError` says so. Its parts share
state through one :class:`~hookbus._redis.shared.RedisShared` object, never by
importing the backend class; see ARCHITECTURE.md for the map.
"""

from __future__ import annotations

import importlib.util

from .._exceptions import ConfigurationError

if importlib.util.find_spec("redis") is None:  # pragma: no cover - depends on the environment
    raise ConfigurationError("mode 'redis' needs the redis client: pip install 'hookbus[redis]'")

from .backend import RedisBackend

__all__ = ["RedisBackend"]
