"""Event ids: UUIDv7, strictly increasing within a process, distinct across a fork."""

import os
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from hookbus import _ids
from hookbus._ids import id_time, new_event_id


def test_ids_are_uuid_version_7_rfc_4122_variant() -> None:
    event_id = new_event_id()
    parsed = uuid.UUID(event_id)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == event_id  # canonical lower-case text form
    assert len(event_id) == 36


def test_ids_are_strictly_increasing_and_unique() -> None:
    ids = [new_event_id() for _ in range(10_000)]
    assert all(a < b for a, b in pairwise(ids))
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)


@pytest.fixture
def fresh_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start the generator on a new millisecond; restore its real-clock state afterwards."""
    for name in ("_ms_end", "_prefix", "_seq"):
        monkeypatch.setattr(_ids, name, getattr(_ids, name))
    monkeypatch.setattr(_ids, "_ms_end", -1)


T0 = 1_700_000_000_123 * 1_000_000  # a whole millisecond, in ns


@pytest.mark.usefixtures("fresh_generator")
def test_ids_keep_increasing_when_the_clock_goes_back() -> None:
    ms = 1_000_000
    clock = iter([T0, T0 + 2 * ms, T0 - 5 * ms, T0 + 2 * ms + 999_999, T0 + 3 * ms])
    ids = [new_event_id(lambda: next(clock)) for _ in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    times = [id_time(i) for i in ids]
    start = datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)
    step = timedelta(milliseconds=1)
    # While the clock is behind, ids keep the last millisecond seen.
    assert times == [start, start + 2 * step, start + 2 * step, start + 2 * step, start + 3 * step]


@pytest.mark.usefixtures("fresh_generator")
def test_id_time_is_the_millisecond_of_the_clock() -> None:
    event_id = new_event_id(lambda: T0 + 456_789)
    assert event_id.startswith("018bcfe5-687b-7")
    assert id_time(event_id) == datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)


def test_id_time_is_close_to_now() -> None:
    created = id_time(new_event_id())
    assert created is not None
    assert abs(created - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    "other",
    [
        str(uuid.uuid4()),
        str(uuid.uuid1()),
        "",
        "not-an-id",
        "zzzzzzzz-zzzz-7zzz-8zzz-zzzzzzzzzzzz",
    ],
)
def test_id_time_of_other_ids_is_none(other: str) -> None:
    assert id_time(other) is None


def _fork_ids(count: int) -> tuple[list[str], list[str]]:
    """Ids made by a forked child (sent back through a pipe) and by the parent meanwhile."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python >= 3.12 warns when forking a process that has threads.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: no pytest machinery, just write and leave
        try:
            os.close(read_fd)
            payload = "\n".join(new_event_id() for _ in range(count)).encode()
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
        finally:
            os._exit(0)
    os.close(write_fd)
    parent_ids = [new_event_id() for _ in range(count)]
    with os.fdopen(read_fd, "rb") as pipe:
        child_ids = pipe.read().decode().split("\n")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return child_ids, parent_ids


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_makes_different_ids() -> None:
    new_event_id()  # the parent has a current millisecond prefix before the fork
    child_ids, parent_ids = _fork_ids(1000)
    assert len(child_ids) == 1000
    assert all(uuid.UUID(i).version == 7 for i in child_ids)
    assert len(set(child_ids)) == 1000
    # Without the reset at fork the child would continue the parent's
    # millisecond prefix and counter, repeating the parent's next ids.
    assert not set(child_ids) & set(parent_ids)
