"""Settings, their environment variables, Redis URL validation and the retry policy."""

import math
import os
import re
from collections.abc import Callable

import pytest

from hookbus import ConfigurationError, EventBus, RetryPolicy, Settings

ENV_PREFIXES = ("EVENT_BUS_", "HOOKBUS_")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment without any hookbus variable."""
    for var in list(os.environ):
        if var.startswith(ENV_PREFIXES):
            monkeypatch.delenv(var)
    return monkeypatch


# -- defaults and the environment ------------------------------------------------


def test_defaults() -> None:
    settings = Settings()
    assert settings.mode == "local"
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.max_event_size == 1024 * 1024
    assert settings.queue_size == 10_000
    assert settings.retry == RetryPolicy(max_attempts=5, base_delay=0.1, max_delay=30.0)
    assert settings.retry.jitter == 0.5
    assert settings.stop_timeout == 10.0
    assert settings.max_dead_letters == 10_000
    assert settings.sync_workers is None
    assert settings.source == "hookbus"


def test_from_env_without_variables_gives_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({"EVENT_BUS_MODE": "local"}, "local"),
        ({"HOOKBUS_MODE": "local"}, "local"),
        ({"EVENT_BUS_MODE": " LOCAL "}, "local"),
        ({"EVENT_BUS_MODE": "", "HOOKBUS_MODE": "local"}, "local"),
    ],
)
def test_mode_from_env(env: dict[str, str], mode: str) -> None:
    assert Settings.from_env(env).mode == mode


def test_event_bus_mode_wins_over_hookbus_mode() -> None:
    with pytest.raises(ConfigurationError, match="'nope'"):
        Settings.from_env({"EVENT_BUS_MODE": "nope", "HOOKBUS_MODE": "local"})
    assert Settings.from_env({"EVENT_BUS_MODE": "local", "HOOKBUS_MODE": "nope"}).mode == "local"


def test_bad_mode_lists_the_accepted_modes() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"EVENT_BUS_MODE": "kafka"})
    message = str(info.value)
    assert "'kafka'" in message
    assert "local" in message
    assert "redis" in message


def test_values_from_env() -> None:
    settings = Settings.from_env(
        {
            "HOOKBUS_REDIS_URL": "redis://cache:6380/3",
            "HOOKBUS_MAX_EVENT_SIZE": "2048",
            "HOOKBUS_QUEUE_SIZE": "16",
            "HOOKBUS_STOP_TIMEOUT": "2.5",
            "HOOKBUS_SOURCE": "shop/till",
        }
    )
    assert settings.redis_url == "redis://cache:6380/3"
    assert settings.max_event_size == 2048
    assert settings.queue_size == 16
    assert settings.stop_timeout == 2.5
    assert settings.source == "shop/till"


def test_retry_policy_from_env() -> None:
    settings = Settings.from_env(
        {
            "HOOKBUS_MAX_ATTEMPTS": "7",
            "HOOKBUS_RETRY_BASE_DELAY": "0.25",
            "HOOKBUS_RETRY_MAX_DELAY": "4",
        }
    )
    assert settings.retry == RetryPolicy(max_attempts=7, base_delay=0.25, max_delay=4.0)
    partial = Settings.from_env({"HOOKBUS_MAX_ATTEMPTS": "2"}).retry
    assert (partial.max_attempts, partial.base_delay) == (2, RetryPolicy().base_delay)


@pytest.mark.parametrize(
    ("var", "raw"),
    [
        ("HOOKBUS_MAX_EVENT_SIZE", "1MB"),
        ("HOOKBUS_QUEUE_SIZE", "1.5"),
        ("HOOKBUS_STOP_TIMEOUT", "soon"),
        ("HOOKBUS_MAX_ATTEMPTS", "three"),
        ("HOOKBUS_RETRY_BASE_DELAY", "100ms"),
        ("HOOKBUS_RETRY_MAX_DELAY", ""),
    ],
)
def test_non_numeric_values_name_the_variable(var: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(f"{var}={raw!r} is not a valid")):
        Settings.from_env({var: raw})


# -- Redis URLs --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "redis://user:pass@host:6380/2",
        "redis://:password@host",
        "rediss://host",
        "unix:///tmp/redis.sock",
    ],
)
def test_valid_redis_urls(url: str) -> None:
    assert Settings(redis_url=url).redis_url == url
    assert Settings.from_env({"HOOKBUS_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://x",
        "redis://host:99999",
        "redis://host:0",
        "redis://host/abc",
        "redis://",
        "",
        "localhost:6379",
        "unix://",
    ],
)
def test_invalid_redis_urls_say_what_is_expected(url: str) -> None:
    with pytest.raises(ConfigurationError, match="expected") as info:
        Settings(redis_url=url)
    assert "redis://" in str(info.value)


# -- options -------------------------------------------------------------------------


def test_with_options_replaces_fields() -> None:
    settings = Settings().with_options(queue_size=5, source="svc")
    assert (settings.queue_size, settings.source) == (5, "svc")
    assert settings.mode == "local"


def test_with_options_refuses_unknown_names() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings().with_options(queue_sise=5, colour="red")
    message = str(info.value)
    assert "colour, queue_sise" in message
    for name in ("max_event_size", "queue_size", "retry", "stop_timeout", "source", "mode"):
        assert name in message


@pytest.mark.parametrize(
    "options",
    [
        {"max_event_size": 0},
        {"queue_size": -1},
        {"max_dead_letters": 0},
        {"stop_timeout": -1.0},
        {"sync_workers": 0},
        {"source": ""},
        {"max_event_size": "1MB"},
    ],
)
def test_invalid_settings_values(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Settings().with_options(**options)


def test_event_bus_refuses_an_unknown_mode() -> None:
    with pytest.raises(ConfigurationError, match="unknown event bus mode 'nope'"):
        EventBus(mode="nope")


def test_event_bus_reads_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EVENT_BUS_MODE", "local")
    clean_env.setenv("HOOKBUS_MAX_EVENT_SIZE", "4096")
    bus = EventBus()
    assert bus.mode == "local"
    assert bus.settings.max_event_size == 4096
    assert EventBus(max_event_size=100).settings.max_event_size == 100  # options win


def test_event_bus_reports_a_bad_mode_in_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EVENT_BUS_MODE", "nope")
    with pytest.raises(ConfigurationError, match="EVENT_BUS_MODE"):
        EventBus()


@pytest.mark.parametrize(
    ("var", "raw"), [("EVENT_BUS_MODE", "nope"), ("HOOKBUS_MAX_EVENT_SIZE", "1MB")]
)
def test_explicit_arguments_win_over_a_bad_environment(
    clean_env: pytest.MonkeyPatch, var: str, raw: str
) -> None:
    clean_env.setenv(var, raw)
    assert EventBus(mode="local", max_event_size=4096).mode == "local"


# -- retry policy --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": -3},
        {"max_attempts": 2.5},
        {"base_delay": -0.1},
        {"max_delay": -1.0},
        {"jitter": -0.01},
        {"jitter": 1.5},
    ],
)
def test_retry_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: RetryPolicy(base_delay=math.nan),
        lambda: RetryPolicy(max_delay=math.nan),
        lambda: Settings(stop_timeout=math.nan),
        lambda: Settings.from_env({"HOOKBUS_RETRY_MAX_DELAY": "nan"}),
    ],
    ids=["base_delay", "max_delay", "stop_timeout", "env-max_delay"],
)
def test_nan_durations_are_refused(build: Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError):
        build()


@pytest.mark.parametrize("jitter", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("failures", [1, 2, 3, 5, 9, 12, 20, 100, 10_000])
def test_delay_bounds(failures: int, jitter: float) -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=30.0, jitter=jitter)
    expected = 30.0 if failures > 64 else min(30.0, 0.1 * 2 ** (failures - 1))
    samples = [policy.delay(failures) for _ in range(200)]
    assert all(expected * (1 - jitter) <= d <= expected for d in samples)
    assert (len(set(samples)) > 1) == (jitter > 0)  # jitter spreads retries out


def test_delay_without_jitter_is_exact_and_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(1_000_000) == 3.0
