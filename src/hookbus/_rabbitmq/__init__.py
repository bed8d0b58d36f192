"""The rabbitmq backend (``mode="rabbitmq"``), one private package.

Importing it needs aio-pika (``pip install 'hookbus[rabbitmq]'``): without
it, a :class:`~hookbus.ConfigurationError` says so. Its parts share state
through one :class:`~hookbus._rabbitmq.shared.RabbitShared` object; names of
exchanges and queues are built in :mod:`hookbus._rabbitmq.names`.
"""

from __future__ import annotations

import importlib.util

from .._exceptions import ConfigurationError

if importlib.util.find_spec("aio_pika") is None:  # pragma: no cover - depends on the environment
    raise ConfigurationError("mode 'rabbitmq' needs aio-pika: pip install 'hookbus[rabbitmq]'")

from .backend import RabbitMQBackend

__all__ = ["RabbitMQBackend"]
