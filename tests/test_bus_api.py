"""EventBus API details that the conformance suite does not cover."""

import asyncio
import logging
from typing import Any

import pytest

from hookbus import (
    ConfigurationError,
    Delivery,
    Event,
    EventBus,
    InvalidEventError,
    Settings,
    UnknownEventError,
    current_delivery,
    current_envelope,
)
from hookbus.testing import Recorder, test_settings


class Pinged(Event, name="bus_api.pinged"):
    n: int


class Other(Event, name="bus_api.other"):
    n: int


def local_bus(**options: Any) -> EventBus:
    return EventBus(mode="local", settings=test_settings(**options))


async def module_handler(event: Pinged) -> None:
    return None


class Service:
    async def handle(self, event: Pinged) -> None:
        return None


class CallableHandler:
    async def __call__(self, event: Pinged) -> None:
        return None


# -- subscribing ------------------------------------------------------------------


def test_on_returns_the_handler_unchanged() -> None:
    bus = local_bus()

    async def handler(event: Pinged) -> None:
        return None

    decorated = bus.on(Pinged, name="same")(handler)
    assert decorated is handler
    (subscription,) = bus.subscriptions
    assert subscription.handler is handler


def test_default_subscriber_id_is_module_and_qualname() -> None:
    bus = local_bus()

    async def nested(event: Pinged) -> None:
        return None

    ids = [
        bus.subscribe(Pinged, module_handler).id,
        bus.subscribe(Pinged, nested).id,
        bus.subscribe(Pinged, Service().handle).id,
        bus.subscribe(Pinged, CallableHandler()).id,
    ]
    assert ids == [
        f"{__name__}.module_handler",
        f"{__name__}.test_default_subscriber_id_is_module_and_qualname.<locals>.nested",
        f"{__name__}.Service.handle",
        f"{__name__}.CallableHandler",
    ]


@pytest.mark.parametrize("bad", ["", "   ", "has space", "tab\there", "x" * 201])
def test_invalid_subscriber_names_are_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="subscriber name"):
        local_bus().subscribe(Pinged, module_handler, name=bad)


async def test_subscribe_by_event_name() -> None:
    bus = local_bus()
    rec = Recorder[Pinged]()
    subscription = bus.subscribe("bus_api.pinged", rec, name="by-name")
    assert subscription.event_type is Pinged
    assert subscription.event_name == "bus_api.pinged"
    async with bus:
        await bus.emit(Pinged(n=1))
        assert await rec.wait_for(1) == [Pinged(n=1)]


def test_subscribe_to_an_unknown_name_is_refused() -> None:
    with pytest.raises(UnknownEventError, match=r"Did you mean 'bus_api\.pinged'"):
        local_bus().subscribe("bus_api.pingd", module_handler)


@pytest.mark.parametrize("target", [Event, int, dict, Pinged(n=1), None])
def test_subscribing_to_something_else_than_an_event_class_is_refused(target: Any) -> None:
    bus = local_bus()
    with pytest.raises(TypeError, match=r"subclass of hookbus\.Event"):
        bus.subscribe(target, module_handler)
    with pytest.raises(TypeError):
        bus.register(target)
    assert bus.subscriptions == ()


def test_subscriptions_describe_each_subscription() -> None:
    bus = local_bus()

    def sync_handler(event: Other) -> None:
        return None

    bus.subscribe(Pinged, module_handler, name="a", max_attempts=7, timeout=1.5)
    bus.subscribe(Other, sync_handler, name="b")
    first, second = bus.subscriptions
    assert (first.id, first.event_type, first.retry.max_attempts) == ("a", Pinged, 7)
    assert (first.timeout, first.is_async, first.durable) == (1.5, True, True)
    assert (second.id, second.event_name, second.is_async) == ("b", "bus_api.other", False)
    assert second.retry == bus.settings.retry


# -- state --------------------------------------------------------------------------


async def test_mode_capabilities_running_and_repr() -> None:
    bus = local_bus()
    bus.subscribe(Pinged, module_handler)
    assert bus.mode == "local"
    caps = bus.capabilities
    assert (caps.durable, caps.ordered) == (False, True)
    assert (caps.survives_restart, caps.multi_process, caps.replay) == (False, False, False)
    assert not caps.persistent_dead_letters
    assert not bus.running
    assert repr(bus) == "<EventBus mode=local new subscriptions=1>"
    async with bus:
        assert bus.running
        assert repr(bus) == "<EventBus mode=local running subscriptions=1>"
    assert not bus.running
    assert repr(bus) == "<EventBus mode=local stopped subscriptions=1>"


