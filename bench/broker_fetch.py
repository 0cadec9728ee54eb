"""How the embedded broker's fetch time grows with the record batches a partition holds
(docs/performance.md#finding-21). ``python -m bench.broker_fetch [batches ...]``.

A fresh broker; one partition filled with one-record batches (every ``send_and_wait`` is a
batch, as a relay round or a lightly loaded producer makes them) up to each checkpoint; at
each, a fresh consumer fetches the newest record and, for comparison, the first one. On
Apache Kafka a fetch finds its offset through the segment's index whatever the partition
holds; the embedded broker keeps each batch as an object of its memory store.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.devstack import kafka
from services.devstack.stack import start_broker

TOPIC = "fetch-cost"
CHECKPOINTS = (1_000, 3_000, 5_000, 6_000, 7_000, 8_000)
TIMEOUT_MS = 20_000


async def fetch_ms(bootstrap: str, offset: int) -> float | None:
    """Milliseconds until a fresh consumer has the record at ``offset``; None: not in time."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5
    )
    await consumer.start()
    try:
        tp = TopicPartition(TOPIC, 0)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        started = time.perf_counter()
        records = await consumer.getmany(timeout_ms=TIMEOUT_MS)
        elapsed = (time.perf_counter() - started) * 1000
        return elapsed if records else None
    finally:
        await consumer.stop()


def show(ms: list[float | None]) -> str:
    done = [m for m in ms if m is not None]
    if len(done) < len(ms):
        return f"> {TIMEOUT_MS / 1000:.0f} s ({len(ms) - len(done)} of {len(ms)})"
    return f"{statistics.median(done):8.1f} ms"


async def measure(checkpoints: tuple[int, ...]) -> None:
    broker = start_broker(Path(tempfile.mkdtemp(prefix="broker-fetch-")), kafka.free_ports(1)[0])
    bootstrap = broker.bootstrap
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        print(f"{'batches':>8}  {'newest record':>22}  {'first record':>22}", flush=True)
        batches = 0
        for checkpoint in checkpoints:
            while batches < checkpoint:
                last = await producer.send_and_wait(TOPIC, b"x" * 150, partition=0)
                batches += 1
            newest = [await fetch_ms(bootstrap, last.offset)]
            if newest[0] is not None:  # a slow one once is enough
                newest += [await fetch_ms(bootstrap, last.offset) for _ in range(2)]
            first = [await fetch_ms(bootstrap, 0) for _ in range(3)]
            print(f"{batches:>8}  {show(newest):>22}  {show(first):>22}", flush=True)
    finally:
        await producer.stop()
        broker.stop()


def main() -> None:
    checkpoints = tuple(int(a) for a in sys.argv[1:]) or CHECKPOINTS
    asyncio.run(measure(checkpoints))


if __name__ == "__main__":
    main()
