"""Run a throw-away PostgreSQL server as a child process, for tests and benches.

Standard library only; the server listens on 127.0.0.1 (a free port, never 5432) and on a Unix
socket inside its own data directory, and keeps everything in a temporary directory. Made for
Debian's ``postgresql`` packages (PostgreSQL 15 on bookworm, in ``/usr/lib/postgresql/15/bin``):
the cluster is made with ``initdb`` and the postmaster runs in the foreground as a child of this
process, not as a service and not daemonised by ``pg_ctl``.

* :func:`find_postgres`: the directory holding ``postgres`` and ``initdb``.
* :class:`PostgresServer`: one server, as a context manager. It creates a cluster (trust
  authentication, superuser ``postgres``, UTF-8), starts the postmaster, waits until it accepts
  a real connection, and stops it on exit. :meth:`PostgresServer.create_database` gives each test
  a database of its own; :meth:`PostgresServer.kill` and :meth:`PostgresServer.restart`
  simulate a crash and a recovery on the same port and data directory.

PostgreSQL refuses to run as root: when this process runs as root, ``initdb`` and the server run
as the ``postgres`` system user (the package creates it), and the temporary directory is handed
to that user. Otherwise they run as the current user.

Example::

    with PostgresServer() as server:
        url = server.create_database("orders")   # postgresql+asyncpg://postgres@127.0.0.1:PORT/orders
        engine = create_async_engine(url)
        ...
        server.kill()      # SIGKILL, as in a crash
        server.restart()   # same port, same data: committed rows survive

The server is tuned for tests: ``fsync`` and ``full_page_writes`` are off. A commit still writes
its WAL before it returns (``synchronous_commit`` stays on), so a crash of the server alone
(:meth:`PostgresServer.kill`) loses nothing committed; a crash of the machine would.

No server outlives the Python process that started it: :meth:`PostgresServer.close` runs on
``__exit__`` and for every server still open at interpreter exit (``atexit``); on Linux the
postmaster also gets ``SIGKILL`` if the thread that started it dies without cleaning up
(``PR_SET_PDEATHSIG``, set only when the server is started from the main thread), and its
backends exit when they see it gone.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self, TypedDict
from urllib.parse import quote

from ._server_log import ServerProcess
from .redis_server import _death_signal_setup

__all__ = [
    "POSTGRES_BIN_ENV",
    "PostgresServer",
    "PostgresServerError",
    "find_postgres",
]

POSTGRES_BIN_ENV = "HOOKBUS_TEST_POSTGRES_BIN"
"""Environment variable: the directory holding the ``postgres`` and ``initdb`` binaries."""

HOST = "127.0.0.1"
USER = "postgres"
"""The superuser made by ``initdb`` and used by :attr:`PostgresServer.url`."""

_DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"
_SYSTEM_USER = "postgres"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_QUERY_TIMEOUT = 30.0
_KILL_TIMEOUT = 5.0
_PORT_ATTEMPTS = 3
_PROTOCOL_3 = 196608
_CANNOT_CONNECT_NOW = "57P03"  # the database system is starting up / shutting down
_PORT_IN_USE = re.compile(r"could not bind .*address already in use", re.IGNORECASE)
_TEST_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "log_min_messages": "warning",
}


# --------------------------------------------------------------------------- finding the server


def _version_key(path: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> ``(15,)``; ``.../9.6/bin`` -> ``(9, 6)``."""
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def _has_binaries(directory: Path) -> bool:
    return all(
        (directory / name).is_file() and os.access(directory / name, os.X_OK)
        for name in ("postgres", "initdb")
    )


