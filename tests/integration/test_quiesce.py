"""The quiet check counts a consumer part way through a partition's last record batch as
behind: its lag is measured to the high watermark, not to the end offset the broker lists
(the embedded broker lists the batch's first offset + 1; docs/performance.md#finding-22)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from services.devstack.quiesce import Quiescence
from services.devstack.stack import create_topics
from services.runtime import db
from services.runtime.settings import Settings, Topics
from services.runtime.source import group_id
from services.workers import SERVICES


def test_a_consumer_inside_the_last_batch_is_not_caught_up(broker: str, database_url: str) -> None:
    asyncio.run(_inside_the_last_batch(broker, database_url))


async def _inside_the_last_batch(bootstrap: str, url: str) -> None:
    await db.ensure_database(url)
    for service in SERVICES:
        await db.migrate(url, service)
    settings = Settings(kafka_bootstrap_servers=bootstrap, database_url=url)
    topics = Topics()
    await create_topics(settings, topics)
    tp = TopicPartition(topics.payments_received, 0)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        batch = producer.create_batch()  # one record batch of 50, as the relay sends them
        for i in range(50):
            assert batch.append(key=b"k", value=b"not an event %d" % i, timestamp=None, headers=[])
        await (await producer.send_batch(batch, tp.topic, partition=tp.partition))
    finally:
        await producer.stop()

    async def commit(offset: int) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id(settings, "payments"),
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.commit({tp: OffsetAndMetadata(offset, "")})
        finally:
            await consumer.stop()

    conn = await db.connect(url)
    try:
        async with Quiescence(settings, topics) as quiet:
            await commit(1)  # payments has applied the batch's first record only
            assert (await quiet.snapshot(conn)).lag == 49
            await commit(50)
            snap = await quiet.snapshot(conn)
            assert snap.lag == 0
            assert snap.end_offsets == 50
    finally:
        await conn.close()
