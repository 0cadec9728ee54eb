"""``bench.run --kafka``: on a shared Kafka cluster the run's topics and consumer groups are
its own, named under its prefix, laid out as the system's, and only they are deleted after."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.run import delete_own_topics, kafka_limit, own_topics_and_groups
from services.runtime.settings import Settings, Topics
from services.runtime.source import group_id


def test_the_runs_topics_and_groups_are_named_under_its_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [f"BILLING_TOPIC_{f.upper()}" for f in Topics.model_fields] + ["BILLING_GROUP_PREFIX"]
    for name in names:  # undone after the test, whatever own_topics_and_groups sets
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    own_topics_and_groups("bench-abc123")

    topics = Topics()
    assert topics.payments_received == "bench-abc123.payments.received"
    assert topics.network_access == "bench-abc123.network.access"
    assert all(t.startswith("bench-abc123.") for t in topics.all())
    assert len(set(topics.all())) == len(Topics.model_fields)
    assert group_id(Settings(), "payments") == "bench-abc123-payments"


def test_a_system_of_its_own_keeps_the_contracts_names() -> None:
    settings = Settings()
    assert group_id(settings, "dunning") == "billing-dunning"
    assert Topics().payments_received == "payments.received"


def test_the_limit_makes_its_topic_as_the_systems_and_only_own_topics_go(broker: str) -> None:
    asyncio.run(_limit_and_cleanup(broker))


async def _limit_and_cleanup(bootstrap: str) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    other = f"{prefix}x.kept"  # shares the prefix's letters, not its "<prefix>." namespace
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(other, 1, 1), NewTopic(f"{prefix}.import.gpc", 1, 1)])
    finally:
        await admin.close()

    seconds = await kafka_limit(bootstrap, 300, 100, f"{prefix}.limit.a")
    assert seconds > 0
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([f"{prefix}.limit.a"])
    finally:
        await admin.close()
    # created before use with the system's partitions, not left to the broker's auto-create
    partitions = {p["partition"] for p in described["partitions"]}
    assert partitions == set(range(Settings().topic_partitions))

    deleted = await delete_own_topics(bootstrap, prefix)
    assert deleted == [f"{prefix}.import.gpc", f"{prefix}.limit.a"]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        left = set(await admin.list_topics())
    finally:
        await admin.close()
    assert other in left
    assert not {f"{prefix}.import.gpc", f"{prefix}.limit.a"} & left
