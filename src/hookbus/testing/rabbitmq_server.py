"""Run a real RabbitMQ broker (one node or a cluster) as child processes, for tests and benches.

Standard library only; every node, its Erlang distribution port and its ``epmd`` listen on
127.0.0.1 and nowhere else, on ports picked free (never the default 5672 / 25672 / 4369), and
keep their files in a temporary directory. Made for Debian's ``rabbitmq-server`` package (3.10,
Erlang 25): the node is started with ``/usr/lib/rabbitmq/bin/rabbitmq-server`` directly, as the
current user, not as a service.

* :func:`find_rabbitmq`: the ``rabbitmq-server`` script to run.
* :class:`RabbitMQServer`: one node, as a context manager. It writes the node's configuration,
  starts a private ``epmd`` and the node, waits until the AMQP port accepts connections and
  ``rabbitmqctl await_startup`` succeeds, and stops everything on exit. A user with a random
  password and a virtual host of its own are created at boot (:attr:`RabbitMQServer.url`);
  :meth:`RabbitMQServer.kill` and :meth:`RabbitMQServer.restart` simulate a crash and a
  recovery on the same ports and data (durable queues and persistent messages survive).
* :class:`RabbitMQCluster`: several nodes (three by default) sharing one Erlang cookie and one
  ``epmd``, joined with ``rabbitmqctl join_cluster``; it tells which node leads a quorum queue,
  and kills and restarts nodes.

Example::

    with RabbitMQServer() as server:
        connection = await aio_pika.connect_robust(server.url)
        ...
        server.kill()      # SIGKILL, as in a crash
        server.restart()   # same ports, same data: durable queues survive

    with RabbitMQCluster() as cluster:
        ...
        leader = cluster.node_of_queue_leader("orders")
        cluster.kill(leader)
        cluster.wait_queue_leader("orders", not_on=leader)

No node outlives the Python process that started it: ``close()`` runs on ``__exit__`` and for
every server and cluster still open at interpreter exit (``atexit``); on Linux the node and
``epmd`` also get ``SIGKILL`` if the thread that started them dies without cleaning up
(``PR_SET_PDEATHSIG``, set only when they are started from the main thread). Whatever the
thread, the VM stops too when its stdin, a pipe this process holds and never writes, reaches
end-of-file: when this process dies. The VM's helper processes (``erl_child_setup`` and its
ports) exit with it; any that lingers is killed.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from .redis_server import _death_signal_setup

__all__ = [
    "DEFAULT_RABBITMQ_SERVER",
    "RABBITMQ_ENV",
    "RabbitMQCluster",
    "RabbitMQServer",
    "find_rabbitmq",
]

RABBITMQ_ENV = "HOOKBUS_TEST_RABBITMQ"
"""Environment variable: path (or name on ``PATH``) of the ``rabbitmq-server`` script to run."""

DEFAULT_RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
"""Where Debian's ``rabbitmq-server`` package installs the script that starts a node in the
foreground as the current user (``/usr/sbin/rabbitmq-server`` switches to the ``rabbitmq`` user
and ``/var/lib/rabbitmq``, which a test cannot use)."""

HOST = "127.0.0.1"
_NODE_HOST = "localhost"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0
_KILL_TIMEOUT = 10.0
_HELPER_EXIT_TIMEOUT = 5.0
_CTL_TIMEOUT = 60.0
_CLUSTER_TIMEOUT = 120.0
_EPMD_TIMEOUT = 10.0
_POLL_INTERVAL = 0.1
_PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 30
_DIST_INTERFACE = "-kernel inet_dist_use_interface {127,0,0,1}"
_PORT_IN_USE = re.compile(r"eaddrinuse|address already in use", re.IGNORECASE)


# --------------------------------------------------------------------------- finding the server


def find_rabbitmq() -> str:
    """Return the path of the ``rabbitmq-server`` script to start nodes with.

    ``HOOKBUS_TEST_RABBITMQ`` if set and not blank (a path, or a name looked up on ``PATH``),
    else :data:`DEFAULT_RABBITMQ_SERVER`. ``rabbitmqctl`` must be in the same directory.

    Raises ``RuntimeError`` saying what is missing and how to install it.
    """
    configured = os.environ.get(RABBITMQ_ENV, "").strip()
    if configured:
        path = shutil.which(configured)
        if path is None:
            raise RuntimeError(
                f"{RABBITMQ_ENV}={configured!r} was not found (not on PATH, or not an "
                "executable file)"
            )
    else:
        path = DEFAULT_RABBITMQ_SERVER
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise RuntimeError(
                f"RabbitMQ is not installed: {path} is missing. Install it with "
                "`apt-get install --no-install-recommends rabbitmq-server` (Debian; forbid the "
                "service from starting with a policy-rc.d that exits 101), or name the "
                f"rabbitmq-server script in {RABBITMQ_ENV}."
            )
    ctl = Path(path).parent / "rabbitmqctl"
    if not (ctl.is_file() and os.access(ctl, os.X_OK)):
        raise RuntimeError(f"rabbitmqctl is missing next to {path} (looked for {ctl})")
    return path


def _find_epmd() -> str:
    found = shutil.which("epmd")
    if found is not None:
        return found
    for candidate in Path("/usr/lib/erlang").glob("erts-*/bin/epmd"):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise RuntimeError(
        "epmd (the Erlang port mapper, from the erlang-base package) was not found on PATH"
    )


# --------------------------------------------------------------------------- helpers


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1 (held together while picked)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _accepts(port: int) -> bool:
    """Whether something accepts TCP connections on ``127.0.0.1:port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _password_hash(password: str) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_bytes().decode(errors="replace")
    except OSError:
        return "(no file)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")
    except OSError:
        return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _base_env() -> dict[str, str]:
    """This process's environment without RabbitMQ or epmd settings that would leak in."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RABBITMQ_", "ERL_"))
    }
    env["LC_ALL"] = "C.UTF-8"  # rabbitmqctl (Elixir) warns under a latin1 locale
    return env


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
        # After the command: state (field 3), ppid (4)... starttime (22).
        table[int(entry.name)] = (int(fields[1]), fields[0], int(fields[19]))
    return table


def _tree(root: int) -> dict[int, int]:
    """``root`` and its living descendants (zombies left out): pid -> start time."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in table and table[pid][1] != "Z":
            found[pid] = table[pid][2]
        todo.extend(children.get(pid, []))
    return found