async def test_emit_refuses_what_is_not_an_event() -> None:
    async with local_bus() as bus:
        with pytest.raises(TypeError, match="Event instance or an event name"):
            await bus.emit(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="only with an event name"):
            await bus.emit(Pinged(n=1), extra=1)
        with pytest.raises(InvalidEventError):
            await bus.emit("bus_api.pinged", n="one")
        assert bus.running


# -- context --------------------------------------------------------------------------


async def test_current_delivery_counts_attempts() -> None:
    bus = local_bus()
    seen: list[Delivery] = []

    @bus.on(Pinged, name="flaky", max_attempts=4)
    async def flaky(event: Pinged) -> None:
        delivery = current_delivery()
        assert delivery is not None
        seen.append(delivery)
        if delivery.attempt < 3:
            raise ConnectionError("not yet")

    async with bus:
        event_id = await bus.emit(Pinged(n=1))
        await bus.drain(timeout=10)
        assert await bus.dead_letters() == []
    assert [d.attempt for d in seen] == [1, 2, 3]
    assert {(d.subscriber, d.max_attempts, d.envelope.id) for d in seen} == {("flaky", 4, event_id)}


async def test_context_is_empty_outside_handlers() -> None:
    assert current_envelope() is None
    assert current_delivery() is None
    async with local_bus() as bus:
        await bus.emit(Pinged(n=1))
        assert current_envelope() is None
        assert current_delivery() is None


async def test_sync_handler_sees_its_envelope_and_delivery() -> None:
    bus = local_bus()
    seen: list[tuple[str, str]] = []

    @bus.on(Pinged, name="sync")
    def sync(event: Pinged) -> None:
        envelope, delivery = current_envelope(), current_delivery()
        assert envelope is not None
        assert delivery is not None
        seen.append((envelope.id, delivery.subscriber))

    async with bus:
        event_id = await bus.emit(Pinged(n=1))
        await bus.drain(timeout=10)
    assert seen == [(event_id, "sync")]


# -- register --------------------------------------------------------------------------


async def test_register_wins_when_two_classes_share_a_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="hookbus"):

        class Mine(Event, name="bus_api.shared"):
            a: int

        class Theirs(Event, name="bus_api.shared"):
            b: int

    other_bus = local_bus()
    async with other_bus:
        with pytest.raises(InvalidEventError):  # the global registry: the newest class
            await other_bus.emit("bus_api.shared", a=1)
    bus = local_bus()
    bus.register(Mine)
    rec = Recorder[Event]()
    assert bus.subscribe("bus_api.shared", rec, name="shared").event_type is Mine
    async with bus:
        await bus.emit("bus_api.shared", a=1)
        (event,) = await rec.wait_for(1)
    assert type(event) is Mine
    assert Theirs(b=1).b == 1


# -- failures -----------------------------------------------------------------------------


async def test_handler_raising_cancelled_error_is_a_failed_attempt() -> None:
    bus = local_bus()
    handled: list[int] = []

    @bus.on(Pinged, name="self-cancelling", max_attempts=2)
    async def self_cancelling(event: Pinged) -> None:
        if event.n == 1:
            raise asyncio.CancelledError  # not a cancellation by the bus
        handled.append(event.n)

    async with bus:
        await bus.emit(Pinged(n=1))
        await bus.drain(timeout=10)
        (letter,) = await bus.dead_letters()
        assert bus.running
        await bus.emit(Pinged(n=2))  # the worker survived
        await bus.drain(timeout=10)
        (stats,) = bus.statistics()
    assert letter.attempts == 2
    assert letter.error_type == "asyncio.exceptions.CancelledError"
    assert handled == [2]
    assert (stats.handled, stats.failed, stats.retried, stats.dead_lettered) == (1, 2, 1, 1)


async def test_plugin_fixture_gives_fast_retries(hookbus_settings: Settings) -> None:
    assert hookbus_settings.mode == "local"
    assert hookbus_settings.retry.max_attempts == 3
    assert hookbus_settings.retry.max_delay <= 0.01
    bus = EventBus(settings=hookbus_settings)

    def fails_twice(event: Pinged, attempt: int) -> None:
        if attempt < 3:
            raise RuntimeError(f"attempt {attempt}")

    rec = Recorder[Pinged](fail=fails_twice)
    bus.subscribe(Pinged, rec, name="fast")
    async with bus:
        event_id = await bus.emit(Pinged(n=1))
        await asyncio.wait_for(rec.wait_for(1), timeout=1.0)  # 3 tries, ms apart
    assert rec.attempts == {event_id: 3}
