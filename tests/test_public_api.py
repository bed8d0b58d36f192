"""The public surface of ``hookbus``: exported names, docstrings, the error tree, typing."""

import importlib
import inspect
from importlib.resources import files

import pydantic
import pytest

import hookbus
from hookbus import (
    BusClosedError,
    BusUnavailableError,
    ConfigurationError,
    DeadLetterNotFoundError,
    DrainTimeoutError,
    DuplicateSubscriberError,
    EventTooLargeError,
    HookbusError,
    InvalidEnvelopeError,
    InvalidEventError,
    UnknownEventError,
)

EXPECTED_ALL = [
    "BusClosedError",
    "BusStatus",
    "BusUnavailableError",
    "Capabilities",
    "ConfigurationError",
    "DeadLetter",
    "DeadLetterNotFoundError",
    "Delivery",
    "DrainTimeoutError",
    "DuplicateSubscriberError",
    "Envelope",
    "Event",
    "EventBus",
    "EventTooLargeError",
    "EventTypeStatus",
    "HookbusError",
    "InvalidEnvelopeError",
    "InvalidEventError",
    "Listener",
    "ListenerOverflowError",
    "LiveStatistics",
    "Problem",
    "RabbitMQOptions",
    "RedisOptions",
    "RetryPolicy",
    "Settings",
    "Severity",
    "SubscriberStats",
    "SubscriberStatus",
    "Subscription",
    "UnknownEventError",
    "UnsupportedError",
    "__version__",
    "current_delivery",
    "current_envelope",
    "decode_envelope",
    "event_name",
    "event_types",
    "event_version",
    "is_durable",
    "upcaster",
]


def test_all_is_pinned() -> None:
    assert hookbus.__all__ == EXPECTED_ALL


def test_all_is_sorted_and_without_duplicates() -> None:
    assert hookbus.__all__ == sorted(set(hookbus.__all__))


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_exported_name_is_importable(name: str) -> None:
    module = importlib.import_module("hookbus")
    assert getattr(module, name, None) is not None


def test_star_import_gives_exactly_the_exported_names() -> None:
    namespace: dict[str, object] = {}
    exec("from hookbus import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == EXPECTED_ALL


@pytest.mark.parametrize(
    "name", [n for n in EXPECTED_ALL if inspect.isclass(getattr(hookbus, n, None))]
)
def test_every_exported_class_has_its_own_docstring(name: str) -> None:
    cls = getattr(hookbus, name)
    doc = cls.__dict__.get("__doc__")
    assert isinstance(doc, str)
    assert doc.strip()
    assert not doc.startswith(f"{name}(")  # not the signature @dataclass fills in


@pytest.mark.parametrize(
    "name", [n for n in EXPECTED_ALL if inspect.isfunction(getattr(hookbus, n, None))]
)
def test_every_exported_function_has_a_docstring(name: str) -> None:
    doc = inspect.getdoc(getattr(hookbus, name))
    assert doc
    assert doc.strip()


def test_every_public_method_of_the_bus_is_documented() -> None:
    undocumented = [
        name
        for name, member in vars(hookbus.EventBus).items()
        if not name.startswith("_")
        and (inspect.isfunction(member) or isinstance(member, property))
        and not (member.__doc__ or "").strip()
    ]
    assert undocumented == []


def test_version_is_a_string() -> None:
    assert isinstance(hookbus.__version__, str)
    assert hookbus.__version__.count(".") >= 1


def test_package_has_a_docstring() -> None:
    assert (hookbus.__doc__ or "").strip()


def exported_exceptions() -> list[type[BaseException]]:
    return [
        obj
        for name in dir(hookbus)
        if isinstance(obj := getattr(hookbus, name), type) and issubclass(obj, BaseException)
    ]


def test_exceptions_are_all_exported() -> None:
    names = {cls.__name__ for cls in exported_exceptions()}
    assert names == {
        "BusClosedError",
        "BusUnavailableError",
        "ConfigurationError",
        "DeadLetterNotFoundError",
        "DrainTimeoutError",
        "DuplicateSubscriberError",
        "EventTooLargeError",
        "HookbusError",
        "InvalidEnvelopeError",
        "InvalidEventError",
        "ListenerOverflowError",
        "UnknownEventError",
        "UnsupportedError",
    }
    assert names <= set(hookbus.__all__)


@pytest.mark.parametrize("exc", exported_exceptions(), ids=lambda cls: cls.__name__)
def test_every_exception_is_a_hookbus_error(exc: type[BaseException]) -> None:
    assert issubclass(exc, HookbusError)
    assert issubclass(exc, Exception)


@pytest.mark.parametrize(
    ("exc", "parent"),
    [
        (ConfigurationError, ValueError),
        (DuplicateSubscriberError, ConfigurationError),
        (UnknownEventError, LookupError),
        (InvalidEventError, pydantic.ValidationError),
        (InvalidEventError, ValueError),
        (EventTooLargeError, ValueError),
        (InvalidEnvelopeError, ValueError),
        (BusClosedError, RuntimeError),
        (BusUnavailableError, ConnectionError),
        (DeadLetterNotFoundError, LookupError),
        (DrainTimeoutError, TimeoutError),
    ],
)
def test_built_in_parents(exc: type[BaseException], parent: type[BaseException]) -> None:
    assert issubclass(exc, parent)


def test_errors_can_be_caught_by_their_built_in_parent() -> None:
    with pytest.raises(ValueError, match="bad"):
        raise ConfigurationError("bad")
    with pytest.raises(LookupError, match="unknown event type 'x'"):
        raise UnknownEventError("x", [])
    with pytest.raises(TimeoutError):
        raise DrainTimeoutError("late")


def test_unknown_event_error_suggests_close_names() -> None:
    exc = UnknownEventError("sale_closd", ["sale_closed", "refund_issued"])
    assert exc.name == "sale_closd"
    assert exc.suggestions == ["sale_closed"]
    assert "Did you mean 'sale_closed'?" in str(exc)


def test_package_is_typed() -> None:
    marker = files("hookbus") / "py.typed"
    assert marker.is_file()
