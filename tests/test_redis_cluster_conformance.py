"""The redis backend passes the conformance suite, unchanged, on a Redis Cluster
(3 masters, 3 replicas), named by the URL option ``cluster=true``."""

import pytest

from hookbus import EventBus
from hookbus._redis_options import RedisOptions
from hookbus.testing import test_settings
from hookbus.testing.conformance import BusConformance, MakeBus
from hookbus.testing.redis_cluster import RedisCluster

pytestmark = [pytest.mark.redis, pytest.mark.cluster]


class TestRedisClusterBackend(BusConformance):
    @pytest.fixture
    def make_bus(self, redis_cluster: RedisCluster, redis_prefix: str) -> MakeBus:
        def make(**options: object) -> EventBus:
            return EventBus(
                mode="redis",
                redis_url=redis_cluster.url,
                settings=test_settings(redis=RedisOptions(prefix=redis_prefix), **options),
            )

        return make
