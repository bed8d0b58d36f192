"""One relay per SQLite file: the process holding a lock file relays, others stand by.

SQLite has no row locks, so two relays on one file could send a row twice.
Each relay of a file-backed SQLite outbox tries to take an exclusive
``flock`` on ``<database file>.hookbus-relay.lock``; the one that holds it
relays, the others try again at every poll. The operating system releases
the lock when its process dies, however it dies, so a standby takes over
within one poll interval.

An in-memory database has nothing to share; on platforms without ``fcntl``
every relay relays (run one per file there).
"""

from __future__ import annotations

import contextlib
import os
from typing import IO

from sqlalchemy.engine import URL

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]

__all__ = ["RelayLock"]


class RelayLock:
    """The relay lock of one SQLite database file (or no lock at all)."""

    def __init__(self, url: URL) -> None:
        database = url.database or ""
        file_backed = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
        self.path = f"{os.path.abspath(database)}.hookbus-relay.lock" if file_backed else None
        self._file: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        """Whether this process may relay (it holds the lock, or none is needed)."""
        return self.path is None or fcntl is None or self._file is not None

    def acquire(self) -> bool:
        """Take the lock if it is free; whether this process may relay now."""
        if self.held:
            return True
        assert self.path is not None
        handle = open(self.path, "ab")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        """Let another process relay."""
        handle, self._file = self._file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
