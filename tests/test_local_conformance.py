"""The local backend passes the conformance suite."""

import pytest

from hookbus import EventBus
from hookbus.testing import test_settings
from hookbus.testing.conformance import BusConformance, MakeBus


class TestLocalBackend(BusConformance):
    @pytest.fixture
    def make_bus(self) -> MakeBus:
        def make(**options: object) -> EventBus:
            return EventBus(mode="local", settings=test_settings(**options))

        return make
