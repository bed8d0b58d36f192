"""The RabbitMQ test helper: real nodes, observed through aio-pika and the node's own CLI."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractQueue
from pamqp.common import FieldTable

from hookbus.testing.rabbitmq_server import (
    RABBITMQ_ENV,
    RabbitMQCluster,
    RabbitMQServer,
    find_rabbitmq,
)

QUORUM: FieldTable = {"x-queue-type": "quorum"}


def _queue_name() -> str:
    return "q-" + uuid.uuid4().hex[:12]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _command_of(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


async def _publish(url: str, queue: str, bodies: list[bytes], *, declare: bool = True) -> None:
    """Publish ``bodies`` persistently to ``queue`` (a durable quorum queue, declared first
    unless ``declare`` is false), each confirmed by the broker before the next is sent."""
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        if declare:
            await channel.declare_queue(queue, durable=True, arguments=QUORUM)
        for body in bodies:
            # With publisher confirms, publish() returns once the broker acked (raises on nack).
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue,
                timeout=10,
            )


async def _consume(url: str, queue: str, count: int, timeout: float = 20.0) -> list[bytes]:
    """Consume (and ack) ``count`` messages of ``queue``, in order; fail after ``timeout``."""
    received: list[bytes] = []
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        declared: AbstractQueue = await channel.declare_queue(queue, passive=True)
        async with asyncio.timeout(timeout), declared.iterator() as messages:
            async for message in messages:
                async with message.process():
                    received.append(message.body)
                if len(received) == count:
                    break
    return received


# --------------------------------------------------------------------------- no server needed


def test_find_rabbitmq_reports_a_missing_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RABBITMQ_ENV, "/nonexistent/rabbitmq-server")
    with pytest.raises(RuntimeError, match=RABBITMQ_ENV):
        find_rabbitmq()


# --------------------------------------------------------------------------- one node


@pytest.mark.rabbitmq
@pytest.mark.timeout(120)
async def test_confirmed_messages_of_a_quorum_queue_come_back(
    rabbitmq_server: RabbitMQServer,
) -> None:
    queue = _queue_name()
    bodies = [f"m{i}".encode() for i in range(20)]

    await _publish(rabbitmq_server.url, queue, bodies)

    # The URL's vhost is the tests' one, "/hookbus-test" (sent as %2Fhookbus-test).
    listed = json.loads(
        rabbitmq_server.ctl(
            "list_queues", "-p", rabbitmq_server.vhost, "name", "type", "--formatter", "json"
        )
    )
    assert {"name": queue, "type": "quorum"} in listed
    assert await _consume(rabbitmq_server.url, queue, len(bodies)) == bodies


@pytest.mark.rabbitmq
@pytest.mark.timeout(120)
async def test_guest_and_added_vhosts_and_users_can_connect(
    rabbitmq_server: RabbitMQServer,
) -> None:
    guest_url = rabbitmq_server.url_for("/", user="guest", password="guest")
    assert guest_url.endswith("/%2F")
    vhost = "/extra-" + uuid.uuid4().hex[:8]
    vhost_url = rabbitmq_server.add_vhost(vhost)
    user = "u" + uuid.uuid4().hex[:8]
    user_url = rabbitmq_server.add_user(user, "p@ss/word:1", vhost=vhost)

    for url in (guest_url, vhost_url, user_url):
        queue = _queue_name()
        await _publish(url, queue, [b"hello"])
        assert await _consume(url, queue, 1) == [b"hello"]

    listed = json.loads(rabbitmq_server.ctl("list_queues", "-p", vhost, "--formatter", "json"))
    assert len(listed) == 2  # the vhost's URL and the new user's URL both used it


@pytest.mark.rabbitmq
@pytest.mark.timeout(180)
async def test_a_persistent_message_survives_restart(rabbitmq_server: RabbitMQServer) -> None:
    queue = _queue_name()
    await _publish(rabbitmq_server.url, queue, [b"kept-1", b"kept-2"])
    port, node_pid = rabbitmq_server.port, rabbitmq_server.pid

    await asyncio.to_thread(rabbitmq_server.restart)

    assert rabbitmq_server.port == port
    assert rabbitmq_server.pid != node_pid
    assert await _consume(rabbitmq_server.url, queue, 2) == [b"kept-1", b"kept-2"]


@pytest.mark.rabbitmq
@pytest.mark.timeout(180)
async def test_kill_then_restart_keeps_confirmed_messages_and_close_leaves_nothing(
    rabbitmq_server_script: str,
) -> None:
    server = RabbitMQServer(rabbitmq_server_script)
    try:
        started = time.monotonic()
        await asyncio.to_thread(server.start)
        print(f"single node ready in {time.monotonic() - started:.1f} s")
        assert server.pid is not None
        assert _command_of(server.pid) == "beam.smp"  # the start script exec'd the VM
        queue = _queue_name()
        await _publish(server.url, queue, [b"before-restart"])
        # RabbitMQ 3.10's Ra writes its registry of queue servers to disk lazily: a quorum queue
        # declared just before a SIGKILL may not come back (see RabbitMQServer.kill). A graceful
        # restart writes it; then only the messages are at stake in the crash.
        await asyncio.to_thread(server.restart)
        await _publish(server.url, queue, [b"confirmed"], declare=False)

        beam = server.pid
        await asyncio.to_thread(server.kill)
        assert not _running(beam)
        assert not _listening(server.port)

        await asyncio.to_thread(server.start)
        assert await _consume(server.url, queue, 2) == [b"before-restart", b"confirmed"]

        pids = server.pids
        ports = [server.port, server.dist_port, server.epmd_port]
        data_dir = server.data_dir
        assert server.pid in pids
        assert len(pids) >= 2  # the VM and its epmd, at least
        assert all(_listening(port) for port in ports if port is not None)
    finally:
        await asyncio.to_thread(server.close)

    assert [pid for pid in pids if _running(pid)] == []
    assert [port for port in ports if port is not None and _listening(port)] == []
    assert data_dir is not None
    assert not data_dir.exists()


# --------------------------------------------------------------------------- a cluster


@pytest.mark.rabbitmq
@pytest.mark.timeout(300)
async def test_cluster_loses_no_confirmed_message_when_the_queue_leader_dies(
    rabbitmq_cluster: RabbitMQCluster,
) -> None:
    cluster = rabbitmq_cluster
    names = {node.node_name for node in cluster.nodes}
    assert len(names) == 3
    assert set(cluster.cluster_status()["running_nodes"]) == names
    assert len(set(cluster.urls)) == 3

    queue = _queue_name()
    bodies = [f"event-{i}".encode() for i in range(50)]
    await _publish(cluster.url, queue, bodies)
    leader = cluster.node_of_queue_leader(queue)

    killed_at = time.monotonic()
    await asyncio.to_thread(cluster.kill, leader)
    try:
        new_leader = await asyncio.to_thread(cluster.wait_queue_leader, queue, not_on=leader)
        print(f"new leader {new_leader.node_name} after {time.monotonic() - killed_at:.1f} s")
        survivor = next(node for node in cluster.nodes if node.running)
        assert survivor is not leader
        assert await _consume(survivor.url, queue, len(bodies)) == bodies
        print(f"all consumed {time.monotonic() - killed_at:.1f} s after the kill")
    finally:
        restarted_at = time.monotonic()
        await asyncio.to_thread(cluster.restart, leader)
        print(f"{leader.node_name} rejoined in {time.monotonic() - restarted_at:.1f} s")
    assert set(cluster.cluster_status()["running_nodes"]) == names


@pytest.mark.rabbitmq
@pytest.mark.timeout(300)
def test_cluster_close_leaves_no_process_and_no_port(rabbitmq_server_script: str) -> None:
    started = time.monotonic()
    with RabbitMQCluster(rabbitmq_server_script, size=2) as cluster:
        print(f"2-node cluster formed in {time.monotonic() - started:.1f} s")
        status = cluster.cluster_status()
        assert set(status["running_nodes"]) == {node.node_name for node in cluster.nodes}
        pids = cluster.pids
        ports = [port for node in cluster.nodes for port in (node.port, node.dist_port)]
        ports.append(cluster.epmd_port or 0)
        assert all(_listening(port) for port in ports)
        data_dir = cluster.data_dir
    assert [pid for pid in pids if _running(pid)] == []
    assert [port for port in ports if _listening(port)] == []
    assert data_dir is not None
    assert not data_dir.exists()
    assert os.path.isdir(data_dir.parent)
