"""What a handler is given: a run of events, typed.

A service registers one handler per event model (``{ev.InvoiceIssued: on_invoice_issued}``,
as cosmicpython's ``EVENT_HANDLERS``). The consumer hands a batch's new events over in
partition order, consecutive events of one handler as one ``Run`` (``handle``): the
handler sees every event it is to apply, once, and does the work per run (one statement for
a billing run's invoices) or per event (a loop), as it needs. A single event, from a
command or a test, is a run of one (``Run.of``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from schemas.envelope import CloudEvent
from services.runtime import logs

if TYPE_CHECKING:
    from services.runtime.unit import Unit

M = TypeVar("M", bound=BaseModel, covariant=True)
N = TypeVar("N", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Run(Generic[M]):
    """Consecutive events of a consumed batch that go to one handler, in partition order:
    their data, typed (``Run[ev.InvoiceIssued]``; a handler of several models takes
    their union), and beside each its envelope.

    Two parallel sequences, not one of (envelope, data) pairs: most handlers are
    set-based and want the data alone (``[d.contract for d in run]``), handed over as
    they are, with no pair built per event and none taken apart. The envelopes are there
    for the few that want an event's own facts: its id (payments keeps it beside the
    movement), its key (``subject``), its own ``time``, the envelope itself (notify keeps
    a request's, for the DLQ). The records (topic, partition, offset) stay with the
    consumer: the inbox is keyed by event id, and a run that fails is applied again one
    event per transaction (each a run of one), so the consumer knows the record to
    dead-letter without a handler ever seeing it."""

    events: Sequence[CloudEvent]
    data: Sequence[M]

    def __post_init__(self) -> None:
        if len(self.events) != len(self.data):
            raise ValueError(f"a run of {len(self.data)} events with {len(self.events)} envelopes")

    @staticmethod
    def of(event: CloudEvent, data: N) -> Run[N]:
        """One event as a run of one."""
        return Run((event,), (data,))

    def __iter__(self) -> Iterator[M]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def pairs(self) -> Iterator[tuple[CloudEvent, M]]:
        """Each event's envelope beside its data, in order."""
        return zip(self.events, self.data, strict=True)


Handler = Callable[["Unit", Run[Any]], Awaitable[None]]


def runs(items: Iterable[tuple[Handler, CloudEvent, BaseModel]]) -> list[tuple[Handler, Run[Any]]]:
    """(handler, envelope, data) in order as runs: consecutive items of one handler (equal:
    a bound method taken twice is one handler) make one run."""
    out: list[tuple[Handler, Run[Any]]] = []
    current: Handler | None = None
    events: list[CloudEvent] = []
    data: list[BaseModel] = []
    for handler, event, d in items:
        if handler is not current and handler != current:
            if current is not None:
                out.append((current, Run(events, data)))
            current, events, data = handler, [], []
        events.append(event)
        data.append(d)
    if current is not None:
        out.append((current, Run(events, data)))
    return out


async def handle(unit: Unit, items: Iterable[tuple[Handler, CloudEvent, BaseModel]]) -> None:
    """Apply (handler, envelope, data) in order as runs (``runs``), each handler called
    once per run. A line logged meanwhile names the run's first event (``logs.EVENT``):
    where a run fails, the consumer applies its events again one by one, and then each
    line names its own."""
    for handler, run in runs(items):
        first = run.events[0]
        token = logs.EVENT.set((first.subject, first.id, first.type))
        try:
            await handler(unit, run)
        finally:
            logs.EVENT.reset(token)
