"""The demo scenario (also the end-to-end test): three contracts, one billing run.

A pays on time by VS/SS and hears nothing more. B never pays: reminder, notice, confirms
the notice on day X, suspended on day X+10, pays, restored within a second. C pays 1 CZK
short: stays partially paid, gets a reminder, pays the rest, nothing further.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer

from services.devstack.quiesce import Quiescence
from services.devstack.stack import Stack, StackConfig, free_port
from services.runtime import db
from services.runtime.clock import read_clock, set_clock
from services.runtime.kafka_client import client_options, partitions
from services.runtime.settings import Settings, Topics
from services.workers import SERVICES

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = Path(__file__).with_name("demo_data") / "contracts.json"
START = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 08:00 in Prague


@dataclass
class Seen:
    topic: str
    key: str | None
    event: dict[str, Any]
    seen_at: float  # wall clock, when the demo's consumer got it


@dataclass
class Watcher:
    """Reads every topic from the beginning, as an operator's tail would."""

    settings: Settings
    topics: list[str]
    seen: list[Seen] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        parts = await partitions(self._consumer, self.topics)
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=50)
            now = time.time()
            for tp, records in batches.items():
                for r in records:
                    try:
                        event = json.loads(r.value)
                    except (ValueError, TypeError):
                        event = {"type": "(not json)", "raw": repr(r.value)[:80]}
                    self.seen.append(Seen(tp.topic, r.key.decode() if r.key else None, event, now))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._consumer:
            await self._consumer.stop()

    def of(self, type_: str, subject: str | None = None) -> list[Seen]:
        """The events of a type (and contract), each once: a relay that dies between
        publishing and deleting its outbox rows publishes them again (at-least-once, the
        same event ids, which consumers' inboxes skip), so records are counted by id."""
        first: dict[object, Seen] = {}
        for s in self.seen:
            if s.event.get("type") == type_ and subject in (None, s.event.get("subject")):
                first.setdefault(s.event.get("id"), s)
        return list(first.values())


