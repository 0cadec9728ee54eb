"""Handlers take typed runs (issue 28 item 1); events carry their type and topic (item 2).

A handler is called once per run of consecutive events of its own and sees each of them
once, typed by the models it is registered for; an event's type and topic are its model's,
never a string a service writes."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import types
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from schemas import events as ev
from schemas.envelope import envelope
from schemas.registry import EVENT_TYPES, ROUTES, TOPIC_EVENTS, type_of
from services.runtime.clock import make_clock
from services.runtime.outbox import Outbox
from services.runtime.runs import Run, handle, runs
from services.runtime.settings import Topics
from services.runtime.unit import Unit
from services.runtime.worker import Runtime, topics_of
from services.workers import SERVICES

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _ack(contract: str) -> tuple[Any, ev.NoticeAcknowledged]:
    data = ev.NoticeAcknowledged(
        contract=contract, acknowledged_at=NOW, address="127.0.0.1", user_agent=None
    )
    return envelope("notice.acknowledged.v1", "/test", contract, data, NOW), data


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def on_a(self, unit: Unit, run: Run[ev.NoticeAcknowledged]) -> None:
        self.calls.append(("a", [d.contract for d in run]))

    async def on_b(self, unit: Unit, run: Run[ev.NoticeAcknowledged]) -> None:
        self.calls.append(("b", [d.contract for d in run]))


def test_each_run_of_one_handler_is_one_call_and_each_event_is_applied_once() -> None:
    """Consecutive events of one handler (a bound method taken afresh for each counts as
    the same handler) make one run; another handler between them ends it. Every event is
    in exactly one run, in order: nothing a handler could forget to skip."""
    r = Recorder()
    events = [_ack(str(1000 + i)) for i in range(6)]
    owners = [r.on_a, r.on_a, r.on_b, r.on_a, r.on_a, r.on_a]  # each access a new object
    items = [(h, e, d) for h, (e, d) in zip(owners, events, strict=True)]
    asyncio.run(handle(Unit(None, NOW, "/test"), items))  # type: ignore[arg-type]
    assert r.calls == [("a", ["1000", "1001"]), ("b", ["1002"]), ("a", ["1003", "1004", "1005"])]
    grouped = runs(items)
    assert [len(run) for _, run in grouped] == [2, 1, 3]
    assert [e for _, run in grouped for e in run.events] == [e for e, _ in events]


def test_a_run_keeps_each_event_beside_its_data() -> None:
    (e1, d1), (e2, d2) = _ack("1001"), _ack("1002")
    run = Run([e1, e2], [d1, d2])
    assert list(run.pairs()) == [(e1, d1), (e2, d2)] and list(run) == [d1, d2]
    assert list(Run.of(e1, d1).pairs()) == [(e1, d1)]
    with pytest.raises(ValueError, match="a run of 2 events with 1 envelopes"):
        Run([e1], [d1, d2])


def _models(annotation: Any) -> set[type[BaseModel]]:
    """The models of ``Run[M]`` or ``Run[M1 | M2 ...]``."""
    assert typing.get_origin(annotation) is Run, annotation
    (inner,) = typing.get_args(annotation)
    if typing.get_origin(inner) in (typing.Union, types.UnionType):
        return set(typing.get_args(inner))
    return {inner}


@pytest.mark.parametrize("service", SERVICES)
def test_every_handler_is_typed_for_exactly_the_models_it_is_registered_for(
    service: str,
) -> None:
    """Registered by model, a handler's ``run`` is typed by the same models: one
    registered for a model it does not declare, or declaring one it never gets, fails.
    The topics the service reads are those its models travel on."""
    spec = importlib.import_module(f"services.{service}.worker").SPEC
    settings = spec.settings(environment="development")
    handlers = spec.subscriptions(Runtime(service, settings, Topics(), make_clock(settings)))
    assert handlers and set(handlers) <= set(EVENT_TYPES.values())
    for handler in set(handlers.values()):
        hints = typing.get_type_hints(handler)
        assert list(hints)[:2] == ["unit", "run"] and hints["unit"] is Unit, handler
        registered = {m for m, h in handlers.items() if h == handler}
        assert _models(hints["run"]) == registered, handler
    topics = Topics()
    expected = {
        getattr(topics, name) for name, ts in TOPIC_EVENTS.items() for t in ts
        if EVENT_TYPES[t] in handlers
    }  # fmt: skip
    assert set(topics_of(handlers, topics)) == expected


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_an_event_goes_with_its_model_s_type_on_its_model_s_topic(type_: str) -> None:
    """For every model the registry knows: the outbox row's topic (the settings' name, or
    the one a caller's ``Topics`` gives) and type, and the envelope's type."""
    model = EVENT_TYPES[type_]
    (setting,) = [name for name, ts in TOPIC_EVENTS.items() if type_ in ts]
    assert ROUTES[model] == (type_, setting) and type_of(model) == type_
    for topics in (Topics(), Topics(**{setting: f"elsewhere.{setting}"})):
        outbox = Outbox("/test", topics)
        outbox.add_json(NOW, model, "1001", b"{}")
        ((topic, key, value, _, event_type),) = outbox
        assert (topic, key, event_type) == (getattr(topics, setting), b"1001", type_)
        assert json.loads(value)["type"] == type_


def test_no_service_names_an_event_type_or_its_topic_to_emit() -> None:
    """The type of an event a service writes, handles or publishes is its model's: no
    service module spells one (``"invoice.issued.v1"``). The demo's script reads events
    back by type to check the story; it writes none but through ``event_of``."""
    literal = re.compile(r"""["'][a-z_]+\.[a-z_.]+\.v[0-9]+["']""")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "services").rglob("*.py"))
        if path.name != "demo.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert found == []
