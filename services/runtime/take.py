"""Batches from a Faust stream that form as fast as the events come.

Faust's ``Stream.take_events(max, within)`` waits on a fixed tick: an event that arrives on
a quiet system waits up to ``within`` before its batch is handed over (on average half of
it, on every hop of the payment -> restore chain). Here a batch is handed over as soon as
the events stop coming: after the first event, every ``gap`` the buffer is looked at again,
and once it has not grown (or holds ``max_`` events, or ``within`` has passed since the
first) it goes. Under load the events queued while the previous batch was applied flow in
without a gap, so the batches are as large as before; alone, an event waits one ``gap``.

Acknowledgement is as in Faust's: the events of a batch are acked only after the loop body
that handled it returns, i.e. after the caller's commit (at-least-once).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


async def take_batches(
    stream: Any, max_: int, within: float, gap: float = 0.001
) -> AsyncIterator[list[Any]]:
    """Yield lists of Faust events (``event.message`` is the Kafka record)."""
    events: list[Any] = []
    arrived = asyncio.Event()  # the buffer went from empty to not empty
    room = asyncio.Event()  # set while the buffer may grow
    room.set()
    loop = asyncio.get_running_loop()

    async def add_to_buffer(value: Any) -> Any:
        while not room.is_set():  # full, or being handed over: wait (Faust's back-pressure)
            await stream.wait(room)
            if stream.should_stop:
                return value
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_batches: the stream has no current event")
        events.append(event)
        arrived.set()
        if len(events) >= max_:
            room.clear()
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False  # acked here, after the batch's body returns
    stream.add_processor(add_to_buffer)
    stream._enable_passive(stream.channel)
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(arrived)
            if not events:  # stopping
                continue
            deadline = loop.time() + within
            seen = 0
            while seen < len(events) < max_ and loop.time() < deadline:
                seen = len(events)
                await asyncio.sleep(gap)
            room.clear()
            batch = list(events)
            try:
                yield batch
            finally:
                for event in batch:
                    await stream.ack(event)
                events.clear()  # nothing came in meanwhile: the room was closed
                arrived.clear()
                room.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)
