"""BatchSource against a Tansu broker: batches from several topics, offsets committed only
for what was applied, partition n of every topic on the same member, and a rebalance that
waits for the batch in hand so that no record is applied by two members."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.runtime.consumer import Record
from services.runtime.settings import Settings
from services.runtime.source import BatchSource, group_id

PARTITIONS = 4


def test_batches_and_commits(broker: str) -> None:
    asyncio.run(_batches_and_commits(broker))


def test_partition_n_of_every_topic_on_one_member(broker: str) -> None:
    asyncio.run(_co_partitioned(broker))


def test_rebalance_waits_for_the_batch_in_hand(broker: str) -> None:
    asyncio.run(_rebalance(broker))


def test_other_topics_before_a_bulk_topic(broker: str) -> None:
    asyncio.run(_bulk_last(broker))


def _settings(bootstrap: str) -> Settings:
    return Settings(
        kafka_bootstrap_servers=bootstrap, batch_size=50, commit_interval=0.0,
        fetch_max_wait_ms=25,
    )  # fmt: skip


async def _topics(bootstrap: str, n: int = 2) -> list[str]:
    names = [f"t{uuid.uuid4().hex[:8]}" for _ in range(n)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in names])
    finally:
        await admin.close()
    return names


async def _produce(bootstrap: str, items: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in items:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _committed(bootstrap: str, service: str, topics: list[str]) -> dict[TopicPartition, int]:
    group = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id(_settings(bootstrap), service),
        enable_auto_commit=False,
    )
    await group.start()
    try:
        out = {}
        for t in topics:
            for p in range(PARTITIONS):
                tp = TopicPartition(t, p)
                out[tp] = await group.committed(tp) or 0
        return out
    finally:
        await group.stop()


async def _until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _batches_and_commits(bootstrap: str) -> None:
    settings = _settings(bootstrap)
    topics = await _topics(bootstrap)
    items = [(topics[i % 2], f"{1000 + i % 13}".encode(), f"{i}".encode()) for i in range(300)]
    items.append((topics[0], b"boom", b"boom"))
    await _produce(bootstrap, items)

    seen: list[Record] = []
    batches: list[int] = []

    async def failing(records: list[Record]) -> None:
        if any(r.value == b"boom" for r in records):
            raise RuntimeError("the handler broke")  # nothing of this batch was applied
        seen.extend(records)
        batches.append(len(records))

    first = BatchSource("srctest1", topics, settings, failing)
    try:
        await first.run()
        raise AssertionError("run() returned although apply raised")
    except RuntimeError:
        pass
    committed = await _committed(bootstrap, "srctest1", topics)
    boom = next(r for r in await _read_all(bootstrap, topics) if r.value == b"boom")
    # the batch that failed is not committed: the boom record comes again
    assert committed[TopicPartition(boom.topic, boom.partition)] <= boom.offset
    # (the failing batch may be the very first: which partitions a fetch brings first varies)
    # in each partition, records arrive in offset order and none twice
    by_tp: dict[tuple[str, int], list[int]] = {}
    for r in seen:
        by_tp.setdefault((r.topic, r.partition), []).append(r.offset)
    for offsets in by_tp.values():
        assert offsets == sorted(set(offsets))

    again: list[Record] = []

    async def accepting(records: list[Record]) -> None:
        again.extend(records)
        batches.append(len(records))

    everything = {(r.topic, r.partition, r.offset) for r in await _read_all(bootstrap, topics)}
    second = BatchSource("srctest1", topics, settings, accepting)
    task = asyncio.create_task(second.run())
    # until the boom record is in again and every record the first run left: a fetch may
    # bring the boom record's partition before the others' rest (waiting for the boom
    # record alone stopped the second run short of them in one run of six)
    await _until(
        lambda: (
            any(r.value == b"boom" for r in again)
            and {(r.topic, r.partition, r.offset) for r in seen + again} >= everything
        ),
        "the boom record again, and the rest",
    )
    await _stop(task)  # commits what was applied
    applied = {(r.topic, r.partition, r.offset) for r in seen + again}
    assert applied == everything  # nothing lost between the two runs
    assert batches and max(batches) <= settings.batch_size
    # the second run started from the first one's commits: nothing committed came again
    for r in again:
        assert r.offset >= committed[TopicPartition(r.topic, r.partition)]
    ends = await _ends(bootstrap, topics)
    assert await _committed(bootstrap, "srctest1", topics) == ends


async def _co_partitioned(bootstrap: str) -> None:
    settings = _settings(bootstrap)
    topics = await _topics(bootstrap, 3)

    async def nothing(records: list[Record]) -> None:
        return None

    a = BatchSource("srctest2", topics, settings, nothing)
    b = BatchSource("srctest2", topics, settings, nothing)
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    try:
        await _until(
            lambda: (
                len(a.consumer.assignment()) + len(b.consumer.assignment())
                == PARTITIONS * len(topics)
                and bool(a.consumer.assignment())
                and bool(b.consumer.assignment())
            ),
            "both members assigned",
        )
        for member in (a, b):
            numbers = {
                t: {tp.partition for tp in member.consumer.assignment() if tp.topic == t}
                for t in topics
            }
            assert numbers[topics[0]] == numbers[topics[1]] == numbers[topics[2]], numbers
    finally:
        for task in tasks:
            await _stop(task)


async def _rebalance(bootstrap: str) -> None:
    settings = _settings(bootstrap)
    topics = await _topics(bootstrap)
    await _produce(
        bootstrap, [(topics[i % 2], f"{i % 17}".encode(), f"{i}".encode()) for i in range(400)]
    )
    applied: dict[str, list[Record]] = {"a": [], "b": []}
    release = asyncio.Event()
    holding = asyncio.Event()

    def member(name: str, block_first: bool) -> Callable[[list[Record]], Awaitable[None]]:
        async def apply(records: list[Record]) -> None:
            if block_first and not holding.is_set():
                holding.set()
                await release.wait()  # a slow batch, in hand while the group rebalances
            applied[name].extend(records)

        return apply

    a = BatchSource("srctest3", topics, settings, member("a", True))
    task_a = asyncio.create_task(a.run())
    await _until(holding.is_set, "the first batch in hand")
    b = BatchSource("srctest3", topics, settings, member("b", False))
    task_b = asyncio.create_task(b.run())
    # b asks to join; the group's rebalance revokes a's partitions while a's batch is in
    # hand (Tansu holds a JoinGroup 3 s), and the revocation waits for it
    await asyncio.sleep(5.0)
    release.set()
    try:
        await _until(lambda: len(applied["a"]) + len(applied["b"]) >= 400, "all applied")
        await _until(lambda: bool(b.consumer.assignment()), "b assigned")
    finally:
        await _stop(task_a)
        await _stop(task_b)
    keys_a = {(r.topic, r.partition, r.offset) for r in applied["a"]}
    keys_b = {(r.topic, r.partition, r.offset) for r in applied["b"]}
    assert not keys_a & keys_b, "a record was applied by both members"
    assert len(keys_a | keys_b) == 400
    assert applied["b"], "b took over partitions and read them"


async def _read_all(bootstrap: str, topics: list[str]) -> list[Record]:
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    out: list[Record] = []
    try:
        ends = await _ends(bootstrap, topics)
        total = sum(ends.values())
        while len(out) < total:
            for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                out += [
                    Record(tp.topic, tp.partition, m.offset, m.key, m.value, None) for m in msgs
                ]
    finally:
        await consumer.stop()
    return out


async def _ends(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def _bulk_last(bootstrap: str) -> None:
    """A billing run's backlog on a bulk topic does not hold up payments on another: each
    batch takes what the other topics have buffered first (at most four fifths of it, so
    the bulk topic moves on too), and every record comes once, in offset order. Without
    it, records that arrive during the backlog wait behind every bulk record fetched
    before them (here some 40 batches)."""
    settings = _settings(bootstrap)  # batches of 50
    bulk, other = await _topics(bootstrap)
    await _produce(bootstrap, [(bulk, f"{i % 7}".encode(), f"b{i}".encode()) for i in range(2000)])
    batches: list[list[Record]] = []

    async def keep(records: list[Record]) -> None:
        batches.append(records)
        await asyncio.sleep(0.01)

    source = BatchSource("srctest4", [bulk, other], settings, keep, bulk=frozenset({bulk}))
    task = asyncio.create_task(source.run())
    await _until(lambda: len(batches) >= 2, "the backlog under way")
    produced = len(batches)  # none of the other topic's can come before this batch
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:  # all at once: the time they take to arrive is not what is measured
        sent = [await producer.send(other, f"o{i}".encode(), key=f"{i % 7}".encode())
                for i in range(100)]  # fmt: skip
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    await _until(lambda: sum(len(b) for b in batches) == 2100, "all 2,100 records")
    await _stop(task)
    others = [sum(r.topic == other for r in b) for b in batches]
    first = min(i for i, n in enumerate(others) if n)
    last = max(i for i, n in enumerate(others) if n)
    # once fetched, the other topic's records go first: they are all in within three
    # batches, while most of the backlog is still to come
    assert last - first <= 2 and sum(len(b) for b in batches[last + 1 :]) >= 1000, others
    assert max(others) <= 40 and all(len(b) <= 50 for b in batches), others
    assert sum(others[produced:]) == 100 and max(others) == 40  # 40 a batch, 10 bulk
    by_tp: dict[tuple[str, int], list[int]] = {}
    for r in (r for b in batches for r in b):
        by_tp.setdefault((r.topic, r.partition), []).append(r.offset)
    assert sum(len(o) for o in by_tp.values()) == 2100
    for offsets in by_tp.values():
        assert offsets == sorted(set(offsets))
