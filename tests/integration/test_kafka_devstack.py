"""Apache Kafka as the project starts it (services/devstack/kafka.py): one node keeps its
events across a restart (`make run`), and a three-node cluster (replication factor 3,
min.insync.replicas=2) takes acks=all writes from an idempotent producer with one node
killed, refuses them with two down, and has every acknowledged record afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from services.devstack import kafka
from services.runtime.kafka_client import partitions


def test_cluster_ids_never_look_like_options() -> None:
    ids = [kafka.new_cluster_id() for _ in range(2000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


async def _create(bootstrap: str, topic: str, partitions_: int, rf: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions_, rf)])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, values: list[bytes], timeout_ms: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=timeout_ms,
        metadata_max_age_ms=2000,
    )
    try:
        # with the quorum lost the idempotent producer's start waits for a coordinator
        await asyncio.wait_for(producer.start(), timeout_ms / 1000)
        for v in values:
            await asyncio.wait_for(producer.send_and_wait(topic, v, key=v), timeout_ms / 1000)
    finally:
        # a refused send is still in flight: stop waits for it up to the request timeout
        await asyncio.wait_for(producer.stop(), timeout_ms / 1000 + 5)


async def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await partitions(consumer, [topic])
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[bytes] = []
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out += [r.value for r in records if r.value is not None]
        return out
    finally:
        await consumer.stop()


def test_one_node_keeps_its_events_across_a_restart(tmp_path: Path) -> None:
    ports = kafka.free_ports(1)
    first = kafka.cluster(tmp_path, ports).start()
    try:
        asyncio.run(_create(first.bootstrap, "kept", 2, 1))
        asyncio.run(_produce(first.bootstrap, "kept", [b"a%d" % i for i in range(50)], 15000))
    finally:
        first.stop()
    again = kafka.cluster(tmp_path, ports).start()  # the same folder: formatted, not again
    try:
        assert sorted(asyncio.run(_read_all(again.bootstrap, "kept"))) == sorted(
            b"a%d" % i for i in range(50)
        )
    finally:
        again.stop()


def test_three_nodes_write_with_one_down_and_refuse_with_two(tmp_path: Path) -> None:
    c = kafka.cluster(tmp_path, kafka.free_ports(3)).start()
    try:
        props = c.nodes[0].props
        assert props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        asyncio.run(_create(c.bootstrap, "replicated", 3, 3))
        asyncio.run(
            _produce(c.bootstrap, "replicated", [b"before%d" % i for i in range(30)], 15000)
        )

        c.nodes[1].kill()  # SIGKILL: no controlled shutdown
        during = [b"one-down%d" % i for i in range(30)]
        asyncio.run(_produce(c.bootstrap, "replicated", during, 30000))

        c.nodes[2].kill()  # two of three down: fewer in sync than min.insync.replicas
        with pytest.raises((KafkaError, TimeoutError)):
            asyncio.run(_produce(c.bootstrap, "replicated", [b"refused"], 3000))

        c.restart(c.nodes[1])
        c.restart(c.nodes[2])
        got = asyncio.run(_read_all(c.bootstrap, "replicated"))
        acknowledged = [b"before%d" % i for i in range(30)] + during
        assert sorted(v for v in got if v != b"refused") == sorted(acknowledged)
        assert len(got) == len(set(got))  # the idempotent producer wrote nothing twice
    finally:
        c.stop()
