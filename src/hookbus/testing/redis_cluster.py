"""Run a real local Redis Cluster (Redis or Valkey) as child processes, for tests and benches.

Standard library only; every node listens on 127.0.0.1 and nowhere else, on ports picked free
(never the default 6379 / 16379), and keeps its files in a temporary directory.

:class:`RedisCluster` starts ``masters * (1 + replicas_per_master)`` nodes (by default three
masters and three replicas), each a :class:`~hookbus.testing.redis_server.RedisServer` with
cluster mode on, forms the cluster with ``redis-cli --cluster create`` (``valkey-cli`` for
Valkey when it is installed), and waits until every node reports ``cluster_state:ok``, sees all
16384 slots served and agrees with the others on who serves them, and every replica is in sync
with its master. It then offers what a test of failures needs: which master serves a key,
killing it, waiting for a replica to take over, and bringing the dead node back as a replica.

Example::

    with RedisCluster("redis-server") as cluster:
        client = redis.cluster.RedisCluster.from_url(cluster.seed_url)
        client.set("{user:1}:name", "Ada")
        old = cluster.kill_master_of("{user:1}:name")   # SIGKILL, as in a crash
        new = cluster.wait_failover(old)                # a replica of it is now the master
        cluster.restart(old)                            # back, as a replica of ``new``

Writes a master acknowledged but had not yet sent to its replica are lost in a failover, as in
production: a test that needs them to survive sends ``WAIT 1 <ms>`` on the connection that
wrote them before the kill.

No node outlives the Python process that started it: :meth:`RedisCluster.close` runs on
``__exit__`` and for every cluster still open at interpreter exit, and each node is a
:class:`~hookbus.testing.redis_server.RedisServer`, with the same guarantees (``atexit``, and the
death signal on Linux).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self, TypeAlias
from urllib.parse import quote

from .redis_server import HOST, RedisServer, server_version

__all__ = ["SLOTS", "RedisCluster", "key_slot"]

SLOTS = 16384
"""Number of hash slots of a Redis Cluster."""

_FORM_TIMEOUT = 30.0
_CLI_TIMEOUT = 60.0
_COMMAND_TIMEOUT = 2.0
_POLL_INTERVAL = 0.05
_PORT_ATTEMPTS = 3
_CONFIG_FILE = "nodes.conf"


# --------------------------------------------------------------------------- key slots


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC16_TABLE = _crc16_table()


def _crc16(data: bytes) -> int:
    """CRC16-CCITT, XMODEM variant (polynomial 0x1021, initial value 0): the one of Redis."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def key_slot(key: str | bytes) -> int:
    """The hash slot of ``key``, as ``CLUSTER KEYSLOT`` computes it (0 to 16383).

    A ``str`` key is encoded as UTF-8. Hash tags follow the rules of Redis: if the key holds a
    ``{`` followed later by a ``}`` with at least one character between them, only the
    characters between the first ``{`` and the first ``}`` after it are hashed. So ``{a}b``
    and ``a`` share a slot, ``a{b}{c}`` hashes ``b``, and ``{}x`` (empty tag) hashes all of it.
    """
    data = key.encode() if isinstance(key, str) else bytes(key)
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return _crc16(data) % SLOTS


# --------------------------------------------------------------------------- raw RESP


class _ReplyError(Exception):
    """The server answered with an error (``-ERR ...``)."""


_Reply: TypeAlias = "str | int | list[_Reply] | None"


def _encode(args: Sequence[str | int]) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_reply(reader: BinaryIO) -> _Reply:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed in the middle of a reply")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode(errors="replace")
    if kind == b"-":
        raise _ReplyError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = reader.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("connection closed in the middle of a reply")
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_reply(reader) for _ in range(count)]
    raise ConnectionError(f"not a RESP2 reply: {line[:80]!r}")


def _call(port: int, *args: str | int, password: str | None = None) -> _Reply:
    """One command on a fresh connection to ``127.0.0.1:port`` (after ``AUTH`` if needed)."""
    with socket.create_connection((HOST, port), timeout=_COMMAND_TIMEOUT) as sock:
        payload = _encode(["AUTH", password]) if password is not None else b""
        sock.sendall(payload + _encode(args))
        with sock.makefile("rb") as reader:
            if password is not None:
                _read_reply(reader)
            return _read_reply(reader)


def _text(reply: _Reply) -> str:
    if not isinstance(reply, str):
        raise _ReplyError(f"expected a string reply, got {reply!r}")
    return reply


