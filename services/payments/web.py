"""HTTP for operators, on the payments worker's metrics port:

GET  /unmatched                        the queue (JSON)
GET  /movements/{account}/{bank_tx_id} one movement and the rule that decided it
POST /unmatched/assign                 {"account", "bank_tx_id", "contract",
                                        "invoice_number"?, "note"?, "remember_payer"?}
Every one needs an operator token (services/runtime/auth.py, the worker's guard); the
assignment is recorded as the token's operator's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.payments import queue
from services.payments.service import Payments
from services.runtime.auth import OPERATOR
from services.runtime.unit import Unit
from services.runtime.worker import Runtime


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def routes(rt: Runtime, app: web.Application, payments: Payments) -> None:
    async def list_unmatched(request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "500"))
        except ValueError:
            return _bad("limit: expected an integer")
        async with rt.db.acquire() as conn:
            return web.json_response(await queue.unmatched(conn, max(1, min(limit, 10000))))

    async def movement(request: web.Request) -> web.Response:
        async with rt.db.acquire() as conn:
            try:
                found = await queue.explain(
                    conn, request.match_info["account"], request.match_info["bank_tx_id"]
                )
            except queue.AssignError as e:
                return _bad(str(e), 404)
        return web.json_response(found)

    async def assign(request: web.Request) -> web.Response:
        operator = request[OPERATOR]
        try:
            body: Any = await request.json()
        except ValueError:
            return _bad("body: expected JSON")
        if not isinstance(body, dict):
            return _bad("body: expected a JSON object")
        missing = [k for k in ("account", "bank_tx_id", "contract") if not body.get(k)]
        if missing:
            return _bad(f"missing: {', '.join(missing)}")
        if body.get("operator") not in (None, operator):
            return _bad(f"operator: this token is {operator}'s, not {body['operator']!r}", 403)
        async with rt.db.acquire() as conn, conn.transaction():
            await rt.clock.refresh(conn)
            unit = Unit(conn, rt.clock.now(), f"/services/{rt.service}")
            try:
                result = await queue.assign(
                    payments,
                    unit,
                    str(body["account"]),
                    str(body["bank_tx_id"]),
                    str(body["contract"]),
                    body.get("invoice_number"),
                    operator,
                    body.get("note"),
                    bool(body.get("remember_payer", False)),
                )
            except queue.AssignError as e:
                return _bad(str(e), 409)
            await unit.flush()
        return web.json_response(result)

    app.router.add_get("/unmatched", list_unmatched)
    app.router.add_get("/movements/{account}/{bank_tx_id}", movement)
    app.router.add_post("/unmatched/assign", assign)
