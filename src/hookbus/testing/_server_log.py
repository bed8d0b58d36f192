"""The process a test server started and the log file it writes, shared by
:class:`~hookbus.testing.redis_server.RedisServer` and
:class:`~hookbus.testing.postgres_server.PostgresServer`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["LOG_TAIL_LINES", "ServerProcess"]

#: Lines of a server's log quoted in an error.
LOG_TAIL_LINES = 30


class ServerProcess:
    """A server's process (``_process``) and the descriptor of its log (``_log_file``);
    subclasses say where the log is (:attr:`log_path`)."""

    _process: subprocess.Popen[bytes] | None
    _log_file: int | None

    @property
    def log_path(self) -> Path | None:
        """The server's log file, once there is one."""
        raise NotImplementedError

    def _reap(self) -> None:
        """Forget a process that exited by itself."""
        if self._process is not None and self._process.poll() is not None:
            self._process = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            os.close(self._log_file)
            self._log_file = None

    def _log_size(self) -> int:
        log_path = self.log_path
        try:
            return log_path.stat().st_size if log_path is not None else 0
        except OSError:
            return 0

    def _log_since(self, offset: int) -> str:
        log_path = self.log_path
        if log_path is None:
            return ""
        try:
            with log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _log_tail(self) -> str:
        lines = self._log_since(0).splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty)"
