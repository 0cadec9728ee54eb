"""What every Kafka client of the project shares."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition


async def partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str], timeout: float = 30.0
) -> list[TopicPartition]:
    """Every partition of ``topics``, in order. A topic created moments ago may not be in
    the metadata yet (Kafka's brokers learn of it from the controller a little later), so
    the metadata is asked again until each topic has its partitions; TimeoutError names
    those still unknown."""
    wanted = list(dict.fromkeys(topics))
    deadline = time.monotonic() + timeout
    while True:
        missing = [t for t in wanted if not consumer.partitions_for_topic(t)]
        if not missing:
            return [
                TopicPartition(t, p)
                for t in wanted
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics unknown to the broker after {timeout:.0f} s: {missing}")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.05)
