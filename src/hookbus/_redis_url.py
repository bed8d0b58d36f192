"""Redis URLs: the forms hookbus accepts and their query options, checked and typed.

A URL is checked when the settings are built, before any connection: a
malformed URL, an unknown option or an ill-typed value raises
:class:`~hookbus.ConfigurationError` at once, naming the option. The options
then reach the client as typed values, never as raw strings.

==========================  =========  ================================================
query option                type       meaning
==========================  =========  ================================================
``db``                      int >= 0   database number (``unix://`` URLs; ``/db`` else)
``socket_timeout``          seconds    a reply slower than this is a network failure
                                       (default: the redis option ``emit_timeout``)
``socket_connect_timeout``  seconds    connecting (default: ``emit_timeout``, at most 5)
``socket_keepalive``        bool       TCP keepalive (default on)
``ssl_ca_certs``            path       ``rediss://``: CA file the server is verified against
``ssl_ca_path``             path       ``rediss://``: directory of CA certificates
``ssl_certfile``            path       ``rediss://``: client certificate
``ssl_keyfile``             path       ``rediss://``: its private key
``ssl_cert_reqs``           choice     ``rediss://``: ``required`` (default), ``optional``,
                                       ``none``
``ssl_check_hostname``      bool       ``rediss://``: the certificate must name the host
                                       (default on)
``cluster``                 bool       the URL names one node of a Redis Cluster (any
                                       node: the others are discovered); same as
                                       ``RedisOptions(cluster=True)``
==========================  =========  ================================================

Booleans are ``1``/``0``, ``true``/``false``, ``yes``/``no`` or ``on``/``off``.
Options redis-py knows but hookbus sets itself (retries, health checks,
protocol, decoding, the connection name) are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from ._env import FALSE_WORDS, TRUE_WORDS
from ._exceptions import ConfigurationError

__all__ = ["REDIS_SCHEMES", "URL_OPTIONS", "RedisURL", "parse_redis_url", "safe_url"]

REDIS_SCHEMES = ("redis", "rediss", "unix")

OptionValue = int | float | bool | str

_EXPECTED = (
    "expected redis://[[user]:password@]host[:port][/db], rediss://... for TLS, "
    "or unix:///path/to/socket"
)


def _seconds(raw: str) -> float:
    value = float(raw)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(raw)
    return value


def _db(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError(raw)
    return int(raw)


def _bool(raw: str) -> bool:
    if raw.lower() in TRUE_WORDS:
        return True
    if raw.lower() in FALSE_WORDS:
        return False
    raise ValueError(raw)


def _path(raw: str) -> str:
    if not raw:
        raise ValueError(raw)
    return raw


def _cert_reqs(raw: str) -> str:
    if raw not in ("required", "optional", "none"):
        raise ValueError(raw)
    return raw


@dataclass(frozen=True, slots=True)
class _Option:
    parse: Callable[[str], OptionValue]
    expected: str
    tls_only: bool = False


_SECONDS = "a number of seconds > 0 (float)"
_BOOL = "a boolean: 1/0, true/false, yes/no or on/off"
_PATH = "a non-empty path"

#: The query options hookbus accepts, each with its parser and expected type.
URL_OPTIONS: Mapping[str, _Option] = {
    "db": _Option(_db, "a database number >= 0 (int)"),
    "socket_timeout": _Option(_seconds, _SECONDS),
    "socket_connect_timeout": _Option(_seconds, _SECONDS),
    "socket_keepalive": _Option(_bool, _BOOL),
    "ssl_ca_certs": _Option(_path, _PATH, tls_only=True),
    "ssl_ca_path": _Option(_path, _PATH, tls_only=True),
    "ssl_certfile": _Option(_path, _PATH, tls_only=True),
    "ssl_keyfile": _Option(_path, _PATH, tls_only=True),
    "ssl_cert_reqs": _Option(_cert_reqs, "one of required, optional, none", tls_only=True),
    "ssl_check_hostname": _Option(_bool, _BOOL, tls_only=True),
    "cluster": _Option(_bool, _BOOL),
}

# Options redis-py would take that hookbus refuses, with the reason.
_SET_BY_HOOKBUS = "hookbus sets it itself"
_REFUSED = {
    "username": "give the user before the host: redis://user:password@host",
    "password": "give the password before the host: redis://:password@host",
    "retry_on_timeout": f"{_SET_BY_HOOKBUS}: it retries within emit_timeout",
    "health_check_interval": _SET_BY_HOOKBUS,
    "client_name": _SET_BY_HOOKBUS,
    "decode_responses": _SET_BY_HOOKBUS,
    "protocol": _SET_BY_HOOKBUS,
}


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A checked Redis URL: where to connect, and its query options, typed."""

    address: str
    """The URL without its query (scheme, credentials, host, port, database or socket)."""
    options: Mapping[str, OptionValue]
    """The query options, by name, as their types (see the module docs)."""


def parse_redis_url(url: str) -> RedisURL:
    """Check ``url`` and split it; ConfigurationError naming what is wrong and what is accepted."""
    if not isinstance(url, str):
        raise ConfigurationError(f"redis_url must be a string; {_EXPECTED}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(
            f"invalid Redis URL {safe_url(url)!r} ({exc}); {_EXPECTED}"
        ) from None
    _check_address(url, parts.scheme, parts.hostname, port, parts.path)
    options: dict[str, OptionValue] = {}
    for name, raw in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            raise ConfigurationError(f"Redis URL option {name!r} is given twice")
        options[name] = _parse_option(name, raw, parts.scheme)
    if "db" in options and parts.scheme != "unix" and parts.path.strip("/"):
        raise ConfigurationError(
            f"Redis URL {safe_url(url)!r} gives the database twice, as its path and as ?db=; "
            "keep one"
        )
    return RedisURL(address=url.partition("?")[0], options=options)


def _check_address(url: str, scheme: str, host: str | None, port: int | None, path: str) -> None:
    def invalid(reason: str) -> ConfigurationError:
        return ConfigurationError(f"invalid Redis URL {safe_url(url)!r}: {reason}; {_EXPECTED}")

    if scheme not in REDIS_SCHEMES:
        raise invalid("bad scheme")
    if scheme == "unix":
        if not path:
            raise invalid("no socket path")
        return
    if not host:
        raise invalid("no host")
    if port is not None and not 0 < port < 65536:
        raise invalid("bad port")
    db = path.lstrip("/")
    if db and not db.isdigit():
        raise invalid("database must be a number")


def _parse_option(name: str, raw: str, scheme: str) -> OptionValue:
    option = URL_OPTIONS.get(name)
    if option is None:
        reason = _REFUSED.get(name, "unknown option")
        raise ConfigurationError(
            f"Redis URL option {name!r} is not accepted ({reason}); accepted options: "
            f"{', '.join(URL_OPTIONS)}"
        )
    if option.tls_only and scheme != "rediss":
        raise ConfigurationError(
            f"Redis URL option {name!r} applies to TLS connections only: use rediss://"
        )
    try:
        return option.parse(raw)
    except ValueError:
        raise ConfigurationError(
            f"Redis URL option {name}={raw!r} is invalid: expected {option.expected}"
        ) from None


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("@")
    if not sep:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"
