"""Retry policy: how many attempts a subscriber gets, and how long to wait between them."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ._exceptions import ConfigurationError

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_RETRY_BASE_DELAY",
    "DEFAULT_RETRY_MAX_DELAY",
    "RetryPolicy",
]

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_RETRY_BASE_DELAY = 0.1
DEFAULT_RETRY_MAX_DELAY = 30.0
DEFAULT_RETRY_JITTER = 0.5


def _finite_non_negative(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    A delivery is tried at most ``max_attempts`` times (the first try
    included); then the event becomes a dead letter. After the *n*-th failure
    the next try waits ``min(max_delay, base_delay * 2**(n-1))``, reduced by a
    random fraction of up to ``jitter`` so that retries of many events spread
    out instead of hitting a recovering service together.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay: float = DEFAULT_RETRY_BASE_DELAY
    max_delay: float = DEFAULT_RETRY_MAX_DELAY
    jitter: float = DEFAULT_RETRY_JITTER

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigurationError(
                f"max_attempts must be an integer >= 1, got {self.max_attempts!r}"
            )
        if not (_finite_non_negative(self.base_delay) and _finite_non_negative(self.max_delay)):
            raise ConfigurationError(
                f"retry delays must be finite numbers >= 0 seconds, got base_delay="
                f"{self.base_delay!r}, max_delay={self.max_delay!r}"
            )
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"jitter must be between 0 and 1, got {self.jitter!r}")

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next try, after ``failures`` failed tries."""
        raw = min(self.max_delay, self.base_delay * float(1 << min(failures - 1, 62)))
        return raw * (1.0 - self.jitter * random.random())
