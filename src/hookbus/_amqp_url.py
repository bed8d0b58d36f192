"""AMQP URLs (rabbitmq mode): the forms hookbus accepts and their query options, checked.

``amqp://[user[:password]@]host[:port][/vhost]`` — or ``amqps://`` for TLS.
The virtual host is the path, percent-encoded (``/`` is ``%2F``); an empty
path means the default virtual host ``/``. The URL is checked when the
settings are built, before any connection: a malformed URL, an unknown
option or an ill-typed value raises :class:`~hookbus.ConfigurationError`
naming it.

=========================  ==========  ===========================================
query option               type        meaning
=========================  ==========  ===========================================
``heartbeat``              int >= 0    seconds between AMQP heartbeats (0: none)
``connection_timeout``     seconds     connecting (default: ``emit_timeout``)
``cafile``                 path        ``amqps://``: CA the broker is verified against
``certfile``, ``keyfile``  path        ``amqps://``: client certificate and its key
``no_verify_ssl``          bool        ``amqps://``: skip verifying the broker (tests)
=========================  ==========  ===========================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from ._env import FALSE_WORDS, TRUE_WORDS
from ._exceptions import ConfigurationError
from ._redis_url import safe_url

__all__ = ["AMQP_SCHEMES", "AmqpURL", "parse_amqp_url"]

AMQP_SCHEMES = ("amqp", "amqps")
_EXPECTED = "expected amqp://[user[:password]@]host[:port][/vhost], or amqps://... for TLS"

OptionValue = int | float | bool | str


def _heartbeat(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError(raw)
    return int(raw)


def _seconds(raw: str) -> float:
    value = float(raw)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(raw)
    return value


def _path(raw: str) -> str:
    if not raw:
        raise ValueError(raw)
    return raw


def _bool(raw: str) -> bool:
    if raw.lower() in TRUE_WORDS:
        return True
    if raw.lower() in FALSE_WORDS:
        return False
    raise ValueError(raw)


@dataclass(frozen=True, slots=True)
class _Option:
    parse: Callable[[str], OptionValue]
    expected: str
    tls_only: bool = False


_OPTIONS: Mapping[str, _Option] = {
    "heartbeat": _Option(_heartbeat, "a number of seconds >= 0 (int)"),
    "connection_timeout": _Option(_seconds, "a number of seconds > 0"),
    "cafile": _Option(_path, "a non-empty path", tls_only=True),
    "certfile": _Option(_path, "a non-empty path", tls_only=True),
    "keyfile": _Option(_path, "a non-empty path", tls_only=True),
    "no_verify_ssl": _Option(_bool, "a boolean: 1/0, true/false, yes/no or on/off", True),
}


@dataclass(frozen=True, slots=True)
class AmqpURL:
    """A checked AMQP URL."""

    url: str
    """The URL as given (for the client)."""
    host: str
    port: int
    vhost: str
    """The virtual host, decoded (``/`` by default)."""
    tls: bool
    options: Mapping[str, OptionValue]


def parse_amqp_url(url: str) -> AmqpURL:
    """Check ``url``; ConfigurationError naming what is wrong and what is accepted."""
    if not isinstance(url, str):
        raise ConfigurationError(f"amqp_url must be a string; {_EXPECTED}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(
            f"invalid AMQP URL {safe_url(url)!r} ({exc}); {_EXPECTED}"
        ) from None
    if parts.scheme not in AMQP_SCHEMES:
        raise ConfigurationError(f"invalid AMQP URL {safe_url(url)!r}: bad scheme; {_EXPECTED}")
    if not parts.hostname:
        raise ConfigurationError(f"invalid AMQP URL {safe_url(url)!r}: no host; {_EXPECTED}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if "/" in path:
        raise ConfigurationError(
            f"invalid AMQP URL {safe_url(url)!r}: the virtual host is one path segment "
            "(write '/' as %2F)"
        )
    tls = parts.scheme == "amqps"
    options: dict[str, OptionValue] = {}
    for name, raw in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            raise ConfigurationError(f"AMQP URL option {name!r} is given twice")
        option = _OPTIONS.get(name)
        if option is None:
            raise ConfigurationError(
                f"AMQP URL option {name!r} is not accepted; accepted options: {', '.join(_OPTIONS)}"
            )
        if option.tls_only and not tls:
            raise ConfigurationError(
                f"AMQP URL option {name!r} applies to TLS connections only: use amqps://"
            )
        try:
            options[name] = option.parse(raw)
        except ValueError:
            raise ConfigurationError(
                f"AMQP URL option {name}={raw!r} is invalid: expected {option.expected}"
            ) from None
    return AmqpURL(
        url=url,
        host=parts.hostname,
        port=port if port is not None else (5671 if tls else 5672),
        vhost=unquote(path) if path else "/",
        tls=tls,
        options=options,
    )
