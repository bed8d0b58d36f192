"""Reading typed option values from environment variables, for every options class."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._exceptions import ConfigurationError

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "values_from_env"]

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def values_from_env(
    variables: Iterable[tuple[str, str, str]], env: Mapping[str, str]
) -> dict[str, Any]:
    """``{field: value}`` for each ``(field, variable, kind)`` whose variable is set;
    ``kind`` is ``str``, ``bool``, ``int`` or ``float``. A value that does not read
    as its kind is a ConfigurationError naming the variable."""
    return {name: _parse(var, env[var], kind) for name, var, kind in variables if var in env}


def _parse(var: str, raw: str, kind: str) -> str | bool | int | float:
    raw = raw.strip()
    if kind == "str":
        return raw
    if kind == "bool":
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise ConfigurationError(f"{var}={raw!r}: expected 1/0, true/false, yes/no or on/off")
    try:
        return int(raw) if kind == "int" else float(raw)
    except ValueError:
        raise ConfigurationError(f"{var}={raw!r} is not a valid {kind}") from None
