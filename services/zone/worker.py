"""Zone worker: the customer zone's pages (on ``BILLING_ZONE_PORT``), its read model of
the events it needs, and the sender of its own mail (one-time links)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from schemas import events as ev
from services.runtime.runs import Handler
from services.runtime.worker import Runtime, ServiceSpec, run
from services.zone import web as pages
from services.zone.mail import Sender
from services.zone.service import Handlers, Q
from services.zone.settings import ZoneSettings, check_settings
from services.zone.usage import UsageHandlers

_senders: dict[int, Sender] = {}  # per runtime: the pages wake the one that sends


def _sender(rt: Runtime[ZoneSettings]) -> Sender:
    if id(rt) not in _senders:
        _senders[id(rt)] = Sender(rt.settings, rt.db, rt.clock)
    return _senders[id(rt)]


def subscriptions(rt: Runtime) -> dict[type[BaseModel], Handler]:
    h = Handlers()
    usage = UsageHandlers()
    return {
        ev.ContractUpserted: h.on_contract,
        ev.InvoiceIssued: h.on_invoice_issued,
        ev.InvoiceCancelled: h.on_invoice_cancelled,
        ev.InvoiceSettled: h.on_settlement,
        ev.InvoicePartiallyPaid: h.on_settlement,
        ev.InvoiceReopened: h.on_settlement,
        ev.PaymentMatched: h.on_payment_matched,
        ev.PaymentReversed: h.on_payment_reversed,
        ev.DocumentReady: h.on_document,
        ev.DunningStatus: h.on_dunning_status,
        # zone31: top-up answers, prepaid balances, traffic hours, rated calls
        ev.TopupInvoiced: usage.on_topup_answer,
        ev.TopupRefused: usage.on_topup_answer,
        ev.VoipCreditBalance: usage.on_credit_balance,
        ev.TrafficHour: usage.on_traffic_hour,
        ev.CallsRated: usage.on_calls_rated,
    }


async def send_mail(rt: Runtime[ZoneSettings]) -> None:
    await _sender(rt).run(rt.settings.timer_poll_interval)


async def zone_server(rt: Runtime[ZoneSettings]) -> web.AppRunner:
    return await pages.serve(rt, _sender(rt).wakeup.set)


SPEC = ServiceSpec(
    name="zone",
    metrics_port=9106,
    settings=ZoneSettings,
    subscriptions=subscriptions,
    extra_servers=[zone_server],
    background=[send_mail],
    startup_checks=[check_settings, pages.check_trusted_proxies],
    pending=Q.due_mails,
)

if __name__ == "__main__":
    run(SPEC)