def _parse_info(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            fields[name.strip()] = value.strip()
    return fields


@dataclass(frozen=True)
class _NodeLine:
    """One line of ``CLUSTER NODES``: one node as seen by the node that answered."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    connected: bool
    slots: tuple[range, ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


def _parse_slots(fields: Sequence[str]) -> tuple[range, ...]:
    ranges = []
    for field in fields:
        if field.startswith("["):  # a slot being migrated or imported
            continue
        first, _, last = field.partition("-")
        ranges.append(range(int(first), int(last or first) + 1))
    return tuple(sorted(ranges, key=lambda r: r.start))


def _parse_nodes(text: str) -> list[_NodeLine]:
    """``CLUSTER NODES``: ``<id> <ip:port@bus[,host]> <flags> <master> <ping> <pong> <epoch>
    <link> <slot>...``."""
    lines = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0]
        port = address.rpartition(":")[2]
        lines.append(
            _NodeLine(
                node_id=fields[0],
                port=int(port) if port.isdigit() else 0,
                flags=frozenset(fields[2].split(",")),
                master_id=None if fields[3] == "-" else fields[3],
                connected=fields[7] == "connected",
                slots=_parse_slots(fields[8:]),
            )
        )
    return lines


_Topology: TypeAlias = tuple[dict[int, tuple[range, ...]], dict[int, int | None]]
"""Who serves which slots (master port -> slot ranges), and the master of each running node
(port -> master port, ``None`` for a master)."""


def _slot_map(view: Sequence[_NodeLine]) -> dict[int, tuple[range, ...]]:
    """Port of each master serving slots -> its slot ranges."""
    return {line.port: line.slots for line in view if line.is_master and line.slots}


# --------------------------------------------------------------------------- ports and tools


def _free_port_pair() -> tuple[int, int]:
    """Two distinct free ports on 127.0.0.1: one for clients, one for the cluster bus."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second,
    ):
        first.bind((HOST, 0))
        second.bind((HOST, 0))
        return first.getsockname()[1], second.getsockname()[1]


def _find_cli(binary: str) -> str:
    """``valkey-cli`` for a Valkey server (``redis-cli`` otherwise, or as a fallback), taken
    from the server's directory first, then from ``PATH``."""
    server = shutil.which(binary)
    if server is None:
        raise RuntimeError(f"Redis server binary not found: {binary!r}")
    kind, _ = server_version(binary)
    names = ("valkey-cli", "redis-cli") if kind == "valkey" else ("redis-cli", "valkey-cli")
    directories = [Path(server).parent, Path(os.path.realpath(server)).parent]
    for name in names:
        for directory in directories:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        found = shutil.which(name)
        if found is not None:
            return found
    raise RuntimeError(
        f"RedisCluster needs {' or '.join(names)} to form the cluster; neither is next to "
        f"{server} nor on PATH (it ships with the server: `apt-get install redis-tools`)"
    )


# --------------------------------------------------------------------------- the cluster


