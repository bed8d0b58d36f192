"""The rabbitmq backend passes the conformance suite, unchanged."""

import uuid

import pytest

from hookbus import EventBus, RabbitMQOptions
from hookbus.testing import test_settings
from hookbus.testing.conformance import BusConformance, MakeBus
from hookbus.testing.rabbitmq_server import RabbitMQServer

pytestmark = pytest.mark.rabbitmq


class TestRabbitMQBackend(BusConformance):
    @pytest.fixture
    def make_bus(self, rabbitmq_server: RabbitMQServer) -> MakeBus:
        prefix = "t" + uuid.uuid4().hex[:12]

        def make(**options: object) -> EventBus:
            return EventBus(
                mode="rabbitmq",
                amqp_url=rabbitmq_server.url,
                settings=test_settings(rabbitmq=RabbitMQOptions(prefix=prefix), **options),
            )

        return make
