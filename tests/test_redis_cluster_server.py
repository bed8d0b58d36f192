"""The helper that starts a real local Redis Cluster, checked with redis-py's cluster client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster as ClusterClient
from redis.exceptions import MovedError
from redis.retry import Retry

from hookbus.testing.redis_cluster import SLOTS, RedisCluster, key_slot
from hookbus.testing.redis_server import RedisServer

HASH_TAG_KEYS: list[str | bytes] = [
    "",
    "a",
    "foo",
    "123456789",
    "{a}b",
    "{}x",
    "a{b}{c}",
    "{user1000}.following",
    "{user1000}.followers",
    "}{a}",
    "{{a}}",
    "a{}{b}",
    "{a",
    "a}",
    "ключ{т}",
    b"\xff\x00{\xfe}",
    b"{\xff}x",
]


def _no_retry() -> Retry:
    """For clients expected to fail: redis-py retries connection errors 3 times by default."""
    return Retry(NoBackoff(), 0)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@contextmanager
def _cluster_client(cluster: RedisCluster) -> Iterator[ClusterClient]:
    client = ClusterClient.from_url(cluster.seed_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def _node_client(node: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(node.url, decode_responses=True) as client:
        yield client


def _replication(node: RedisServer) -> dict[str, Any]:
    with _node_client(node) as client:
        return client.info("replication")


def _keyslot_of_server(node: RedisServer, key: str | bytes) -> int:
    """``CLUSTER KEYSLOT`` computed by the server itself (redis-py's cluster client would
    compute it locally)."""
    with redis.Redis.from_url(node.url) as client:
        untyped: Any = client  # execute_command is not annotated
        return cast(int, untyped.execute_command("CLUSTER KEYSLOT", key))


# --------------------------------------------------------------------------- key slots


def test_key_slot_follows_the_hash_tag_rules() -> None:
    assert key_slot("123456789") == 12739  # CRC16/XMODEM check value 0x31C3
    assert key_slot("") == 0
    assert key_slot("{a}b") == key_slot("a") == key_slot(b"a")
    assert key_slot("a{b}{c}") == key_slot("b")
    assert key_slot("{}x") != key_slot("x")  # empty tag: the whole key is hashed
    assert key_slot("ключ") == key_slot("ключ".encode())
    assert RedisCluster.key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert all(0 <= key_slot(f"k{i}") < SLOTS for i in range(1000))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"masters": 2}, "at least 3 masters"),
        ({"replicas_per_master": -1}, "replicas_per_master"),
        ({"node_timeout_ms": 0}, "node_timeout_ms"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisCluster(**kwargs)  # type: ignore[arg-type]


@pytest.mark.redis
@pytest.mark.cluster
def test_key_slot_equals_cluster_keyslot(redis_cluster: RedisCluster) -> None:
    node = redis_cluster.nodes[0]
    for key in HASH_TAG_KEYS:
        assert key_slot(key) == _keyslot_of_server(node, key), key


# --------------------------------------------------------------------------- the shared cluster


@pytest.mark.redis
@pytest.mark.cluster
def test_cluster_forms(redis_cluster: RedisCluster, redis_prefix: str) -> None:
    cluster = redis_cluster
    assert len(cluster.nodes) == 6
    assert all(node.running for node in cluster.nodes)
    assert len(set(cluster.ports)) == 6
    assert not {6379, 16379} & set(cluster.ports)
    first = cluster.ports[0]
    assert cluster.seed_url == f"redis://127.0.0.1:{first}/0"
    assert cluster.url == f"redis://127.0.0.1:{first}/0?cluster=true"

    masters = cluster.masters()
    assert len(masters) == 3
    ranges = sorted((r for _, rs in masters for r in rs), key=lambda r: r.start)
    assert [slot for r in ranges for slot in r] == list(range(SLOTS))  # no gap, no overlap

    assert [node for node, _ in masters] == cluster.nodes[:3]
    master_ports = {node.port for node, _ in masters}
    followed = []
    for replica in cluster.nodes[3:]:
        info = _replication(replica)
        assert info["role"] == "slave"
        assert info["master_link_status"] == "up"
        followed.append(info["master_port"])
    assert followed == cluster.ports[:3]  # one replica per master, in the masters' order

    with _cluster_client(cluster) as client:
        untyped: Any = client  # the node accessors are not annotated
        assert {n.port for n in untyped.get_primaries()} == master_ports
        seen = client.cluster_nodes()
        assert set(seen) == {f"127.0.0.1:{port}" for port in cluster.ports}
        roles = sorted(str(detail["flags"]).replace("myself,", "") for detail in seen.values())
        assert roles == ["master"] * 3 + ["slave"] * 3
        assert all(detail["connected"] for detail in seen.values())
        for node in cluster.nodes:
            with _node_client(node) as direct:
                info = direct.cluster("INFO")
            assert info["cluster_state"] == "ok"
            assert int(info["cluster_slots_assigned"]) == SLOTS
            assert int(info["cluster_known_nodes"]) == 6
        assert client.set(f"{redis_prefix}:k", "v")
        assert client.get(f"{redis_prefix}:k") == "v"


@pytest.mark.redis
@pytest.mark.cluster
def test_hash_tags_spread_keys_over_the_masters(
    redis_cluster: RedisCluster, redis_prefix: str
) -> None:
    cluster = redis_cluster
    masters = [node for node, _ in cluster.masters()]
    key_of: dict[int, str] = {}  # master port -> a key it serves
    for i in range(1000):
        key = f"{{{redis_prefix}-{i}}}:k"
        key_of.setdefault(cluster.master_of(key).port, key)
        if len(key_of) == len(masters):
            break
    assert set(key_of) == {node.port for node in masters}

    with _cluster_client(cluster) as client:
        for port, key in key_of.items():
            assert cast(Any, client).keyslot(key) == key_slot(key)
            assert client.set(key, f"on {port}")
    for node in masters:
        key = key_of[node.port]
        assert cluster.master_of_slot(key_slot(key)) is node
        with _node_client(node) as direct:
            assert direct.get(key) == f"on {node.port}"  # served here, no redirection
            for other_port, other_key in key_of.items():
                if other_port != node.port:
                    with pytest.raises(MovedError, match=rf"^\d+ 127\.0\.0\.1:{other_port}$"):
                        direct.get(other_key)


@pytest.mark.redis
@pytest.mark.cluster
def test_wait_failover_refuses_a_running_node(redis_cluster: RedisCluster) -> None:
    with pytest.raises(ValueError, match="still running"):
        redis_cluster.wait_failover(redis_cluster.nodes[0], timeout=1)
    with pytest.raises(ValueError, match="not a node of this cluster"):
        redis_cluster.restart(RedisServer())


# --------------------------------------------------------------------------- failures


@pytest.mark.redis
@pytest.mark.cluster
def test_killed_master_is_replaced_by_its_replica_without_losing_waited_writes(
    fresh_redis_cluster: RedisCluster,
) -> None:
    cluster = fresh_redis_cluster
    tag = "{victim}"
    keys = [f"{tag}:{i}" for i in range(100)]
    victim = cluster.master_of(tag)
    replica = next(n for n in cluster.nodes if _replication(n).get("master_port") == victim.port)
    others = [node for node, _ in cluster.masters() if node is not victim]
    other_keys = {}
    with _cluster_client(cluster) as client:
        for node in others:
            key = next(
                k for k in (f"other-{i}" for i in range(1000)) if cluster.master_of(k) is node
            )
            client.set(key, node.port)
            other_keys[key] = str(node.port)
    with _node_client(victim) as direct, direct.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.set(key, key.upper())
        pipe.wait(1, 1000)
        assert pipe.execute()[-1] == 1  # the replica has every write

    victim_pid = victim.pid
    assert victim_pid is not None
    assert cluster.kill_master_of(key_slot(keys[0])) is victim
    assert not victim.running
    assert _gone(victim_pid)

    promoted = cluster.wait_failover(victim)
    assert promoted is replica
    assert cluster.master_of(tag) is promoted
    assert victim not in [node for node, _ in cluster.masters()]
    assert _replication(promoted)["role"] == "master"
    with _node_client(promoted) as direct:
        assert direct.mget(keys) == [key.upper() for key in keys]
    with _cluster_client(cluster) as client:  # seeded from a node still running
        assert client.mget_nonatomic(keys) == [key.upper() for key in keys]
        for key, value in other_keys.items():
            assert client.get(key) == value
        assert client.set(f"{tag}:after", "yes")

    cluster.restart(victim)
    assert victim.running
    info = _replication(victim)
    assert (info["role"], info["master_port"], info["master_link_status"]) == (
        "slave",
        promoted.port,
        "up",
    )
    assert {node.port for node, _ in cluster.masters()} == {promoted.port} | {
        node.port for node in others
    }
    with _node_client(victim) as direct, direct.pipeline(transaction=False) as pipe:
        pipe.readonly()
        pipe.mget([*keys, f"{tag}:after"])
        assert pipe.execute()[-1] == [*(key.upper() for key in keys), "yes"]


@pytest.mark.redis
@pytest.mark.cluster
def test_close_leaves_no_process_nor_directory(redis_cluster_binary: str) -> None:
    password = "s3cret/:@pass"
    with RedisCluster(redis_cluster_binary, password=password) as cluster:
        pids = [node.pid for node in cluster.nodes]
        data_dir = cluster.data_dir
        assert data_dir is not None
        assert data_dir.is_dir()
        assert cluster.seed_url.startswith("redis://:s3cret%2F%3A%40pass@127.0.0.1:")
        with _cluster_client(cluster) as client:
            assert client.set("k", "v")
            assert client.get("k") == "v"
        with (
            pytest.raises(redis.AuthenticationError),
            redis.Redis(host="127.0.0.1", port=cluster.ports[0], retry=_no_retry()) as anonymous,
        ):
            anonymous.get("k")
    assert all(pid is not None and _gone(pid) for pid in pids)
    assert not any(node.running for node in cluster.nodes)
    assert not data_dir.exists()
    cluster.close()  # twice is fine