class Scenario:
    def __init__(
        self, stack: Stack, out: Callable[[str], None] = print, kills: dict[str, str] | None = None
    ) -> None:
        """``kills`` maps a moment ("billing-run" or a day "2026-12-18") to the worker that
        is SIGKILLed just as the system starts reacting to it, then started again."""
        self.stack = stack
        self.kills = dict(kills or {})
        self.killed: list[str] = []
        self.settings: Settings = stack.settings()
        self.topics = Topics()
        self.out = out
        self.timeline: list[str] = []
        self.failures: list[str] = []
        self.restore_delay: float | None = None
        self.invoices: dict[str, dict[str, Any]] = {}
        self.credit_notes: list[str] = []
        self.watcher = Watcher(self.settings, self.topics.all())

    # --- helpers ---------------------------------------------------------------------
    async def now(self) -> datetime:
        conn = await db.connect(self.settings.database_url)
        try:
            return await read_clock(conn)
        finally:
            await conn.close()

    async def quiet(self, timeout: float = 90) -> float:
        """Wait until the system is quiet; the seconds it took."""
        conn = await db.connect(self.settings.database_url)
        try:
            async with Quiescence(self.settings, self.topics) as q:
                return await q.wait(conn, timeout=timeout)
        finally:
            await conn.close()

    async def log(self, text: str) -> None:
        now = await self.now()
        line = f"{now.astimezone(_PRAGUE):%Y-%m-%d %a}  {text}"
        self.timeline.append(line)
        self.out(line)

    def check(self, ok: bool, what: str) -> None:
        mark = "ok " if ok else "FAIL"
        self.out(f"    [{mark}] {what}")
        if not ok:
            self.failures.append(what)

    async def cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        env = {**self.stack.env(), **(env or {})}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"billing {' '.join(args)} failed: {out.decode()}")
        return out.decode()

    async def advance_to(self, day: date) -> None:
        from services.devstack.quiesce import advance

        while (today := (await self.now()).astimezone(_PRAGUE).date()) < day:
            self.chaos((today + timedelta(days=1)).isoformat())
            await advance(self.settings, timedelta(days=1))

    def chaos(self, moment: str) -> None:
        """SIGKILL the worker planned for this moment 50 ms from now (while it reacts),
        and start it again at once."""
        service = self.kills.pop(moment, None)
        if service is None or self.stack.workers is None:
            return

        async def kill() -> None:
            await asyncio.sleep(0.05)
            self.stack.workers.kill(service)  # type: ignore[union-attr]
            self.killed.append(f"{moment}:{service}")
            self.out(f"    (SIGKILL {service} at {moment}; restarted)")
            self.stack.restart_worker(service)

        asyncio.get_running_loop().create_task(kill())

    async def pay(self, contract: str, amount_minor: int, ss: str | None) -> float:
        """The bank reports a payment: one movement imported as a statement's would be
        (services/bank_import/importer.py); returns when it was handed to the importer."""
        now = await self.now()
        data = {
            "account": self.settings.bank_accounts["CZK"],
            "bank_tx_id": uuid.uuid4().hex[:16],
            "booked_on": now.date().isoformat(),
            "value_on": now.date().isoformat(),
            "amount_minor": amount_minor,
            "currency": "CZK",
            "vs": contract,
            "ss": ss,
            "ks": "0308",
            "counterparty_account": "19-2000145399/0800",
            "counterparty_name": "Customer",
            "message": "platba",
        }
        from services.bank_import import cli as bank_import_cli
        from services.bank_import import importer

        sent_at = time.time()
        await importer.import_movements(
            self.settings, [bank_import_cli.payment(data)], "demo", "demo"
        )
        await self.log(
            f"bank: {contract} pays {amount_minor / 100:.2f} CZK (VS {contract}, SS {ss})"
        )
        return sent_at

    async def confirm_notice(self, address: str) -> str:
        port = self.stack.cfg.notice_port
        conn = aiohttp.TCPConnector(local_addr=(address, 0))
        # the page's session cookie (its forms' tokens are bound to it), for an IP host
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(connector=conn, cookie_jar=jar) as http:
            async with http.get(f"http://127.0.0.1:{port}/") as resp:
                page = await resp.text()
            token = page.split('name="csrf" value="')[1].split('"')[0]
            async with http.post(
                f"http://127.0.0.1:{port}/acknowledge", data={"csrf": token}
            ) as resp:
                await resp.text()
        return page

    def mails(self, address: str) -> list[str]:
        """Subjects of the messages (not documents: those carry attachments) to ``address``."""
        return [m.subject for m in self.stack.mail.to(address) if not _attachments(m)]  # type: ignore[attr-defined]

    def documents(self, address: str) -> list[tuple[str, list[str]]]:
        """Subject and attachment names of each document e-mailed to ``address``."""
        mails = self.stack.mail.to(address)  # type: ignore[attr-defined]
        return [(m.subject, _attachments(m)) for m in mails if _attachments(m)]

    async def documents_mailed(
        self, expected: dict[str, str], timeout: float = 60
    ) -> dict[str, list[str]]:
        """Wait until each address got the document numbered as given (the invoicing
        worker makes PDFs in the background, past the quiescence the rest of the story
        waits for); the attachment names each got for it."""
        deadline = time.time() + timeout
        while True:
            got: dict[str, list[str]] = {}
            for address, number in expected.items():
                for subject, names in self.documents(address):
                    if number in subject or any(n.startswith(number) for n in names):
                        got[address] = names
            if len(got) == len(expected) or time.time() > deadline:
                return got
            await asyncio.sleep(0.2)

    async def invoice_mails(self, invoices: dict[str, dict[str, Any]]) -> None:
        numbers = {address: inv["invoice_number"] for address, inv in invoices.items()}
        got = await self.documents_mailed(numbers)
        for address, number in numbers.items():
            self.check(
                sorted(got.get(address, [])) == [f"{number}.isdoc", f"{number}.pdf"],
                f"invoice {number} e-mailed to {address} with its PDF and ISDOC",
            )
        await self.log(
            "invoice e-mails with PDF and ISDOC attached: "
            + ", ".join(f"{n} to {a}" for a, n in numbers.items())
        )

    async def credit_note(self, invoice: dict[str, Any]) -> None:
        """A's operator grants 100.00 CZK off A's paid December invoice (an outage): a
        partial credit note, delivered like an invoice; what A paid above the new due
        becomes A's credit."""
        number = invoice["invoice_number"]
        await self.cli(
            "credit-note", "issue", number, "--line", "1=100.00",
            "--reason", "Výpadek služby 3.-5. 12. 2026",
        )  # fmt: skip
        await self.quiet()
        notes = self.watcher.of("credit_note.issued.v1", "1001")
        self.check(len(notes) == 1, "a credit note issued for A's invoice")
        if not notes:
            return
        note = notes[0].event["data"]
        self.credit_notes.append(note["credit_note_number"])
        got = await self.documents_mailed({"alena@example.com": note["credit_note_number"]})
        self.check(
            len(got.get("alena@example.com", [])) == 2,
            f"credit note {note['credit_note_number']} e-mailed to A with its PDF and ISDOC",
        )
        await self.log(
            f"credit note {note['credit_note_number']} for {number}: "
            f"{note['amount_minor'] / 100:.2f} CZK back to A as credit"
        )

    async def write_documents(self) -> None:
        """Every document the demo issued, as PDF and ISDOC, in ``.run/demo/documents``."""
        folder = self.stack.cfg.run_dir / "documents"
        folder.mkdir(parents=True, exist_ok=True)
        numbers = [i["invoice_number"] for i in self.invoices.values()] + self.credit_notes
        written = []
        for number in numbers:
            for kind in ("pdf", "isdoc"):
                path = folder / f"{number}.{kind}"
                await self.cli("invoice", "write", number, "--format", kind, "--out", str(path))
                if path.exists() and path.stat().st_size > 0:
                    written.append(path.name)
        self.check(
            len(written) == 2 * len(numbers),
            f"{len(written)} documents written to {folder}",
        )
        await self.log(f"documents written to {folder}: {', '.join(sorted(written))}")

    # --- the customer zone ------------------------------------------------------------
    async def zone_invite(self, contract: str, address: str) -> None:
        """The operator invites the contract's owner into the zone; the owner sets a
        password through the e-mailed link."""
        before = len(self.stack.mail.to(address))  # type: ignore[attr-defined]
        await self.cli("zone", "invite", contract, address, "--operator", "demo")
        deadline = time.time() + 30
        while True:  # the zone worker sends its own mail, past the quiescence
            mails = self.stack.mail.to(address)  # type: ignore[attr-defined]
            if len(mails) > before or time.time() > deadline:
                break
            await asyncio.sleep(0.1)
        found = _ZONE_LINK.findall(mails[-1].body) if len(mails) > before else []
        self.check(len(found) == 1, f"zone invitation e-mailed to {address}")
        if not found:
            return
        async with self._zone_browser() as http:
            async with http.get(found[0]) as resp:
                token = _form_token(await resp.text())
            form = {"csrf": token, "password": ZONE_PASSWORD, "password2": ZONE_PASSWORD}
            async with http.post(found[0], data=form, allow_redirects=False) as resp:
                self.check(resp.status == 303, f"{address} set a zone password")

    def _zone_browser(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def zone_page(self, address: str, path: str) -> str:
        """Log in to the zone as ``address`` and read the page at ``path``."""
        zone = f"http://127.0.0.1:{self.stack.cfg.zone_port}"
        async with self._zone_browser() as http:
            async with http.get(f"{zone}/login") as resp:
                token = _form_token(await resp.text())
            form = {"csrf": token, "name": address, "password": ZONE_PASSWORD}
            async with http.post(f"{zone}/login", data=form, allow_redirects=False) as resp:
                logged_in = resp.status == 303
            async with http.get(f"{zone}{path}", allow_redirects=False) as resp:
                page = await resp.text()
                ok = logged_in and resp.status == 200
        self.check(ok, f"{address} logged in to the zone and read {path}")
        return page

    def access(self, contract: str) -> list[str]:
        return [s.event["data"]["state"] for s in self.watcher.of("network.access.v1", contract)]

    # --- the story -------------------------------------------------------------------
    async def run(self) -> bool:
        conn = await db.connect(self.settings.database_url)
        try:
            await set_clock(conn, START)
        finally:
            await conn.close()
        await self.watcher.start()
        try:
            await self._story()
        finally:
            await self.watcher.stop()
        return not self.failures

    async def _story(self) -> None:
        await self.cli("contracts", "load", str(CONTRACTS))
        await self.log(
            "3 contracts loaded: A=1001, B=1002, C=1003 (499.00 CZK a month, due on the 15th)"
        )
        out = await self.cli("invoicing", "run", "--period", "2026-12")
        self.chaos("billing-run")
        await self.quiet()
        for s in self.watcher.of("invoice.issued.v1"):
            self.invoices[s.event["subject"]] = s.event["data"]
        await self.log(f"billing run 2026-12: {len(self.invoices)} invoices issued")
        self.check(len(self.invoices) == 3 and "3 invoices issued" in out, "3 invoices issued")
        again = await self.cli("invoicing", "run", "--period", "2026-12")
        self.check("0 invoices issued" in again, "running the same month again issues nothing")
        a, b, c = (self.invoices[k] for k in ("1001", "1002", "1003"))
        await self.invoice_mails(
            {"alena@example.com": a, "ucetni@example.com": b, "cyril@example.com": c}
        )

        await self.advance_to(date(2026, 12, 10))
        self.chaos("payments-2026-12-10")
        await self.pay("1001", a["amount_minor"], a["ss"])
        await self.pay("1003", c["amount_minor"] - 100, c["ss"])
        await self.quiet()
        self.check(len(self.watcher.of("invoice.settled.v1", "1001")) == 1, "A's invoice settled")
        partial = self.watcher.of("invoice.partially_paid.v1", "1003")
        self.check(
            len(partial) == 1 and partial[0].event["data"]["remaining_minor"] == 100,
            "C partially paid, 1.00 CZK remaining",
        )
        await self.log("A settled; C partially paid (1.00 CZK open)")

        await self.advance_to(date(2026, 12, 18))
        self.check(
            len(self.watcher.of("reminder.requested.v1", "1002")) == 1, "B reminded (due + 3 days)"
        )
        self.check(
            len(self.watcher.of("reminder.requested.v1", "1003")) == 1, "C reminded (due + 3 days)"
        )
        self.check(
            self.mails("ucetni@example.com") == ["Připomínka neuhrazené faktury (1002)"],
            "B's reminder e-mailed to B's accountant (the dunning contact)",
        )
        self.check(
            self.mails("bohumil@example.com") == ["Připomínka neuhrazené faktury (1002)"],
            "B's owner gets dunning mail too",
        )
        self.check(
            self.mails("cyril@example.com") == ["Payment reminder (1003)"],
            "C's reminder e-mailed, in English",
        )
        await self.log("reminders: B and C (e-mail)")
        await self.zone_invite("1002", "bohumil@example.com")
        page = await self.zone_page("bohumil@example.com", "/situation")
        why = _text_of(page, "situation-why")
        self.check(
            "15. 12. 2026" in why and "499,00" in why and "upomínka" in page,
            "the zone's Access page shows B why: overdue since 15 December, 499.00, reminded",
        )
        await self.log(f"zone: B's owner logs in and reads why: {why}")

        await self.advance_to(date(2026, 12, 19))
        await self.pay("1003", 100, c["ss"])
        await self.quiet()
        self.check(
            len(self.watcher.of("invoice.settled.v1", "1003")) == 1,
            "C settled after paying the rest",
        )

        await self.advance_to(date(2026, 12, 22))
        second = self.watcher.of("reminder.requested.v1", "1002")
        self.check(
            len(second) == 2 and second[-1].event["data"]["channels"] == ["email", "sms"],
            "B's second reminder (due + 7 days), by e-mail and SMS",
        )
        await self.log("second reminder: B (e-mail and SMS)")

        await self.advance_to(date(2026, 12, 25))
        self.check(
            len(self.watcher.of("notice.requested.v1", "1002")) == 1,
            "B gets the notice (due + 10 days)",
        )
        self.check(self.access("1002")[-1:] == ["notice"], "B's access: notice (HTTP redirected)")
        await self.log("notice: B's browser is redirected to the notice page")
        page = await self.confirm_notice("127.0.100.2")
        self.check(
            "499,00" in page and b["ss"] in page and "1002" in page,
            "notice page shows the amount, VS and SS",
        )
        await self.quiet()
        self.check(
            len(self.watcher.of("notice.acknowledged.v1", "1002")) == 1, "B confirmed the notice"
        )
        self.check(self.access("1002")[-1:] == ["active"], "B's redirect lifted after confirming")
        await self.log("B confirms the notice (day X)")

        await self.advance_to(date(2027, 1, 3))
        self.check(
            not self.watcher.of("suspend.requested.v1", "1002"), "B not suspended before X+10"
        )
        await self.advance_to(date(2027, 1, 4))
        self.check(len(self.watcher.of("suspend.requested.v1", "1002")) == 1, "B suspended on X+10")
        self.check(self.access("1002")[-1:] == ["suspended"], "B's access: suspended")
        await self.log("B suspended (X+10)")

        page = await self.zone_page("bohumil@example.com", "/situation")
        code = _qr_payload(page)
        self.check(
            "pozastavený" in _text_of(page, "situation-stage")
            and code.get("AM") == f"{b['amount_minor'] / 100:.2f}"
            and (code.get("X-VS"), code.get("X-SS")) == ("1002", b["ss"]),
            "the zone shows B suspended, with a payment QR code of B's invoice (SPAYD)",
        )
        await self.log(
            f"zone: B's owner sees access suspended and pays by the QR code shown:"
            f" {code.get('AM')} CZK, VS {code.get('X-VS')}, SS {code.get('X-SS')}"
        )
        amount = round(float(code.get("AM", "0")) * 100)
        sent_at = await self.pay(code.get("X-VS", "1002"), amount, code.get("X-SS"))
        deadline = time.time() + 10
        restored_at = None
        while time.time() < deadline:
            states = self.watcher.of("network.access.v1", "1002")
            if (
                states
                and states[-1].event["data"]["state"] == "active"
                and states[-1].seen_at > sent_at
            ):
                restored_at = states[-1].seen_at
                break
            await asyncio.sleep(0.005)
        self.restore_delay = None if restored_at is None else restored_at - sent_at
        self.check(
            self.restore_delay is not None and self.restore_delay < 1.0,
            f"B restored within one second of the payment event "
            f"({(self.restore_delay or 0) * 1000:.0f} ms)",
        )
        await self.log(
            f"B restored, {(self.restore_delay or 0) * 1000:.0f} ms after the payment event"
        )
        await self.quiet()
        page = await self.zone_page("bohumil@example.com", "/situation")
        self.check(
            'id="situation-fine"' in page and "SPD*" not in page,
            "the zone's Access page shows B's access restored, nothing to pay",
        )
        await self.log("zone: B's owner sees access restored, nothing overdue")
        await self.advance_to(date(2027, 1, 10))

        self.check(self.mails("alena@example.com") == [], "A received nothing")
        self.check(len(self.mails("cyril@example.com")) == 1, "C received exactly one message")
        self.check(
            self.mails("ucetni@example.com")
            == [
                "Připomínka neuhrazené faktury (1002)",
                "Připomínka neuhrazené faktury (1002)",
                "Upozornění před pozastavením služby (1002)",
                "Služba pozastavena (1002)",
                "Služba obnovena (1002)",
            ],
            "B's accountant got two reminders, notice, suspension and restore, once each",
        )
        self.check(
            self.access("1001") == ["active"] and self.access("1003") == ["active"],
            "A's and C's access never changed",
        )
        self.check(
            self.access("1002") == ["active", "notice", "active", "suspended", "active"],
            "B's access: active, notice, active, suspended, active",
        )
        await self.credit_note(a)
        await self.write_documents()


def _attachments(received: Any) -> list[str]:
    return [str(p.get_filename()) for p in received.message.iter_attachments()]


_PRAGUE = __import__("zoneinfo").ZoneInfo("Europe/Prague")
ZONE_PASSWORD = "demo password 1002"
_ZONE_LINK = re.compile(r"(http://\S+/link/\S+)")


def _form_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', page)
    return found.group(1) if found else ""


def _text_of(page: str, element_id: str) -> str:
    """The text of the element with ``element_id`` (tags dropped, entities read)."""
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip() if found else ""


def _qr_payload(page: str) -> dict[str, str]:
    """The fields of the first payment QR code on a zone page (SPAYD: ``KEY:value``
    separated by ``*``), as a banking app reading the image would get them."""
    found = re.search(r'class="qr-payload">([^<]*)<', page)
    if not found:
        return {}
    fields = html.unescape(found.group(1)).split("*")[2:]
    return dict(f.split(":", 1) for f in fields if ":" in f)


def isolated_stack(run_dir: Path, database_url: str | None, bootstrap: str | None = None) -> Stack:
    """A stack on the test clock with its own broker (or the Kafka cluster ``bootstrap``
    names), run folder and free ports, so that it runs beside `make run` or another test
    without sharing anything."""
    shutil.rmtree(run_dir, ignore_errors=True)
    return Stack(
        StackConfig(
            run_dir=run_dir,
            database_url=database_url,
            bootstrap=bootstrap,
            test_clock=True,
            broker_ports=(free_port(), free_port(), free_port()),
            smtp_port=free_port(),
            notice_port=free_port(),
            zone_port=free_port(),
            metrics_ports={service: free_port() for service in SERVICES},
            log_level="info",
        )
    )


def demo_stack(run_dir: Path) -> Stack:
    """A fresh stack for one demo run: a new database on the configured server, or a new
    embedded PostgreSQL."""
    url = os.environ.get("BILLING_DATABASE_URL")
    if url:
        base, _, _ = url.rpartition("/")
        url = f"{base}/billing_demo_{uuid.uuid4().hex[:8]}"
    return isolated_stack(run_dir, url)


def main() -> int:
    started = time.monotonic()
    stack = demo_stack(ROOT / ".run" / "demo")
    print("starting the embedded stack (broker, PostgreSQL, SMTP sink, 5 workers) ...", flush=True)
    try:
        stack.start_infrastructure()
        stack.start_workers()
        scenario = Scenario(stack, out=lambda s: print(s, flush=True))
        ok = asyncio.run(scenario.run())
    finally:
        stack.stop()
        if stack.pg_server is None:  # a database we created on someone else's server
            asyncio.run(db.drop_database(stack.database_url))
    print()
    print(
        f"{'PASSED' if ok else 'FAILED'}: {len(scenario.failures)} failed checks, "
        f"{time.monotonic() - started:.0f} s; logs in {stack.cfg.run_dir / 'logs'}"
    )
    for f in scenario.failures:
        print(f"  failed: {f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