class RedisCluster:
    """A local Redis Cluster of ``masters`` masters with ``replicas_per_master`` replicas each.

    Nothing starts until :meth:`start` (or ``with``). Arguments:

    * ``binary``: name on ``PATH`` or path of the server (``redis-server``, ``valkey-server``,
      version 7 or later).
    * ``masters``: number of masters, at least 3 (``redis-cli --cluster create`` wants 3).
    * ``replicas_per_master``: replicas of each master.
    * ``node_timeout_ms``: ``cluster-node-timeout``: how long a master may be unreachable before
      it is declared failed and a replica takes over (a failover takes a little more than this).
    * ``password``: ``requirepass`` and ``masterauth`` of every node; the URLs carry it.
    * ``extra_args``: more ``--name value`` arguments for every node, placed last (so they win),
      e.g. ``["--appendonly", "yes"]``.

    Every node is a :class:`~hookbus.testing.redis_server.RedisServer` (see :attr:`nodes`) with
    its own data directory under one temporary directory, removed by :meth:`close`. Replicas
    sync without delay (``repl-diskless-sync-delay 0``), and a replica may take over however
    long it was cut off (``cluster-replica-validity-factor 0``), so a failover is predictable.
    """

    def __init__(
        self,
        binary: str = "redis-server",
        *,
        masters: int = 3,
        replicas_per_master: int = 1,
        node_timeout_ms: int = 3000,
        password: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        if masters < 3:
            raise ValueError(f"a cluster needs at least 3 masters, not {masters}")
        if replicas_per_master < 0:
            raise ValueError(f"replicas_per_master must be >= 0, not {replicas_per_master}")
        if node_timeout_ms <= 0:
            raise ValueError(f"node_timeout_ms must be > 0, not {node_timeout_ms}")
        self.binary = binary
        self.masters_count = masters
        self.replicas_per_master = replicas_per_master
        self.node_timeout_ms = node_timeout_ms
        self.password = password
        self.extra_args = tuple(extra_args)
        self._nodes: list[RedisServer] = []
        self._base_dir: Path | None = None
        self._closed = False

    # ----------------------------------------------------------------------- properties

    @property
    def nodes(self) -> list[RedisServer]:
        """The nodes as the cluster was formed: the masters by their first slot, then the
        replicas of the first master, of the second... (roles change with failovers)."""
        return list(self._nodes)

    @property
    def ports(self) -> list[int]:
        """The client ports of the nodes, in the order of :attr:`nodes`."""
        return [node.port for node in self._nodes]

    @property
    def seed_url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` of one running node, for a cluster client to start from.

        The node is the first of :attr:`nodes` that is running: the first master while no
        node was killed. With a password, the URL carries it.
        """
        node = next((n for n in self._nodes if n.running), None)
        if node is None:
            raise RuntimeError("no node of the cluster is running")
        auth = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"redis://{auth}{HOST}:{node.port}/0"

    @property
    def url(self) -> str:
        """:attr:`seed_url` with the ``cluster=true`` option, which names a cluster to hookbus."""
        return f"{self.seed_url}?cluster=true"

    @property
    def data_dir(self) -> Path | None:
        """The temporary directory holding one data directory per node (once started)."""
        return self._base_dir

    # ----------------------------------------------------------------------- lifecycle

    def start(self, timeout: float = _FORM_TIMEOUT) -> None:
        """Start the nodes, form the cluster and wait until it is healthy.

        Healthy: every node answers ``cluster_state:ok``, sees the 16384 slots served by running
        masters, agrees with the others on which master serves which slots, and each master has
        its replicas attached and in sync (``master_link_status:up``). Raises ``RuntimeError``
        (saying what was still missing) if that takes longer than ``timeout`` seconds; the
        nodes are then stopped.
        """
        if self._closed:
            raise RuntimeError("this RedisCluster was closed; make a new one")
        if self._nodes:
            raise RuntimeError("this RedisCluster was already started")
        cli = _find_cli(self.binary)
        self._base_dir = Path(tempfile.mkdtemp(prefix="hookbus-redis-cluster-"))
        _LIVE.add(self)
        try:
            count = self.masters_count * (1 + self.replicas_per_master)
            for index in range(count):
                self._nodes.append(self._start_node(self._base_dir / f"node-{index}"))
            self._create(cli)
            self._wait(self._health_problem, timeout, "the cluster to form")
            self._nodes = self._masters_first()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop every node and remove the temporary directory. Safe to call twice."""
        for node in self._nodes:
            with contextlib.suppress(Exception):
                node.close()
        if self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)
        self._closed = True
        _LIVE.discard(self)

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
        return (
            f"<RedisCluster {self.binary} ports={self.ports} "
            f"{running}/{len(self._nodes)} nodes running>"
        )

    # ----------------------------------------------------------------------- topology

    def masters(self) -> list[tuple[RedisServer, tuple[range, ...]]]:
        """The masters serving slots, with their slot ranges, ordered by first slot.

        Read from ``CLUSTER NODES`` of the first running node that answers; masters flagged as
        failed are left out. ``sum(len(r) for r in ranges)`` is a master's number of slots.
        """
        view = self._view()
        by_port = {node.port: node for node in self._nodes}
        found = [
            (by_port[line.port], line.slots)
            for line in view
            if line.is_master and line.slots and not line.failing and line.port in by_port
        ]
        return sorted(found, key=lambda item: item[1][0].start)

    def master_of_slot(self, slot: int) -> RedisServer:
        """The node serving ``slot`` as master (see :meth:`masters`)."""
        if not 0 <= slot < SLOTS:
            raise ValueError(f"a slot is in 0..{SLOTS - 1}, not {slot}")
        for node, ranges in self.masters():
            if any(slot in r for r in ranges):
                return node
        raise RuntimeError(f"no live master serves slot {slot}")

    @staticmethod
    def key_slot(key: str | bytes) -> int:
        """The hash slot of ``key``, equal to ``CLUSTER KEYSLOT``; see :func:`key_slot`."""
        return key_slot(key)

    def master_of(self, key_or_slot: str | bytes | int) -> RedisServer:
        """The master serving a key (``str`` or ``bytes``) or a slot (``int``)."""
        slot = key_or_slot if isinstance(key_or_slot, int) else key_slot(key_or_slot)
        return self.master_of_slot(slot)

    # ----------------------------------------------------------------------- failures

    def kill_master_of(self, key_or_slot: str | bytes | int) -> RedisServer:
        """SIGKILL the master serving a key or a slot (as in a crash) and return that node.

        Its replica takes over after about ``node_timeout_ms``: see :meth:`wait_failover`.
        """
        node = self.master_of(key_or_slot)
        node.kill()
        return node

    def wait_failover(self, killed: RedisServer, timeout: float = 30.0) -> RedisServer:
        """Wait until a replica of ``killed`` (a master that is no longer running) serves its
        slots and the running nodes are healthy again; return the promoted node.

        Healthy as in :meth:`start`, except that masters left without replicas by the failover
        are accepted. Raises ``RuntimeError`` after ``timeout`` seconds.
        """
        if killed not in self._nodes:
            raise ValueError(f"{killed!r} is not a node of this cluster")
        if killed.running:
            raise ValueError(f"{killed!r} is still running: kill it first")
        former = self._own_slots_on_disk(killed)
        if not former:
            raise ValueError(f"{killed!r} served no slots when it stopped: it was not a master")
        self._wait(self._health_problem, timeout, f"a replica to take over from {killed!r}")
        promoted = self.master_of_slot(former[0].start)
        if promoted is killed:  # cannot be: masters() only lists running masters
            raise RuntimeError(f"{killed!r} still serves its slots")
        return promoted

    def restart(self, node: RedisServer, timeout: float = 30.0) -> None:
        """Start ``node`` again (stopping it first if it runs), on the same port and data
        directory, and wait until the cluster is healthy again.

        A master that was replaced by a replica while it was down comes back as a replica of
        the new master, and syncs its data from it. A master restarted before it was replaced
        keeps its slots, and only its data on disk: none, unless ``extra_args`` turned on
        ``--appendonly yes`` (its replicas then copy the empty data set).
        """
        if node not in self._nodes:
            raise ValueError(f"{node!r} is not a node of this cluster")
        node.restart()
        self._wait(self._health_problem, timeout, f"{node!r} to rejoin the cluster")

    # ----------------------------------------------------------------------- internals

    def _node_args(self, data_dir: Path, bus_port: int) -> list[str]:
        args = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(data_dir / _CONFIG_FILE),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-port", str(bus_port),
            "--cluster-replica-validity-factor", "0",
            "--repl-diskless-sync", "yes",
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if self.password is not None:
            args += ["--masterauth", self.password]
        return args + list(self.extra_args)

    def _start_node(self, data_dir: Path) -> RedisServer:
        """A started node on a free port pair; another pair if one was taken meanwhile."""
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            shutil.rmtree(data_dir, ignore_errors=True)
            port, bus_port = _free_port_pair()
            node = RedisServer(
                self.binary,
                port=port,
                extra_args=self._node_args(data_dir, bus_port),
                password=self.password,
                data_dir=data_dir,
            )
            try:
                node.start()
            except RuntimeError as exc:
                node.close()
                if attempt < _PORT_ATTEMPTS and "Address already in use" in str(exc):
                    continue
                raise
            return node
        raise AssertionError("unreachable")

    def _create(self, cli: str) -> None:
        command = [
            cli, "--cluster", "create", *(f"{HOST}:{port}" for port in self.ports),
            "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes",
        ]  # fmt: skip
        env = dict(os.environ)
        env.pop("REDISCLI_AUTH", None)
        if self.password is not None:
            env["REDISCLI_AUTH"] = self.password  # not on the command line: no warning
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=_CLI_TIMEOUT,
                check=False,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{Path(cli).name} --cluster create failed: {exc}") from exc
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(cli).name} --cluster create exited with code {result.returncode}:\n"
                f"{(result.stdout + result.stderr).strip()}"
            )

    def _call(self, node: RedisServer, *args: str | int) -> _Reply:
        return _call(node.port, *args, password=self.password)

    def _view(self) -> list[_NodeLine]:
        """``CLUSTER NODES`` of the first running node that answers."""
        errors = []
        for node in self._nodes:
            if not node.running:
                continue
            try:
                return _parse_nodes(_text(self._call(node, "CLUSTER", "NODES")))
            except (OSError, _ReplyError) as exc:
                errors.append(f"{node.port}: {exc}")
        raise RuntimeError(f"no node of the cluster answers CLUSTER NODES ({'; '.join(errors)})")

    def _masters_first(self) -> list[RedisServer]:
        """The nodes, masters first by their first slot, then the replicas of each in turn."""
        view = self._view()
        by_port = {node.port: node for node in self._nodes}
        masters = sorted(
            (line for line in view if line.is_master and line.slots),
            key=lambda line: line.slots[0].start,
        )
        order = [line.port for line in masters]
        for master in masters:
            order += sorted(line.port for line in view if line.master_id == master.node_id)
        order += [node.port for node in self._nodes if node.port not in order]
        return [by_port[port] for port in order if port in by_port]

    def _own_slots_on_disk(self, node: RedisServer) -> tuple[range, ...]:
        """The slots ``node`` served by its own account, from its cluster config file."""
        assert node.data_dir is not None
        try:
            text = (node.data_dir / _CONFIG_FILE).read_text()
        except OSError:
            return ()
        for line in _parse_nodes(text):
            if "myself" in line.flags:
                return line.slots if line.is_master else ()
        return ()

    def _health_problem(self) -> str | None:
        """Why the cluster is not healthy yet (see :meth:`start`), or ``None`` if it is."""
        running = [node for node in self._nodes if node.running]
        first: _Topology | None = None
        for node in running:
            problem, topology = self._node_problem(node, {n.port for n in running})
            if problem is not None:
                return problem
            if first is None:
                first = topology
            elif topology != first:
                return (
                    f"node {node.port} and node {running[0].port} disagree on the roles of the "
                    "nodes or on who serves which slots"
                )
        return None

    def _node_problem(
        self, node: RedisServer, running_ports: set[int]
    ) -> tuple[str | None, _Topology]:
        """What is wrong as seen by ``node``, if anything; and the cluster as it sees it."""
        port = node.port
        try:
            info = _parse_info(_text(self._call(node, "CLUSTER", "INFO")))
            view = _parse_nodes(_text(self._call(node, "CLUSTER", "NODES")))
            replication = _parse_info(_text(self._call(node, "INFO", "replication")))
        except (OSError, _ReplyError) as exc:
            return f"node {port} does not answer: {exc}", ({}, {})
        slot_map = _slot_map(view)
        port_of = {line.node_id: line.port for line in view}
        roles = {
            line.port: port_of.get(line.master_id or "")
            for line in view
            if line.port in running_ports
        }
        topology = (slot_map, roles)
        if info.get("cluster_state") != "ok":
            return f"node {port} reports cluster_state:{info.get('cluster_state')}", topology
        if len(view) != len(self._nodes):
            return f"node {port} knows {len(view)} of {len(self._nodes)} nodes", topology
        for line in view:
            if line.port != port and line.port in running_ports and line.failing:
                return f"node {port} sees node {line.port} as {','.join(line.flags)}", topology
        if sum(len(r) for ranges in slot_map.values() for r in ranges) != SLOTS:
            return f"node {port} does not see all {SLOTS} slots served", topology
        dead = sorted(set(slot_map) - running_ports)
        if dead:
            return f"node {port} sees slots served by stopped node(s) {dead}", topology
        if replication.get("role") == "slave":
            if replication.get("master_link_status") != "up":
                return f"replica {port} is not in sync with its master yet", topology
            return None, topology
        if port not in slot_map:
            return f"node {port} is a master without slots", topology
        if len(running_ports) == len(self._nodes):  # no node down: every replica in place
            me = next(line for line in view if "myself" in line.flags)
            replicas = [line for line in view if line.master_id == me.node_id and not line.failing]
            if len(replicas) != self.replicas_per_master:
                return (
                    f"master {port} has {len(replicas)} replica(s), not {self.replicas_per_master}",
                    topology,
                )
        return None, topology

    def _wait(self, problem: Callable[[], str | None], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            reason = problem()
            if reason is None:
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}: {reason}")
            time.sleep(_POLL_INTERVAL)


_LIVE: set[RedisCluster] = set()
"""Clusters started and not yet closed; closed at interpreter exit."""


@atexit.register
def _close_all() -> None:
    for cluster in list(_LIVE):
        with contextlib.suppress(Exception):
            cluster.close()
