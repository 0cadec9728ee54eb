"""Invoicing worker. Billing runs and contract loads are commands (``billing invoicing``);
the worker publishes what they commit (outbox relay), makes each issued document's PDF and
ISDOC for delivery (archived, then handed to notify: delivery.py), records deliveries and
serves metrics. It also answers VoIP credit top-up requests (topups.py): an invoice under
the contract's monthly cap, or a refusal; and a paid top-up invoice becomes credit."""

from __future__ import annotations

from pydantic import BaseModel

from schemas import events as ev
from services.invoicing import topups
from services.invoicing.delivery import Archiver, gauges, on_notification_sent
from services.invoicing.service import (
    on_calls_rated,
    on_fee_charged,
    on_partially_paid,
    on_reopened,
)
from services.invoicing.settings import InvoicingSettings, check_supplier
from services.invoicing.zone_contacts import on_contact_change
from services.runtime.runs import Handler
from services.runtime.worker import Runtime, ServiceSpec, run


def subscriptions(rt: Runtime[InvoicingSettings]) -> dict[type[BaseModel], Handler]:
    return {
        ev.InvoiceSettled: topups.on_settled,  # paid top-ups become credit
        ev.InvoicePartiallyPaid: on_partially_paid,
        ev.InvoiceReopened: on_reopened,
        ev.FeeCharged: on_fee_charged,
        ev.NotificationSent: on_notification_sent,
        ev.TopupRequested: topups.on_requested(rt.settings),
        ev.ContactChangeRequested: on_contact_change,
        ev.CallsRated: on_calls_rated,  # postpaid calls for the next periodic invoice
    }


async def archiver(rt: Runtime) -> None:
    await Archiver(rt.db, rt.clock).run(rt.settings.timer_poll_interval)


SPEC = ServiceSpec(
    name="invoicing",
    metrics_port=9101,
    settings=InvoicingSettings,
    subscriptions=subscriptions,
    background=[archiver],
    gauges=gauges,
    # the supplier every document names: refused at start, naming the variable (exit 78)
    startup_checks=[check_supplier],
)

if __name__ == "__main__":
    run(SPEC)
