"""Importing a CDR file: read (``cdr``), rate (``domain.rate``), record once, announce.

All in one transaction, so a file is imported whole or not at all:
1. claim the file by the SHA-256 of its bytes in ``imports``: a file imported before
   finds its row, and the import stops there, changing nothing;
2. COPY the rated calls into a temporary table and insert those whose call id is new
   (a call in two files is one call: the second file's copy is counted as "already");
3. COPY the refused lines into ``refused`` (each names file, line, column and value);
4. the new calls, per contract in parts of at most 1,000, as ``voip.calls_rated.v1`` to
   the outbox; the new prepaid calls deducted from their contract's credit
   (``service.change_credit``: ledger entries ``call:<id>``).
The voip worker's outbox relay publishes the events after the commit; an import retried
after a crash before the commit starts over, one after it changes nothing: each call is
announced once.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from schemas import events as ev
from schemas import pricelist
from services.runtime import audit, db
from services.runtime.clock import make_clock
from services.runtime.errors import BadConfig, BadInput
from services.runtime.unit import Unit
from services.voip import cdr, domain
from services.voip.service import SOURCE, Q, change_credit
from services.voip.settings import VoipSettings

SCHEMA = "voip"
CALL_COLUMNS = (
    "call_id", "import_id", "contract", "started_at", "seconds", "caller", "number",
    "destination", "prefix", "price_minor", "currency", "prepaid",
)  # fmt: skip
REFUSED_COLUMNS = ("import_id", "file", "line", "column", "value", "problem", "call_id")


@dataclass
class ImportReport:
    import_id: str
    file: str
    repeated: bool = False  # this very file was imported before: nothing changed
    lines: int = 0
    rated: int = 0  # new calls rated and recorded
    already: int = 0  # calls another import brought first
    skipped: Counter[str] = field(default_factory=Counter)  # not answered, 0 s, repeats
    refused: list[cdr.Refusal] = field(default_factory=list)
    events: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "import_id": self.import_id,
            "file": self.file,
            "repeated": self.repeated,
            "lines": self.lines,
            "rated": self.rated,
            "already": self.already,
            "skipped": dict(self.skipped),
            "refused": [
                {"line": r.line, "column": r.column, "value": r.value, "problem": r.problem}
                for r in self.refused
            ],
            "events": self.events,
        }


def pbx_zone(settings: VoipSettings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.voip_pbx_tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadConfig(
            f"BILLING_VOIP_PBX_TZ: expected a time zone like Europe/Prague, got"
            f" {settings.voip_pbx_tz!r}"
        ) from None


def price_list(settings: VoipSettings) -> pricelist.PriceList:
    path = settings.price_list_path()
    try:
        return pricelist.load(str(path))
    except pricelist.PriceListError as e:
        raise BadConfig(f"BILLING_VOIP_PRICE_LIST: {e}") from None
    except OSError as e:
        raise BadConfig(f"BILLING_VOIP_PRICE_LIST: {path}: {e.strerror}") from None


def read(data: bytes, file: str, fmt: str, tz: ZoneInfo, mapping: str | None) -> cdr.ParsedCdr:
    try:
        return cdr.parse(data, file, fmt, tz, cdr.load_mapping(mapping) if mapping else None)
    except cdr.CdrRejected as e:
        raise BadInput(str(e)) from None


async def record(
    conn: asyncpg.Connection,
    settings: VoipSettings,
    unit: Unit,
    import_id: str,
    file: str,
    fmt: str,
    parsed: cdr.ParsedCdr,
    prices: pricelist.PriceList,
    tz: ZoneInfo,
    retry: bool = False,
) -> ImportReport:
    """Steps 1-4 inside the caller's transaction (``unit`` is on ``conn``). ``retry``: a
    file imported before is rated again, for its refused lines whose cause is gone (a
    contract voip learnt since, a price added)."""
    report = ImportReport(import_id, file)
    if await conn.fetchval(Q.claim_import, import_id, file, fmt, unit.now) is None:
        if not retry:
            row = await conn.fetchrow(Q.import_of, import_id)
            report.repeated = True
            report.lines = row["lines"]
            return report
        # Its calls are recorded (counted as "already" below); its refused lines are
        # rated anew and, where still refused, recorded again.
        await conn.execute(Q.forget_refused, import_id)
    terms = {
        r["contract"]: domain.Terms(r["currency"].strip(), r["prepaid"])
        for r in await conn.fetch(Q.contract_terms)
    }
    rating = domain.rate(parsed, prices, terms, tz, settings.voip_country_prefix)
    await conn.execute(Q.calls_stage)
    await conn.copy_records_to_table(
        "calls_in",
        columns=CALL_COLUMNS,
        records=(
            (
                c.call_id,
                import_id,
                r.contract,
                c.started_at,
                c.seconds,
                c.caller,
                c.number,
                c.destination,
                c.prefix,
                c.price_minor,
                c.currency,
                c.prepaid,
            )
            for r in rating.rated
            for c in (r.call,)
        ),
    )
    new_ids = {row["call_id"] for row in await conn.fetch(Q.calls_insert_new)}
    new = [r for r in rating.rated if r.call.call_id in new_ids]
    if rating.refused:
        await conn.copy_records_to_table(
            "refused",
            columns=REFUSED_COLUMNS,
            records=[
                (import_id, file, r.line, r.column, r.value, r.problem, r.call_id)
                for r in rating.refused
            ],
        )
    for contract, parts in domain.events_of(new).items():
        for calls in parts:
            unit.emit(contract, ev.CallsRated(contract=contract, import_id=import_id, calls=calls))
            report.events += 1
    prepaid: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for r in new:
        if r.call.prepaid:
            key = (r.contract, r.call.currency)
            prepaid.setdefault(key, []).append((f"call:{r.call.call_id}", -r.call.price_minor))
    for (contract, currency), entries in sorted(prepaid.items()):
        await change_credit(unit, settings, contract, currency, entries, "calls")
    report.lines = parsed.lines
    report.rated = len(new)
    report.already = len(rating.rated) - len(new)
    report.skipped = Counter(parsed.skipped)
    if rating.duplicates:
        report.skipped["repeated in the file"] += rating.duplicates
    report.refused = rating.refused
    await conn.execute(
        Q.finish_import, import_id, report.lines, report.rated, report.already,
        sum(report.skipped.values()), len(report.refused),
    )  # fmt: skip
    return report


async def import_file(
    settings: VoipSettings,
    data: bytes,
    file: str,
    fmt: str = "asterisk-csv",
    mapping: str | None = None,
    operator: str | None = None,
    retry: bool = False,
) -> ImportReport:
    """Read and rate ``data`` (the file named ``file``), then record it in one transaction
    (the module's steps); an ``operator``'s import goes into the audit trail with it."""
    tz = pbx_zone(settings)
    prices = price_list(settings)
    parsed = read(data, file, fmt, tz, mapping)
    import_id = hashlib.sha256(data).hexdigest()
    await db.migrate(settings.database_url, SCHEMA)
    conn = await db.connect(settings.database_url, SCHEMA)
    try:
        clock = make_clock(settings)
        await clock.refresh(conn)
        async with conn.transaction():
            unit = Unit(conn, clock.now(), SOURCE)
            report = await record(
                conn, settings, unit, import_id, file, fmt, parsed, prices, tz, retry
            )
            if operator is not None and not report.repeated:
                details = {
                    "file": file, "import_id": import_id, "rated": report.rated,
                    "refused": len(report.refused),
                }  # fmt: skip
                await audit.record(conn, unit.now, operator, "voip-import", None, details)
            await unit.flush()
        return report
    finally:
        await conn.close()
