"""The bench's published-events check counts a whole topic, up to the high watermark the
fetches report: the embedded broker's ListOffsets gives the last batch's first offset + 1,
and a count that stopped there came up to a batch short (docs/performance.md#finding-22)."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.run import topic_count


def test_topic_count_reads_to_the_high_watermark(broker: str) -> None:
    asyncio.run(_count(broker))


async def _count(bootstrap: str) -> None:
    topic = f"count{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, max_batch_size=1 << 20
    )
    await producer.start()
    try:
        # Two record batches, as the relay sends them; the first one a little short of
        # topic_count's 10,000 records a read, so its first read ends inside the second.
        for size, tag in ((9_990, b"a"), (50, b"b")):
            batch = producer.create_batch()
            for i in range(size):
                assert batch.append(key=None, value=tag + b"%d" % i, timestamp=None, headers=[])
            await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()

    assert await topic_count(bootstrap, topic, "") == 10_040
    assert await topic_count(bootstrap, topic, "b") == 50

    # what made the count short: the end offset the broker lists against the one it fetches
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 10_039)
        assert await consumer.getmany(timeout_ms=5_000)
        assert consumer.highwater(tp) == 10_040
        listed = (await consumer.end_offsets([tp]))[tp]
        assert listed in (10_040, 9_991)  # Kafka: the high watermark; the embedded broker: not
    finally:
        await consumer.stop()
