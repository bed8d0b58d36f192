"""The pytest plugin shipped with hookbus (registered through the ``pytest11`` entry point).

Fixtures:

* ``hookbus_settings``: :func:`hookbus.testing.test_settings` (local mode, fast retries).
"""

from __future__ import annotations

import pytest

from .._settings import Settings
from ._recorder import test_settings


@pytest.fixture
def hookbus_settings() -> Settings:
    """Local-mode settings with millisecond retries, for fast tests."""
    return test_settings()
