"""The redis backend passes the conformance suite, unchanged, on every server binary."""

import pytest

from hookbus import EventBus
from hookbus._redis_options import RedisOptions
from hookbus.testing import test_settings
from hookbus.testing.conformance import BusConformance, MakeBus

pytestmark = pytest.mark.redis


class TestRedisBackend(BusConformance):
    @pytest.fixture
    def make_bus(self, redis_url: str, redis_prefix: str) -> MakeBus:
        def make(**options: object) -> EventBus:
            return EventBus(
                mode="redis",
                redis_url=redis_url,
                settings=test_settings(redis=RedisOptions(prefix=redis_prefix), **options),
            )

        return make
