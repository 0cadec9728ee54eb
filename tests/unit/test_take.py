"""``take_batches`` against a stand-in for the part of Faust's ``Stream`` it uses: a passive
reader that runs each queued event through the stream's processors, one at a time, as
``Stream._enable_passive`` does. (The real streams run it in every end-to-end test.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.runtime.take import take_batches


class Event:
    def __init__(self, value: int) -> None:
        self.value = value


class PassiveStream:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self._processors: list[Any] = []
        self.current_event: Event | None = None
        self.enable_acks = True
        self.should_stop = False
        self.acked: list[int] = []
        self.channel = object()
        self._reader: asyncio.Task[None] | None = None

    def add_processor(self, processor: Any) -> None:
        self._processors.append(processor)

    def _enable_passive(self, channel: object) -> None:
        async def read() -> None:
            while True:
                self.current_event = await self.queue.get()
                for processor in self._processors:
                    await processor(self.current_event.value)

        self._reader = asyncio.get_running_loop().create_task(read())

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def wait_for_stopped(self, event: asyncio.Event) -> None:
        await event.wait()

    async def ack(self, event: Event) -> None:
        self.acked.append(event.value)


async def _collect(
    stream: PassiveStream, max_: int, within: float, out: list[Any], handled: asyncio.Event
) -> None:
    async for batch in take_batches(stream, max_, within):
        values = [e.value for e in batch]
        assert not set(values) & set(stream.acked), "acked before the batch was handled"
        await asyncio.sleep(0.02)  # the batch's transaction: events queue up meanwhile
        assert not set(values) & set(stream.acked)
        out.append((time.perf_counter(), values))
        handled.set()


async def _until_handled(out: list[Any], n: int, handled: asyncio.Event) -> None:
    while sum(len(values) for _, values in out) < n:
        handled.clear()
        await asyncio.wait_for(handled.wait(), timeout=10)


async def test_a_lone_event_goes_at_once_and_bursts_come_in_large_ordered_batches() -> None:
    stream = PassiveStream()
    out: list[Any] = []
    handled = asyncio.Event()
    consumer = asyncio.create_task(_collect(stream, 100, 5.0, out, handled))
    await asyncio.sleep(0.01)

    sent = time.perf_counter()
    stream.queue.put_nowait(Event(0))
    await _until_handled(out, 1, handled)
    assert out[0][0] - sent < 0.2  # not the 5 s linger: the buffer stopped growing
    assert out[0][1] == [0]

    for i in range(1, 451):
        stream.queue.put_nowait(Event(i))
    await _until_handled(out, 451, handled)
    await asyncio.sleep(0.05)
    values = [v for _, batch in out for v in batch]
    assert values == list(range(451))  # all, once, in order
    assert max(len(batch) for _, batch in out[1:]) == 100  # never more than max_
    assert len(out) <= 1 + 6  # the queued burst goes in full batches, not one by one
    assert sorted(stream.acked) == list(range(451))
    consumer.cancel()
    assert stream._reader is not None
    stream._reader.cancel()
