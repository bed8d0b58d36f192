"""Settings, their environment variables, Redis URL validation and the retry policy."""

import math
import os
import re
from collections.abc import Callable
from typing import Any

import pytest

from hookbus import ConfigurationError, EventBus, RedisOptions, RetryPolicy, Settings

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


# -- Redis URL query options --------------------------------------------------------

ACCEPTED_OPTIONS = (
    "db, socket_timeout, socket_connect_timeout, socket_keepalive, ssl_ca_certs, ssl_ca_path, "
    "ssl_certfile, ssl_keyfile, ssl_cert_reqs, ssl_check_hostname, cluster"
)


@pytest.mark.parametrize(
    ("query", "option", "reason"),
    [
        ("foo=bar", "foo", "unknown option"),
        ("clusters=true", "clusters", "unknown option"),
        ("socket_timeout=1&colour", "colour", "unknown option"),
        ("retry_on_timeout=yes", "retry_on_timeout", "hookbus sets it itself"),
        ("password=secret", "password", "before the host"),
    ],
)
def test_an_unknown_url_option_is_named_with_the_accepted_ones(
    query: str, option: str, reason: str
) -> None:
    url = f"redis://cache:6379/0?{query}"
    for build in (
        lambda: Settings(redis_url=url),
        lambda: Settings.from_env({"HOOKBUS_REDIS_URL": url}),
        lambda: EventBus(mode="redis", redis_url=url),
    ):
        with pytest.raises(ConfigurationError) as info:
            build()
        message = str(info.value)
        assert f"option {option!r} is not accepted (" in message
        assert reason in message
        assert message.endswith(f"accepted options: {ACCEPTED_OPTIONS}")
        assert "secret" not in message


def test_the_environment_url_is_checked_when_the_bus_is_built(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("EVENT_BUS_MODE", "redis")
    clean_env.setenv("HOOKBUS_REDIS_URL", "redis://cache:6379/0?cluster=sometimes")
    with pytest.raises(ConfigurationError, match="cluster='sometimes' is invalid"):
        EventBus()


def test_a_cluster_is_named_by_the_url_option_or_the_redis_options(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert not Settings(redis_url="redis://cache:7000/0").redis_cluster
    assert Settings(redis_url="redis://cache:7000/0?cluster=true").redis_cluster
    assert Settings(
        redis_url="redis://cache:7000/0", redis=RedisOptions(cluster=True)
    ).redis_cluster
    clean_env.setenv("HOOKBUS_REDIS_URL", "rediss://:pw@cache:7000/0?cluster=yes")
    assert Settings.from_env().redis_cluster
    clean_env.setenv("HOOKBUS_REDIS_URL", "redis://cache:7000/0")
    clean_env.setenv("HOOKBUS_REDIS_CLUSTER", "1")
    clean_env.setenv("HOOKBUS_MIN_REPLICAS", "1")
    settings = Settings.from_env()
    assert settings.redis_cluster
    assert settings.redis.min_replicas == 1


@pytest.mark.parametrize(
    ("build", "said"),
    [
        (
            lambda: Settings(
                redis_url="redis://c:7000/0?cluster=true", redis=RedisOptions(hash_tag=True)
            ),
            "use cluster or hash_tag, not both",
        ),
        (lambda: RedisOptions(cluster=True, hash_tag=True), "use cluster or hash_tag, not both"),
        (
            lambda: Settings(redis_url="unix:///tmp/r.sock?cluster=true"),
            "a Redis Cluster is reached over TCP",
        ),
        (lambda: RedisOptions(min_replicas=-1), "min_replicas must be an integer >= 0"),
        (lambda: RedisOptions(replica_timeout=0), "replica_timeout must be a number of seconds"),
    ],
)
def test_cluster_settings_that_cannot_work_are_refused(build: Any, said: str) -> None:
    with pytest.raises(ConfigurationError, match=said):
        build()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("socket_timeout=abc", "socket_timeout='abc' is invalid: expected a number of seconds"),
        ("socket_timeout=", "socket_timeout='' is invalid: expected a number of seconds"),
        ("socket_connect_timeout=-1", "socket_connect_timeout='-1' is invalid: expected a number"),
        ("socket_timeout=nan", "socket_timeout='nan' is invalid: expected a number of seconds"),
        ("socket_keepalive=maybe", "socket_keepalive='maybe' is invalid: expected a boolean"),
        ("db=two", "db='two' is invalid: expected a database number >= 0 (int)"),
        ("db=-1", "db='-1' is invalid: expected a database number >= 0 (int)"),
    ],
)
def test_an_ill_typed_url_option_names_the_option_and_the_type(query: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(f"Redis URL option {expected}")):
        Settings(redis_url=f"redis://cache/?{query}")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ssl_cert_reqs=sometimes", "ssl_cert_reqs='sometimes' is invalid: expected one of"),
        ("ssl_check_hostname=2", "ssl_check_hostname='2' is invalid: expected a boolean"),
        ("ssl_ca_certs=", "ssl_ca_certs='' is invalid: expected a non-empty path"),
    ],
)
def test_an_ill_typed_tls_option_names_the_option_and_the_type(query: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(f"Redis URL option {expected}")):
        Settings(redis_url=f"rediss://cache/?{query}")


@pytest.mark.parametrize("url", ["redis://cache/0", "unix:///run/redis.sock"])
def test_tls_options_need_a_tls_url(url: str) -> None:
    with pytest.raises(ConfigurationError, match="'ssl_ca_certs' applies to TLS connections only"):
        Settings(redis_url=f"{url}?ssl_ca_certs=/etc/ca.pem")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://cache/?db=1&db=2", "option 'db' is given twice"),
        ("redis://cache/1?db=2", "gives the database twice"),
    ],
)
def test_an_ambiguous_url_is_refused(url: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        Settings(redis_url=url)


def test_accepted_url_options_are_typed() -> None:
    from hookbus._redis_url import parse_redis_url

    url = parse_redis_url(
        "rediss://:pw@cache:6380?db=3&socket_timeout=2.5&socket_connect_timeout=1"
        "&socket_keepalive=off&ssl_ca_certs=/etc/ssl/ca%20file.pem&ssl_ca_path=/etc/ssl/certs"
        "&ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_cert_reqs=optional&ssl_check_hostname=no"
    )
    assert url.address == "rediss://:pw@cache:6380"
    assert url.options == {
        "db": 3,
        "socket_timeout": 2.5,
        "socket_connect_timeout": 1.0,
        "socket_keepalive": False,
        "ssl_ca_certs": "/etc/ssl/ca file.pem",
        "ssl_ca_path": "/etc/ssl/certs",
        "ssl_certfile": "/c.pem",
        "ssl_keyfile": "/k.pem",
        "ssl_cert_reqs": "optional",
        "ssl_check_hostname": False,
    }
    assert parse_redis_url("unix:///run/redis.sock?db=2").options == {"db": 2}


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