def find_postgres() -> str:
    """Return the directory holding the ``postgres`` and ``initdb`` binaries to run.

    ``HOOKBUS_TEST_POSTGRES_BIN`` if set and not blank, else the newest of Debian's
    ``/usr/lib/postgresql/<version>/bin``.

    Raises ``RuntimeError`` saying what is missing and how to install it.
    """
    configured = os.environ.get(POSTGRES_BIN_ENV, "").strip()
    if configured:
        directory = Path(configured)
        if not _has_binaries(directory):
            raise RuntimeError(
                f"{POSTGRES_BIN_ENV}={configured!r} does not hold executable postgres and "
                "initdb binaries"
            )
        return str(directory)
    candidates = sorted(
        (path for path in Path("/").glob(_DEBIAN_GLOB.lstrip("/")) if _has_binaries(path)),
        key=_version_key,
    )
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL is not installed: no {_DEBIAN_GLOB} holds postgres and initdb. Install "
            "it with `apt-get install --no-install-recommends postgresql` (Debian; forbid the "
            "service from starting with a policy-rc.d that exits 101), or name the directory "
            f"of its binaries in {POSTGRES_BIN_ENV}."
        )
    return str(candidates[-1])


@functools.cache
def _version_of(postgres: str) -> str:
    try:
        result = subprocess.run(
            [postgres, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"could not run {postgres} --version: {exc}") from exc
    match = re.search(r"\(PostgreSQL\)\s+(\S+)", result.stdout)
    if match is None:
        raise RuntimeError(
            f"unexpected output of {postgres} --version: "
            f"{(result.stdout + result.stderr).strip()!r}"
        )
    return match.group(1)


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _system_user() -> tuple[int, int] | None:
    """``(uid, gid)`` of the ``postgres`` system user when running as root, else ``None``."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(_SYSTEM_USER)
    except KeyError:
        raise RuntimeError(
            "PostgreSQL refuses to run as root, and there is no 'postgres' system user to run "
            "it as (Debian's postgresql package creates it; or run the tests as another user)"
        ) from None
    return entry.pw_uid, entry.pw_gid


def _child_env(user: tuple[int, int] | None) -> dict[str, str]:
    """This process's environment without libpq / server settings that would leak in."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    env["LC_ALL"] = "C"  # English messages: the port-in-use check reads them
    env.pop("LANGUAGE", None)
    if user is not None:
        env["HOME"] = pwd.getpwuid(user[0]).pw_dir
        env["USER"] = env["LOGNAME"] = _SYSTEM_USER
    return env


class _Identity(TypedDict):
    user: int | None
    group: int | None
    extra_groups: list[int] | None


def _identity(user: tuple[int, int] | None) -> _Identity:
    """``Popen`` arguments that run the child as ``user`` (``(uid, gid)``), if given."""
    if user is None:
        return {"user": None, "group": None, "extra_groups": None}
    return {"user": user[0], "group": user[1], "extra_groups": []}


def _processes() -> dict[int, tuple[int, str, int]]:
    """Every process: pid -> (parent pid, state letter, start time in clock ticks)."""
    table: dict[int, tuple[int, str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(entry.name)] = (int(fields[1]), fields[0], int(fields[19]))
    return table


def _descendants(root: int) -> list[int]:
    """The processes below ``root`` (zombies included), parents before children."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in _processes().items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _state(pid: int) -> str | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


@contextlib.contextmanager
def _subreaper() -> Iterator[bool]:
    """Make this process the reaper of orphaned descendants while the block runs (Linux).

    Yields whether it is: the backends of a postmaster killed with SIGKILL then become this
    process's children, to be waited for, instead of init's (which may never reap them).
    """
    prctl = _prctl()
    if prctl is None:
        yield False
        return
    was = ctypes.c_int(0)
    prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0)
    if was.value:
        yield True
        return
    if prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        yield False
        return
    try:
        yield True
    finally:
        prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


# --------------------------------------------------------------------------- wire protocol


class PostgresServerError(RuntimeError):
    """An error the server answered with (``ErrorResponse``): its SQLSTATE and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} (SQLSTATE {code})")
        self.code = code
        self.message = message


class _Connection:
    """A minimal frontend of the PostgreSQL protocol 3.0: trust authentication, simple queries.

    Enough to tell that the server accepts connections and to run ``CREATE DATABASE``; tests
    use a real driver.
    """

    def __init__(self, port: int, database: str, timeout: float) -> None:
        self._sock = socket.create_connection((HOST, port), timeout=timeout)
        try:
            params = f"user\0{USER}\0database\0{database}\0application_name\0hookbus-test\0\0"
            body = struct.pack("!i", _PROTOCOL_3) + params.encode()
            self._sock.sendall(struct.pack("!i", len(body) + 4) + body)
            self._until_ready()
        except BaseException:
            self._sock.close()
            raise

    def query(self, sql: str) -> None:
        """Run ``sql`` (one or more statements, results discarded); raise on an error."""
        body = sql.encode() + b"\0"
        self._sock.sendall(b"Q" + struct.pack("!i", len(body) + 4) + body)
        self._until_ready()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendall(b"X" + struct.pack("!i", 4))
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _until_ready(self) -> None:
        """Read messages up to ``ReadyForQuery`` (or the end of the connection)."""
        error: PostgresServerError | None = None
        while True:
            kind, body = self._read_message()
            if kind == b"Z":
                break
            if kind == b"E":
                error = _error(body)
                if self._is_fatal(body):
                    break
            elif kind == b"R":
                (code,) = struct.unpack("!i", body[:4])
                if code != 0:
                    raise RuntimeError(
                        f"the server asks for authentication (request {code}); only trust "
                        "authentication is supported"
                    )
        if error is not None:
            raise error

    @staticmethod
    def _is_fatal(body: bytes) -> bool:
        fields = _fields(body)
        return fields.get("S", fields.get("V", "")) in ("FATAL", "PANIC")

    def _read_message(self) -> tuple[bytes, bytes]:
        header = self._read_exactly(5)
        (length,) = struct.unpack("!i", header[1:])
        return header[:1], self._read_exactly(length - 4)

    def _read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data


def _fields(body: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


def _error(body: bytes) -> PostgresServerError:
    fields = _fields(body)
    return PostgresServerError(fields.get("C", "?????"), fields.get("M", "(no message)"))


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- the server


class PostgresServer(ServerProcess):
    """A PostgreSQL server on 127.0.0.1, for tests and benchmarks.

    Nothing starts until :meth:`start` (or ``with``). Arguments, all optional:

    * ``bin_dir``: the directory of ``postgres`` and ``initdb`` (default:
      :func:`find_postgres`).
    * ``port``: the port; by default a free one is picked (and picked again, up to three times,
      if another process takes it before the server binds it). It stays the same on restart.
    * ``settings``: more server settings (``-c name=value``), placed last (so they win over the
      test defaults: ``fsync`` and ``full_page_writes`` off).

    The cluster (``data``) and the server's log (``server.log``) live in a temporary directory
    made on the first start (as root, handed to the ``postgres`` system user) and removed by
    :meth:`close`. The superuser is ``postgres``, without a password (trust authentication on
    127.0.0.1 and on the Unix socket in the data directory).
    """

    def __init__(
        self,
        bin_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir is not None else Path(find_postgres())
        self.settings = dict(settings or {})
        self._port_given = port is not None
        self._port = port if port is not None else _free_port()
        self._base_dir: Path | None = None  # made on the first start
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: int | None = None
        self._closed = False

    # ----------------------------------------------------------------------- properties

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1."""
        return self._port

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database, with asyncpg:
        ``postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres``."""
        return self.url_for("postgres")

    @property
    def dsn(self) -> str:
        """libpq / asyncpg DSN of the ``postgres`` database:
        ``postgresql://postgres@127.0.0.1:PORT/postgres``."""
        return self.dsn_for("postgres")

    def url_for(self, database: str) -> str:
        """SQLAlchemy (asyncpg) URL of ``database`` on this server."""
        return "postgresql+asyncpg" + self.dsn_for(database).removeprefix("postgresql")

    def dsn_for(self, database: str) -> str:
        """libpq / asyncpg DSN of ``database`` on this server."""
        return f"postgresql://{USER}@{HOST}:{self._port}/{quote(database, safe='')}"

    @property
    def version(self) -> str:
        """The server's version, e.g. ``"15.14"`` (from ``postgres --version``; cached)."""
        return _version_of(str(self.bin_dir / "postgres"))

    @property
    def running(self) -> bool:
        """Whether the postmaster is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the postmaster, while it has been started and not yet stopped."""
        return self._process.pid if self._process is not None else None

    @property
    def pids(self) -> list[int]:
        """The postmaster and its backends and helpers that still run."""
        if not self.running or self._process is None:
            return []
        root = self._process.pid
        return [root, *(pid for pid in _descendants(root) if _state(pid) not in (None, "Z"))]

    @property
    def base_dir(self) -> Path | None:
        """The temporary directory holding the cluster and the log (once started)."""
        return self._base_dir

    @property
    def data_dir(self) -> Path | None:
        """The cluster's directory, also that of the server's Unix socket (once started)."""
        return self._base_dir / "data" if self._base_dir is not None else None

    @property
    def log_path(self) -> Path | None:
        """The server's log (its stderr), with ``initdb``'s output (once started)."""
        return self._base_dir / "server.log" if self._base_dir is not None else None

    # ----------------------------------------------------------------------- lifecycle

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Create the cluster if needed, start the server and wait until it accepts a connection.

        Raises ``RuntimeError`` after ``timeout`` seconds or if the server exits; the error
        carries the tail of its log. The first start (``initdb`` included) takes about 2 s.
        """
        if self._closed:
            raise RuntimeError("this PostgresServer was closed; make a new one")
        if self.running:
            raise RuntimeError(f"server already running on port {self._port}")
        self._reap()
        deadline = time.monotonic() + timeout
        user = _system_user()
        if self._base_dir is None:
            self._base_dir = Path(tempfile.mkdtemp(prefix="hookbus-postgres-"))
            _LIVE.add(self)
            self._prepare(user)
        assert self.data_dir is not None
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(user, deadline)
        attempts = 1 if self._port_given else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            log_size = self._log_size()
            self._spawn(user)
            try:
                self._wait_ready(max(0.1, deadline - time.monotonic()), timeout)
            except RuntimeError:
                self.kill()
                if attempt < attempts and _PORT_IN_USE.search(self._log_since(log_size)):
                    self._port = _free_port()
                    continue
                raise
            return

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop the server with a fast shutdown (SIGINT: sessions are cut, a checkpoint is
        written), then :meth:`kill` it if it has not exited within ``timeout`` seconds."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._process = None
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends (as in a crash) and wait for them to exit.

        The next start recovers from the write-ahead log. The postmaster is frozen (SIGSTOP)
        first so that it forks nothing more, and this process reaps the backends it orphans.
        """
        process = self._process
        if process is None:
            self._close_log()
            return
        if process.poll() is None:
            with _subreaper() as reaping:
                self._kill_tree(process, reaping)
        process.wait()
        self._process = None
        self._close_log()

    def restart(self, timeout: float = _START_TIMEOUT) -> None:
        """Stop the server if it runs, then start it again on the same port and data."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop the server and remove its temporary directory (if it made one). Safe to call
        twice."""
        with contextlib.suppress(Exception):
            self.stop()
        if self._process is not None:
            self.kill()
        if self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)
            self._base_dir = None
        self._closed = True
        _LIVE.discard(self)

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<PostgresServer {self.bin_dir} {self.dsn} {state}>"

    # ----------------------------------------------------------------------- databases

    def execute(
        self, sql: str, database: str = "postgres", timeout: float = _QUERY_TIMEOUT
    ) -> None:
        """Run ``sql`` as ``postgres`` on ``database`` (results are discarded).

        Raises :class:`PostgresServerError` if the server answers with an error.
        """
        with _Connection(self._port, database, timeout) as connection:
            connection.query(sql)

    def create_database(self, name: str) -> str:
        """Create the database ``name`` (owned by ``postgres``) and return its SQLAlchemy URL
        (see :meth:`url_for`). Raises :class:`PostgresServerError` if it exists."""
        self.execute(f"CREATE DATABASE {_quote_identifier(name)}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop the database ``name`` if it exists, ending the sessions still connected to it."""
        self.execute(f"DROP DATABASE IF EXISTS {_quote_identifier(name)} WITH (FORCE)")

    # ----------------------------------------------------------------------- internals

    def _prepare(self, user: tuple[int, int] | None) -> None:
        """Create the log and hand the temporary directory to ``postgres`` (as root)."""
        assert self._base_dir is not None
        assert self.log_path is not None
        self.log_path.touch(mode=0o600)
        if user is not None:
            for path in (self._base_dir, self.log_path):
                os.chown(path, *user)

    def _initdb(self, user: tuple[int, int] | None, deadline: float) -> None:
        assert self.data_dir is not None
        command = [
            str(self.bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "--auth=trust",
            f"--username={USER}",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ]  # fmt: skip
        log_path = self.log_path
        assert log_path is not None
        with log_path.open("ab") as log:
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    cwd=self.data_dir.parent,
                    env=_child_env(user),
                    process_group=0,
                    preexec_fn=_death_signal_setup(),  # noqa: PLW1509 - only prctl
                    **_identity(user),
                )
            except OSError as exc:
                raise RuntimeError(f"could not run {command[0]}: {exc}") from exc
            try:
                code = process.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = None
        if code != 0:
            raise RuntimeError(
                f"initdb failed ({'timed out' if code is None else f'exit {code}'}) for "
                f"{self.data_dir}\n--- tail of {log_path} ---\n{self._log_tail()}"
            )

    def _command(self) -> list[str]:
        assert self.data_dir is not None
        settings = {
            "listen_addresses": HOST,
            "port": str(self._port),
            "unix_socket_directories": str(self.data_dir),
            **_TEST_SETTINGS,
            **self.settings,
        }
        command = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        return command

    def _spawn(self, user: tuple[int, int] | None) -> None:
        log_path = self.log_path
        assert log_path is not None
        assert self.data_dir is not None
        self._log_file = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=self._log_file,
                cwd=self.data_dir,
                env=_child_env(user),
                process_group=0,  # a Ctrl-C at the terminal is for the tests, not the server
                preexec_fn=_death_signal_setup(),  # noqa: PLW1509 - only prctl
                **_identity(user),
            )
        except OSError as exc:
            self._close_log()
            raise RuntimeError(f"could not start {self.bin_dir / 'postgres'}: {exc}") from exc

    def _wait_ready(self, remaining: float, timeout: float) -> None:
        """Wait until a connection to ``postgres`` completes its startup (``ReadyForQuery``)."""
        process = self._process
        assert process is not None
        deadline = time.monotonic() + remaining
        last_error = "no answer yet"
        while True:
            code = process.poll()
            if code is not None:
                raise RuntimeError(
                    f"postgres exited with code {code} while starting on port {self._port}"
                    f"\n--- tail of {self.log_path} ---\n{self._log_tail()}"
                )
            try:
                with _Connection(self._port, "postgres", timeout=1.0):
                    return
            except (OSError, PostgresServerError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"postgres did not accept connections on port {self._port} within "
                    f"{timeout:g} s (last error: {last_error})\n--- tail of {self.log_path} ---\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.02)

    def _kill_tree(self, process: subprocess.Popen[bytes], reaping: bool) -> None:
        """SIGKILL the (frozen) postmaster and every descendant; reap the orphans if
        ``reaping`` (this process is their subreaper)."""
        root = process.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(root, signal.SIGSTOP)
        deadline = time.monotonic() + _KILL_TIMEOUT
        while _state(root) not in (None, "T", "t", "Z") and time.monotonic() < deadline:
            time.sleep(0.001)
        tree = _descendants(root)
        for pid in [root, *tree]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
        if not reaping:
            return
        # The backends are now this process's children: wait for each (bounded).
        pending = set(tree)
        while pending and time.monotonic() < deadline:
            for pid in list(pending):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # not (or no longer) ours
                    pending.discard(pid)
                    continue
                if done:
                    pending.discard(pid)
            if pending:
                time.sleep(0.005)


_LIVE: set[PostgresServer] = set()
"""Servers started and not yet closed; closed at interpreter exit."""


@atexit.register
def _close_all() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.close()
