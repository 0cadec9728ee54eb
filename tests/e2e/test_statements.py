"""Bank statements through the running system: `billing import-statement` pairs by symbols
and by message, the unmatched queue is worked over HTTP, a re-import publishes nothing, and
a reversal opens the invoice again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from services.devstack.demo import CONTRACTS, START, Scenario
from services.devstack.stack import Stack
from services.runtime import db
from services.runtime.clock import set_clock

pytestmark = pytest.mark.e2e
ACCOUNT = "CZ1520100000002001234561"


def camt(entries: list[str]) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
<GrpHdr><MsgId>e2e</MsgId><CreDtTm>2026-12-10T01:00:00</CreDtTm></GrpHdr>
<Stmt><Id>e2e</Id><Acct><Id><IBAN>{ACCOUNT}</IBAN></Id><Ccy>CZK</Ccy></Acct>
{"".join(entries)}
</Stmt></BkToCstmrStmt></Document>"""


def entry(
    ref: str,
    amount: str,
    sign: str,
    e2e: str = "",
    refs: str = "",
    payer: str = "",
    message: str = "",
) -> str:
    return f"""<Ntry><NtryRef>{ref}</NtryRef><Amt Ccy="CZK">{amount}</Amt>
<CdtDbtInd>{sign}</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>2026-12-10</Dt></BookgDt>
<NtryDtls><TxDtls><Refs><AcctSvcrRef>{ref}</AcctSvcrRef>
<EndToEndId>{e2e or "NOTPROVIDED"}</EndToEndId></Refs>
<RltdPties><DbtrAcct><Id><Othr><Id>{payer or "19-19"}</Id></Othr></Id></DbtrAcct></RltdPties>
<RmtInf><Ustrd>{message}</Ustrd><Strd><CdtrRefInf><Ref>{refs}</Ref></CdtrRefInf></Strd></RmtInf>
</TxDtls></NtryDtls></Ntry>"""


async def statuses(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT contract, status FROM invoicing.invoices")
        return {r["contract"]: r["status"] for r in rows}
    finally:
        await conn.close()


def test_statement_import_pairs_queue_and_reversal(stack: Stack, tmp_path: Path) -> None:
    asyncio.run(_story(stack, tmp_path))


async def _story(stack: Stack, tmp: Path) -> None:
    sc = Scenario(stack)
    conn = await db.connect(sc.settings.database_url)
    try:
        await set_clock(conn, START)
    finally:
        await conn.close()
    await sc.cli("contracts", "load", str(CONTRACTS))
    await sc.cli("invoicing", "run", "--period", "2026-12")
    await sc.quiet()
    conn = await asyncpg.connect(stack.database_url)
    try:
        ss = {
            r["contract"]: r["ss"]
            for r in await conn.fetch("SELECT contract, ss FROM invoicing.invoices")
        }
    finally:
        await conn.close()

    first = tmp / "day1.xml"
    first.write_text(
        camt(
            [
                # 1001 pays by VS and SS
                entry("A", "499.00", "CRDT", e2e="1001", refs=f"SS:{ss['1001']}"),
                # 1002 types no symbols, but the invoice number into the message
                entry("B", "499.00", "CRDT", message=f"faktura {ss['1002']}"),
                # 1003's payer gives nothing usable: the operators' queue
                entry("C", "499.00", "CRDT", payer="51-1234562/0100", message="internet"),
            ]
        ),
        encoding="utf-8",
    )
    out = await sc.cli("import-statement", str(first))
    assert "3 movements parsed, 3 new" in out
    await sc.quiet()
    assert await statuses(stack.database_url) == {"1001": "paid", "1002": "paid", "1003": "issued"}
    assert "0 new, 3 already imported" in await sc.cli("import-statement", str(first))

    base = f"http://127.0.0.1:{stack.metrics_port('payments')}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/unmatched") as resp:
            assert resp.status == 401  # operators only, reads too
    async with aiohttp.ClientSession(headers=stack.operator_headers()) as http:
        async with http.get(f"{base}/unmatched") as resp:
            queue = await resp.json()
        assert [(q["bank_tx_id"], q["reason_code"]) for q in queue] == [("C", "no-symbols")]
        body = {
            "account": ACCOUNT,
            "bank_tx_id": "C",
            "contract": "1003",
            "note": "customer called",
            "remember_payer": True,
        }
        async with http.post(f"{base}/unmatched/assign", json=body) as resp:
            assert resp.status == 200, await resp.text()
        async with http.post(f"{base}/unmatched/assign", json=body) as resp:
            assert resp.status == 409  # not unmatched any more
        async with http.get(f"{base}/movements/{ACCOUNT}/B") as resp:
            assert (await resp.json())["rule"] == "message-invoice"
    await sc.quiet()
    assert (await statuses(stack.database_url))["1003"] == "paid"

    # The bank returns A's payment: 1001 owes again.
    second = tmp / "day2.xml"
    second.write_text(camt([entry("A-R", "499.00", "DBIT", e2e="1001")]), encoding="utf-8")
    await sc.cli("import-statement", str(second))
    await sc.quiet()
    assert (await statuses(stack.database_url))["1001"] == "issued"
