"""Generate JSON Schema for every event type and the AsyncAPI document of the topics.

    python -m schemas.generate          write schemas/json/*.json and schemas/asyncapi.json
A test fails when the files on disk differ from what this would write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.envelope import CloudEvent
from schemas.registry import EVENT_TYPES, TOPIC_EVENTS

HERE = Path(__file__).parent
JSON_DIR = HERE / "json"

DEFAULT_TOPICS = {
    "contracts": "billing.contracts",
    "invoices": "billing.invoices",
    "payments_received": "payments.received",
    "payments": "billing.payments",
    "dunning": "billing.dunning",
    "notices": "billing.notices",
    "network_access": "network.access",
    "network_applied": "network.applied",
    "notifications": "billing.notifications",
    "documents": "billing.documents",
    "topups": "billing.topups",
    "zone": "billing.zone",
    "traffic_counters": "usage.traffic.counters",
    "traffic": "usage.traffic",
    "voip": "usage.voip",
}


def event_schema(type_: str) -> dict[str, Any]:
    envelope = CloudEvent.model_json_schema()
    data = EVENT_TYPES[type_].model_json_schema()
    envelope["title"] = type_
    envelope["properties"]["type"] = {"const": type_}
    envelope["properties"]["data"] = {"$ref": "#/$defs/Data"}
    defs = data.pop("$defs", {})
    envelope["$defs"] = {**defs, "Data": data}
    envelope["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return envelope


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for setting, types in TOPIC_EVENTS.items():
        topic = DEFAULT_TOPICS[setting]
        refs = {}
        for t in types:
            name = t.replace(".", "_")
            messages[name] = {
                "name": t,
                "contentType": "application/cloudevents+json",
                "payload": {"$ref": f"json/{t}.json"},
            }
            refs[name] = {"$ref": f"#/components/messages/{name}"}
        channels[setting] = {
            "address": topic,
            "description": f"Kafka topic (setting BILLING_TOPIC_{setting.upper()}); key: contract"
            " number" + (" (VS or bank transaction id)" if setting == "payments_received" else ""),
            "messages": refs,
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "ISP billing and dunning events", "version": "1.0.0"},
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "components": {"messages": messages},
    }


def render() -> dict[Path, str]:
    files = {
        JSON_DIR / f"{t}.json": json.dumps(event_schema(t), indent=2, ensure_ascii=False) + "\n"
        for t in EVENT_TYPES
    }
    files[HERE / "asyncapi.json"] = json.dumps(asyncapi(), indent=2, ensure_ascii=False) + "\n"
    return files


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for stale in set(JSON_DIR.glob("*.json")) - set(render()):
        stale.unlink()
    for path, text in render().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
