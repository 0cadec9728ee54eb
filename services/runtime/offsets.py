"""The workers' consumer-group offsets, saved beside a database backup and put back after a
restore (``billing offsets save|restore``; docs/operations.md, "Backup and restore").

Why: Kafka keeps each group's committed offsets, PostgreSQL keeps what those records did.
A database restored to an older point has not seen the records between its dump and the
loss, but the groups' offsets are already past them: started as they are, the workers
would skip them. Saved *before* the dump starts, the offsets are at or behind what the dump
holds (a worker commits an offset only after the transaction that applied it), so putting
them back replays from there: the inboxes drop what the dump had already applied, and
whatever came after is applied again, once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata

from services.runtime.errors import BadInput, TryAgain
from services.runtime.kafka_client import client_options
from services.runtime.settings import Settings
from services.runtime.source import group_id

# {group: {topic: {partition (as text, JSON's keys): committed offset}}}
Saved = dict[str, dict[str, dict[str, int]]]


async def committed(settings: Settings, services: tuple[str, ...]) -> Saved:
    """Each service's group's committed offsets, now."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        saved: Saved = {}
        for service in services:
            group = group_id(settings, service)
            offsets = await admin.list_consumer_group_offsets(group)
            per_topic: dict[str, dict[str, int]] = {}
            for tp, meta in sorted(offsets.items()):
                if meta.offset >= 0:
                    per_topic.setdefault(tp.topic, {})[str(tp.partition)] = meta.offset
            saved[group] = per_topic
        return saved
    finally:
        await admin.close()


def read_saved(path: Path) -> Saved:
    """A file ``billing offsets save`` wrote; anything else is refused, naming what."""
    try:
        data: Any = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected an object of groups, got {type(data).__name__}")
    for group, topics in data.items():
        if not isinstance(topics, dict):
            raise BadInput(f"{path}: group {group}: expected an object of topics")
        for topic, parts in topics.items():
            if not isinstance(parts, dict) or not all(
                k.isdigit() and type(v) is int and v >= 0 for k, v in parts.items()
            ):
                raise BadInput(
                    f"{path}: group {group}, topic {topic}: expected partition numbers"
                    " mapped to offsets (integers, 0 or more)"
                )
    return data


async def put_back(settings: Settings, saved: Saved) -> dict[str, int]:
    """Commit ``saved`` for each group; a partition the group has committed since but the
    file lacks goes back to its first offset, as if never read (the workers start a new
    group at the earliest). The broker refuses a commit from outside a group that has
    members: then this stops, naming the group (stop the workers first), and the groups
    before it in the file stay set, which is harmless: run it again once they are stopped.
    Returns how many partitions each group was set on."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        now = {g: await admin.list_consumer_group_offsets(g) for g in saved}
    finally:
        await admin.close()
    done: dict[str, int] = {}
    for group, topics in saved.items():
        wanted = {
            TopicPartition(topic, int(p)): offset
            for topic, parts in topics.items()
            for p, offset in parts.items()
        }
        consumer = AIOKafkaConsumer(
            group_id=group, enable_auto_commit=False, **client_options(settings)
        )
        await consumer.start()
        try:
            since = [tp for tp in now[group] if tp not in wanted]
            if since:
                wanted |= await consumer.beginning_offsets(since)
            if wanted:
                consumer.assign(list(wanted))
                try:
                    await consumer.commit(
                        {tp: OffsetAndMetadata(o, "") for tp, o in wanted.items()}
                    )
                except CommitFailedError:
                    raise TryAgain(
                        f"consumer group {group} has members: stop its workers first"
                    ) from None
        finally:
            await consumer.stop()
        done[group] = len(wanted)
    return done