def _alive(processes: dict[int, int]) -> dict[int, int]:
    """Those of ``processes`` (pid -> start time) that still run (same start time, no zombie)."""
    table = _processes()
    return {
        pid: start
        for pid, start in processes.items()
        if pid in table and table[pid][2] == start and table[pid][1] != "Z"
    }


def _kill_leftovers(processes: dict[int, int], timeout: float) -> None:
    """Wait up to ``timeout`` s for ``processes`` to exit by themselves, then SIGKILL them."""
    deadline = time.monotonic() + timeout
    while True:
        left = _alive(processes)
        if not left:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class _Epmd:
    """A private Erlang port mapper: ``epmd -port P -address 127.0.0.1`` in the foreground."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        epmd = _find_epmd()
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = _free_ports(1)[0]
            offset = _size(self.log_path)
            with self.log_path.open("ab") as log:
                env = _base_env()
                self._process = subprocess.Popen(
                    [epmd, "-port", str(self.port), "-address", HOST],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    process_group=0,  # a Ctrl-C at the terminal is for the tests, not epmd
                    preexec_fn=_death_signal_setup(),  # noqa: PLW1509 - only prctl
                )
            deadline = time.monotonic() + _EPMD_TIMEOUT
            while self._process.poll() is None and not _accepts(self.port):
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.02)
            if self._process.poll() is None and _accepts(self.port):
                return
            self.stop()
            if attempt == _PORT_ATTEMPTS:
                raise RuntimeError(
                    f"epmd did not start on port {self.port}\n--- tail of {self.log_path} ---\n"
                    f"{_read_from(self.log_path, offset) or '(empty)'}"
                )

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        self._process = None


# --------------------------------------------------------------------------- one node


class RabbitMQServer:
    """One RabbitMQ node on 127.0.0.1, for tests and benchmarks.

    Nothing starts until :meth:`start` (or ``with``). Arguments, all optional:

    * ``server``: the ``rabbitmq-server`` script (default: :func:`find_rabbitmq`).
    * ``port``: the AMQP port; ``dist_port``: the Erlang distribution port. By default free
      ones are picked (and picked again, up to three times, if another process takes one before
      the node binds it). They stay the same on restart.
    * ``node_name``: the Erlang node name (default ``hookbus-<random>@localhost``).
    * ``user``, ``password``, ``vhost``: a user (administrator, all permissions on ``vhost``
      and on ``/``) and a virtual host created at boot (from a definitions file); the password
      is random by default. ``guest`` / ``guest`` exists too (on ``/`` and ``vhost``).
    * ``extra_config``: more ``key = value`` lines for ``rabbitmq.conf``, placed last.
    * ``data_dir``: where the node keeps its configuration, database and logs; by default a
      temporary directory, removed by :meth:`close`.
    * ``epmd_port``, ``home``, ``cookie``: for nodes of one cluster (see
      :class:`RabbitMQCluster`): an ``epmd`` already running on that port (by default the node
      starts its own), the ``HOME`` directory holding the ``.erlang.cookie`` file, and the
      cookie (random by default; written with mode 0400 if the file is missing).
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        port: int | None = None,
        dist_port: int | None = None,
        node_name: str | None = None,
        user: str = "hookbus",
        password: str | None = None,
        vhost: str = "/hookbus-test",
        extra_config: Sequence[str] = (),
        data_dir: str | os.PathLike[str] | None = None,
        epmd_port: int | None = None,
        home: str | os.PathLike[str] | None = None,
        cookie: str | None = None,
    ) -> None:
        self.server = server if server is not None else find_rabbitmq()
        self.ctl_path = str(Path(self.server).parent / "rabbitmqctl")
        self.user = user
        self.password = password if password is not None else secrets.token_hex(12)
        self.vhost = vhost
        self.extra_config = tuple(extra_config)
        self._node_name = node_name or f"hookbus-{secrets.token_hex(4)}@{_NODE_HOST}"
        self._ports_given = port is not None or dist_port is not None
        free = _free_ports(2)
        self._port = port if port is not None else free[0]
        self._dist_port = dist_port if dist_port is not None else free[1]
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._owns_data_dir = False
        self._home = Path(home) if home is not None else None
        self._cookie = cookie if cookie is not None else secrets.token_hex(16)
        self._external_epmd_port = epmd_port
        self._epmd: _Epmd | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offsets = (0, 0)  # sizes of the console and main logs at the last launch
        self._closed = False

    # ----------------------------------------------------------------------- properties

    @property
    def port(self) -> int:
        """The AMQP port."""
        return self._port

    @property
    def dist_port(self) -> int:
        """The Erlang distribution port (clustering and ``rabbitmqctl``)."""
        return self._dist_port

    @property
    def node_name(self) -> str:
        """The Erlang node name, e.g. ``hookbus-1a2b3c4d@localhost``."""
        return self._node_name

    @property
    def url(self) -> str:
        """``amqp://USER:PASSWORD@127.0.0.1:PORT/%2Fhookbus-test``: the user and vhost of the
        tests, percent-encoded as aio-pika (yarl) and pika expect."""
        return self.url_for()

    def url_for(
        self, vhost: str | None = None, *, user: str | None = None, password: str | None = None
    ) -> str:
        """An ``amqp://`` URL of this node for another vhost or user (default: the tests').

        The vhost is percent-encoded whole (``/`` becomes ``%2F``): ``"/"`` gives ``.../%2F``.
        """
        user = self.user if user is None else user
        password = self.password if password is None and user == self.user else password
        if password is None:
            raise ValueError(f"give the password of user {user!r}")
        vhost = self.vhost if vhost is None else vhost
        return (
            f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{HOST}:{self._port}/"
            f"{quote(vhost, safe='')}"
        )

    @property
    def epmd_port(self) -> int | None:
        """The port of the ``epmd`` this node registers with (once started)."""
        if self._external_epmd_port is not None:
            return self._external_epmd_port
        return self._epmd.port if self._epmd is not None else None

    @property
    def running(self) -> bool:
        """Whether the node's Erlang VM is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the node's Erlang VM (``beam.smp``: the start script execs it), while
        started and not yet stopped."""
        return self._process.pid if self._process is not None else None

    @property
    def pids(self) -> list[int]:
        """Process ids of what runs for this node: the VM, its helpers (``erl_child_setup``,
        the ``sh`` and ``inet_gethost`` ports...) and the node's own ``epmd`` if it has one."""
        found: set[int] = set()
        if self.running and self.pid is not None:
            found.update(_tree(self.pid))
        if self._epmd is not None and self._epmd.running and self._epmd.pid is not None:
            found.add(self._epmd.pid)
        return sorted(found)

    @property
    def data_dir(self) -> Path | None:
        """The node's directory (created on first start when not given)."""
        return self._data_dir

    @property
    def log_path(self) -> Path | None:
        """The node's main log file (``log/rabbit.log`` in :attr:`data_dir`)."""
        return self._data_dir / "log" / "rabbit.log" if self._data_dir is not None else None

    @property
    def console_log_path(self) -> Path | None:
        """Where the node's stdout and stderr go (early boot errors land there)."""
        return self._data_dir / "console.log" if self._data_dir is not None else None

    # ----------------------------------------------------------------------- lifecycle

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start the node and wait until it is ready (``RuntimeError`` after ``timeout``).

        Ready: the AMQP port accepts connections and ``rabbitmqctl await_startup`` succeeds.
        The error carries the tails of the node's logs. Takes about 5 s on a small machine
        (longer while other work loads it).
        """
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._launch()
            try:
                self._wait_ready(timeout)
            except _PortInUse:
                self.kill()
                if attempt == _PORT_ATTEMPTS or self._ports_given:
                    raise
                self._port, self._dist_port = _free_ports(2)
                continue
            except BaseException:
                self.kill()
                raise
            return

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop the node gracefully (SIGTERM), then SIGKILL it if it has not exited within
        ``timeout`` seconds. Its own ``epmd`` keeps running until :meth:`close`."""
        self._terminate(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM and its helpers (as in a crash) and wait for them.

        Messages the node confirmed are on disk and come back on :meth:`start`. But RabbitMQ
        3.10 (Ra 2.2) saves its registry of quorum queue servers to disk only every half second
        or so: a quorum queue *declared* just before the kill can come back without a leader on
        this node ("leader not known"). Stop the node gracefully once after declaring queues
        (or let a moment pass) when a test needs them to survive a crash.
        """
        self._terminate(signal.SIGKILL, _KILL_TIMEOUT)

    def restart(self, timeout: float = _START_TIMEOUT) -> None:
        """Stop the node if it runs, then start it again on the same ports and data: durable
        queues and the persistent messages they held are still there."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop the node and its own ``epmd``, and remove the temporary directory.

        A node whose data directory is temporary is killed (its data is thrown away); one with
        a given ``data_dir`` is stopped gracefully. Safe to call twice.
        """
        if self._owns_data_dir:
            self.kill()
        else:
            self.stop()
        if self._epmd is not None:
            self._epmd.stop()
            self._epmd = None
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
        return f"<RabbitMQServer {self._node_name} amqp://{HOST}:{self._port} {state}>"

    # ----------------------------------------------------------------------- administration

    def ctl(self, *args: str, timeout: float = _CTL_TIMEOUT) -> str:
        """Run ``rabbitmqctl -n NODE ARGS...`` against this node and return its stdout.

        Raises ``RuntimeError`` (with the command's output) if it fails or takes longer than
        ``timeout`` seconds. Each call starts an Erlang VM: count about a second.
        """
        return self.tool("rabbitmqctl", *args, timeout=timeout)

    def tool(self, name: str, *args: str, timeout: float = _CTL_TIMEOUT) -> str:
        """Run one of the CLI tools next to the server script (``rabbitmqctl``,
        ``rabbitmq-queues``, ``rabbitmq-diagnostics``...) with ``-n NODE`` and return stdout."""
        if self._home is None or self.epmd_port is None:
            raise RuntimeError(f"{self!r} was never started")
        command = [str(Path(self.server).parent / name), "-n", self._node_name, *args]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=self._ctl_env(),
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{name} {' '.join(args)} failed: {exc}") from exc
        if result.returncode != 0:
            raise RuntimeError(
                f"{name} -n {self._node_name} {' '.join(args)} exited with code "
                f"{result.returncode}:\n{(result.stdout + result.stderr).strip()}"
            )
        return result.stdout

    def add_vhost(self, name: str) -> str:
        """Create a virtual host, give the tests' user and ``guest`` all permissions on it, and
        return the tests' URL for it."""
        self.ctl("add_vhost", name)
        for user in (self.user, "guest"):
            self.ctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        return self.url_for(name)

    def add_user(
        self,
        name: str,
        password: str,
        *,
        vhost: str | None = None,
        tags: Iterable[str] = (),
    ) -> str:
        """Create a user with all permissions on ``vhost`` (default: the tests' vhost) and the
        given tags (``administrator``...), and return its URL for that vhost."""
        vhost = self.vhost if vhost is None else vhost
        self.ctl("add_user", name, password)
        tag_list = list(tags)
        if tag_list:
            self.ctl("set_user_tags", name, *tag_list)
        self.ctl("set_permissions", "-p", vhost, name, ".*", ".*", ".*")
        return self.url_for(vhost, user=name, password=password)

    # ----------------------------------------------------------------------- internals

    def _prepare(self) -> None:
        if self._closed:
            raise RuntimeError("this RabbitMQServer was closed; make a new one")
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="hookbus-rabbitmq-"))
            self._owns_data_dir = True
        self._data_dir.mkdir(parents=True, exist_ok=True)
        (self._data_dir / "log").mkdir(exist_ok=True)
        if self._home is None:
            self._home = self._data_dir / "home"
        _write_cookie(self._home, self._cookie)
        _LIVE.add(self)
        if self._external_epmd_port is None and (self._epmd is None or not self._epmd.running):
            self._epmd = _Epmd(self._data_dir / "epmd.log")
            self._epmd.start()
        self._write_config()

    def _write_config(self) -> None:
        assert self._data_dir is not None
        directory = self._data_dir
        definitions = directory / "definitions.json"
        if not definitions.exists():
            definitions.write_text(json.dumps(self._definitions(), indent=2))
        lines = [
            f"listeners.tcp.default = {HOST}:{self._port}",
            "loopback_users = none",
            "log.console = false",
            "log.file.level = info",
            f"load_definitions = {definitions}",
            *self.extra_config,
        ]
        (directory / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        (directory / "enabled_plugins").write_text("[].\n")
        (directory / "rabbitmq-env.conf").write_text("")

    def _definitions(self) -> dict[str, Any]:
        algorithm = "rabbit_password_hashing_sha256"
        users = [("guest", "guest")]
        if self.user != "guest":
            users.append((self.user, self.password))
        vhosts = ["/"] if self.vhost == "/" else ["/", self.vhost]
        return {
            "users": [
                {
                    "name": name,
                    "password_hash": _password_hash(password),
                    "hashing_algorithm": algorithm,
                    "tags": "administrator",
                }
                for name, password in users
            ],
            "vhosts": [{"name": vhost} for vhost in vhosts],
            "permissions": [
                {"user": name, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
                for name, _ in users
                for vhost in vhosts
            ],
        }

    def _common_env(self) -> dict[str, str]:
        assert self._data_dir is not None
        assert self._home is not None
        env = _base_env()
        env.update(
            HOME=str(self._home),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS=HOST,
            RABBITMQ_CONF_ENV_FILE=str(self._data_dir / "rabbitmq-env.conf"),
        )
        return env

    def _server_env(self) -> dict[str, str]:
        assert self._data_dir is not None
        directory = self._data_dir
        env = self._common_env()
        env.update(
            RABBITMQ_NODENAME=self._node_name,
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(self._port),
            RABBITMQ_DIST_PORT=str(self._dist_port),
            RABBITMQ_MNESIA_BASE=str(directory / "mnesia"),
            RABBITMQ_LOG_BASE=str(directory / "log"),
            RABBITMQ_LOGS=str(directory / "log" / "rabbit.log"),
            RABBITMQ_CONFIG_FILE=str(directory / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(directory / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(directory / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(directory / "rabbitmq.pid"),
            # The node never starts an epmd of its own: it uses ours, or fails.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=f"{_DIST_INTERFACE} -start_epmd false",
            ERL_CRASH_DUMP=str(directory / "erl_crash.dump"),
            # The script then execs the VM (instead of running it under a proxy shell): the VM
            # is our child and gets the death signal; its stdin is a pipe we hold (see _launch).
            RABBITMQ_ALLOW_INPUT="1",
        )
        return env

    def _ctl_env(self) -> dict[str, str]:
        env = self._common_env()
        # Each CLI run is a hidden Erlang node: loopback only, on any free port.
        env.update(
            RABBITMQ_CTL_ERL_ARGS=_DIST_INTERFACE,
            RABBITMQ_CTL_DIST_PORT_MIN="0",
            RABBITMQ_CTL_DIST_PORT_MAX="0",
        )
        return env

    def _launch(self) -> None:
        """Start the node's process (not waiting for it), after its epmd and configuration."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self._process = None
        self._prepare()
        console = self.console_log_path
        assert console is not None
        self._log_offsets = (_size(console), _size(self.log_path or console))
        with console.open("ab") as log:
            try:
                self._process = subprocess.Popen(
                    [self.server],
                    stdin=subprocess.PIPE,  # never written; EOF (we died) stops the VM too
                    stdout=log,
                    stderr=log,
                    cwd=self._data_dir,
                    env=self._server_env(),
                    process_group=0,  # a Ctrl-C at the terminal is for the tests, not the node
                    preexec_fn=_death_signal_setup(),  # noqa: PLW1509 - only prctl
                )
            except OSError as exc:
                raise RuntimeError(f"could not start {self.server}: {exc}") from exc

    def _wait_ready(self, timeout: float) -> None:
        """Wait until the AMQP port accepts connections and ``await_startup`` succeeds."""
        process = self._process
        assert process is not None
        deadline = time.monotonic() + timeout
        while not _accepts(self._port):
            if process.poll() is not None:
                self._fail(f"exited with code {process.returncode} while starting")
            if time.monotonic() >= deadline:
                self._fail(f"did not accept AMQP connections within {timeout:g} s")
            time.sleep(_POLL_INTERVAL)
        remaining = max(1.0, deadline - time.monotonic())
        try:
            self.ctl("await_startup", "--timeout", str(int(remaining) + 1), timeout=remaining + 15)
        except RuntimeError as exc:
            self._fail(f"did not finish booting within {timeout:g} s ({exc})")
        if process.poll() is not None:
            self._fail(f"exited with code {process.returncode} while starting")

    def _fail(self, what: str) -> None:
        console = self.console_log_path
        log = self.log_path
        assert console is not None
        assert log is not None
        new_output = _read_from(console, self._log_offsets[0]) + _read_from(
            log, self._log_offsets[1]
        )
        message = (
            f"RabbitMQ node {self._node_name} (AMQP port {self._port}, distribution port "
            f"{self._dist_port}) {what}\n--- tail of {log} ---\n{_tail(log)}\n"
            f"--- tail of {console} ---\n{_tail(console)}"
        )
        if _PORT_IN_USE.search(new_output):
            raise _PortInUse(message)
        raise RuntimeError(message)

    def _terminate(self, sig: signal.Signals, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        tree = _tree(process.pid)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # The VM's helpers (own sessions: erl_child_setup, sh, inet_gethost) exit when it does;
        # any that lingers is killed.
        tree.pop(process.pid, None)
        _kill_leftovers(tree, _HELPER_EXIT_TIMEOUT)
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        self._process = None


class _PortInUse(RuntimeError):
    """The node could not bind one of its ports."""


def _write_cookie(home: Path, cookie: str) -> None:
    """Write ``HOME/.erlang.cookie`` (mode 0400, as Erlang requires) unless it exists."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / ".erlang.cookie"
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "w") as file:
        file.write(cookie)


# --------------------------------------------------------------------------- a cluster


class RabbitMQCluster:
    """A local RabbitMQ cluster of ``size`` nodes (3 by default), for tests and benchmarks.

    Nothing starts until :meth:`start` (or ``with``). The nodes are
    :class:`RabbitMQServer` objects (see :attr:`nodes`) sharing one Erlang cookie, one private
    ``epmd`` and the tests' user, password and vhost; each has its own AMQP and distribution
    ports and its own directory under one temporary directory, removed by :meth:`close`.

    Arguments: ``server`` (default :func:`find_rabbitmq`), ``size`` (at least 1), ``user``,
    ``password``, ``vhost`` and ``extra_config``, as for :class:`RabbitMQServer`.
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        size: int = 3,
        user: str = "hookbus",
        password: str | None = None,
        vhost: str = "/hookbus-test",
        extra_config: Sequence[str] = (),
    ) -> None:
        if size < 1:
            raise ValueError(f"a cluster needs at least 1 node, not {size}")
        self.server = server if server is not None else find_rabbitmq()
        self.size = size
        self.user = user
        self.password = password if password is not None else secrets.token_hex(12)
        self.vhost = vhost
        self.extra_config = tuple(extra_config)
        self._cookie = secrets.token_hex(16)
        self._nodes: list[RabbitMQServer] = []
        self._epmd: _Epmd | None = None
        self._base_dir: Path | None = None
        self._closed = False

    # ----------------------------------------------------------------------- properties

    @property
    def nodes(self) -> list[RabbitMQServer]:
        """The nodes, the first one (that the others joined) first."""
        return list(self._nodes)

    @property
    def urls(self) -> list[str]:
        """The tests' ``amqp://`` URL of each node, in the order of :attr:`nodes`."""
        return [node.url for node in self._nodes]

    @property
    def url(self) -> str:
        """The tests' URL of the first node (see :attr:`RabbitMQServer.url`)."""
        if not self._nodes:
            raise RuntimeError("this RabbitMQCluster was not started")
        return self._nodes[0].url

    @property
    def epmd_port(self) -> int | None:
        """The port of the ``epmd`` shared by the nodes (once started)."""
        return self._epmd.port if self._epmd is not None else None

    @property
    def pids(self) -> list[int]:
        """Process ids this cluster started and that still run (nodes, helpers, ``epmd``)."""
        found = [pid for node in self._nodes for pid in node.pids]
        if self._epmd is not None and self._epmd.pid is not None and self._epmd.running:
            found.append(self._epmd.pid)
        return sorted(found)

    @property
    def data_dir(self) -> Path | None:
        """The temporary directory holding every node's directory (once started)."""
        return self._base_dir

    # ----------------------------------------------------------------------- lifecycle

    def start(self, timeout: float = _CLUSTER_TIMEOUT) -> None:
        """Start the nodes, join them into one cluster and wait until every node runs in it.

        The nodes boot in parallel; then each but the first runs ``rabbitmqctl stop_app``,
        ``join_cluster <first node>`` and ``start_app``. Raises ``RuntimeError`` after
        ``timeout`` seconds (the nodes are then stopped). Three nodes take about 12 s on a small
        machine (longer while other work loads it).
        """
        if self._closed:
            raise RuntimeError("this RabbitMQCluster was closed; make a new one")
        if self._nodes:
            raise RuntimeError("this RabbitMQCluster was already started")
        deadline = time.monotonic() + timeout
        self._base_dir = Path(tempfile.mkdtemp(prefix="hookbus-rabbitmq-cluster-"))
        _LIVE_CLUSTERS.add(self)
        try:
            home = self._base_dir / "home"
            _write_cookie(home, self._cookie)
            self._epmd = _Epmd(self._base_dir / "epmd.log")
            self._epmd.start()
            prefix = f"hookbus-{secrets.token_hex(3)}"
            for index in range(self.size):
                self._nodes.append(
                    RabbitMQServer(
                        self.server,
                        node_name=f"{prefix}-{index}@{_NODE_HOST}",
                        user=self.user,
                        password=self.password,
                        vhost=self.vhost,
                        extra_config=self.extra_config,
                        data_dir=self._base_dir / f"node-{index}",
                        epmd_port=self._epmd.port,
                        home=home,
                        cookie=self._cookie,
                    )
                )
            for node in self._nodes:
                node._launch()
            for node in self._nodes:
                try:
                    node._wait_ready(max(1.0, deadline - time.monotonic()))
                except _PortInUse:
                    node.kill()
                    node._port, node._dist_port = _free_ports(2)
                    node.start(max(1.0, deadline - time.monotonic()))
            first = self._nodes[0]
            for node in self._nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.node_name)
                node.ctl("start_app")
            self._wait_running(self._nodes, deadline, "the cluster to form")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Kill every node and the shared ``epmd``, and remove the temporary directory.
        Safe to call twice."""
        for node in self._nodes:
            with contextlib.suppress(Exception):
                node.kill()  # no graceful stop: the data is thrown away
                node.close()
        if self._epmd is not None:
            self._epmd.stop()
            self._epmd = None
        if self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)
        self._closed = True
        _LIVE_CLUSTERS.discard(self)

    def __enter__(self) -> Self:
        if not self._nodes:
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
        running = sum(node.running for node in self._nodes)
        ports = [node.port for node in self._nodes]
        return f"<RabbitMQCluster ports={ports} {running}/{len(self._nodes)} nodes running>"

    # ----------------------------------------------------------------------- nodes

    def node(self, name_or_index: str | int) -> RabbitMQServer:
        """A node by its index in :attr:`nodes` or by its Erlang node name."""
        if isinstance(name_or_index, int):
            return self._nodes[name_or_index]
        for node in self._nodes:
            if node.node_name == name_or_index:
                return node
        raise KeyError(f"no node named {name_or_index!r} in this cluster")

    def running_nodes(self) -> list[RabbitMQServer]:
        """The nodes whose VM is alive, in the order of :attr:`nodes`."""
        return [node for node in self._nodes if node.running]

    def ctl(self, *args: str, timeout: float = _CTL_TIMEOUT) -> str:
        """``rabbitmqctl ARGS...`` against the first running node (see
        :meth:`RabbitMQServer.ctl`)."""
        return self._any_running().ctl(*args, timeout=timeout)

    def kill(self, node: RabbitMQServer | str | int) -> RabbitMQServer:
        """SIGKILL a node (as in a crash) and return it. The others keep running."""
        found = self._own(node)
        found.kill()
        return found

    def restart(self, node: RabbitMQServer | str | int, timeout: float = _START_TIMEOUT) -> None:
        """Start a node again (stopping it first if it runs) on the same ports and data, and
        wait until every running node sees it running in the cluster."""
        found = self._own(node)
        deadline = time.monotonic() + timeout
        found.restart(timeout)
        self._wait_running(self.running_nodes(), deadline, f"{found.node_name} to rejoin")

    def cluster_status(self) -> dict[str, Any]:
        """``rabbitmqctl cluster_status --formatter json`` of the first running node."""
        status: dict[str, Any] = json.loads(self.ctl("cluster_status", "--formatter", "json"))
        return status

    # ----------------------------------------------------------------------- quorum queues

    def queue_leaders(self, vhost: str | None = None) -> dict[str, str]:
        """Queue name -> node name of its leader, for the queues of ``vhost`` (default: the
        tests'), as the first running node reports them (``list_queues name leader``; quorum
        queues only: classic queues have no leader and are left out)."""
        vhost = self.vhost if vhost is None else vhost
        output = self.ctl(
            "list_queues", "-p", vhost, "name", "type", "leader", "--formatter", "json"
        )
        rows: list[dict[str, Any]] = json.loads(output or "[]")
        return {
            str(row["name"]): str(row["leader"])
            for row in rows
            if row.get("type") == "quorum" and row.get("leader") not in (None, "", "undefined")
        }

    def node_of_queue_leader(self, queue: str, vhost: str | None = None) -> RabbitMQServer:
        """The node leading the quorum queue ``queue`` of ``vhost`` (default: the tests')."""
        leaders = self.queue_leaders(vhost)
        if queue not in leaders:
            raise RuntimeError(
                f"no leader known for quorum queue {queue!r} in vhost "
                f"{self.vhost if vhost is None else vhost!r}"
            )
        return self.node(leaders[queue])

    def wait_queue_leader(
        self,
        queue: str,
        vhost: str | None = None,
        *,
        not_on: RabbitMQServer | None = None,
        timeout: float = 30.0,
    ) -> RabbitMQServer:
        """Wait until the quorum queue ``queue`` has a leader on a running node other than
        ``not_on`` (after that node was killed: the survivors elect a new one), and return it.

        Raises ``RuntimeError`` after ``timeout`` seconds, with the last answer.
        """
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            try:
                leader = self.node_of_queue_leader(queue, vhost)
            except (RuntimeError, KeyError, ValueError) as exc:
                last = str(exc)
            else:
                if leader is not not_on and leader.running:
                    return leader
                last = f"the leader is still {leader.node_name}"
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"timed out after {timeout:g} s waiting for a leader of {queue!r}: {last}"
                )
            time.sleep(_POLL_INTERVAL)

    # ----------------------------------------------------------------------- internals

    def _own(self, node: RabbitMQServer | str | int) -> RabbitMQServer:
        if isinstance(node, RabbitMQServer):
            if node not in self._nodes:
                raise ValueError(f"{node!r} is not a node of this cluster")
            return node
        return self.node(node)

    def _any_running(self) -> RabbitMQServer:
        for node in self._nodes:
            if node.running:
                return node
        raise RuntimeError("no node of the cluster is running")

    def _wait_running(self, expected: Sequence[RabbitMQServer], deadline: float, what: str) -> None:
        """Wait until each running node lists every node of ``expected`` as running."""
        names = {node.node_name for node in expected}
        last = "no answer yet"
        while True:
            problem = None
            for node in self.running_nodes():
                try:
                    status = json.loads(node.ctl("cluster_status", "--formatter", "json"))
                except (RuntimeError, ValueError) as exc:
                    problem = f"{node.node_name}: {exc}"
                    break
                running = set(status.get("running_nodes", []))
                if not names <= running:
                    problem = f"{node.node_name} sees running nodes {sorted(running)}"
                    break
            if problem is None:
                return
            last = problem
            if time.monotonic() >= deadline:
                raise RuntimeError(f"timed out waiting for {what}: {last}")
            time.sleep(_POLL_INTERVAL)


_LIVE: set[RabbitMQServer] = set()
"""Nodes started and not yet closed; closed at interpreter exit."""

_LIVE_CLUSTERS: set[RabbitMQCluster] = set()
"""Clusters started and not yet closed; closed at interpreter exit (before loose nodes)."""


@atexit.register
def _close_all() -> None:
    for cluster in list(_LIVE_CLUSTERS):
        with contextlib.suppress(Exception):
            cluster.close()
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.close()
