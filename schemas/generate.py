"""Generate JSON Schema for every event type and the AsyncAPI document of the topics.

    python -m schemas.generate          write schemas/json/*.json and schemas/asyncapi.json
A test fails when the files on disk differ from what this would write.
"""

from __future__ import annotations

import json
import re
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


SERVICES_DIR = HERE.parent / "services"
# services/runtime/settings.py's defaults (schemas imports nothing from services)
PARTITIONS, REPLICAS = 4, 1
KEY = {"type": "string", "description": "the contract number"}
RECEIVED_KEY = {
    "type": "string",
    "description": "the payment's variable symbol (VS), or its bank transaction id without one",
}
ACCOUNT_KEY = {"type": "string", "description": "the bank account the statement is of"}
PARTITIONER = (
    "Records are keyed (see each message's Kafka binding) and partitioned by murmur2 of the"
    " key, as the Java client's default partitioner and aiokafka do: every event of one"
    " contract lands on one partition, in order. A third-party producer must partition the"
    " same way: librdkafka's default (`consistent_random`, CRC32) puts most keys on another"
    " partition than ours, so set `partitioner=murmur2_random` (confluent-kafka, rdkafka,"
    " kcat -X partitioner=murmur2_random)."
)


def _models_in(path: Path) -> set[str]:
    return set(
        re.findall(r"\b([A-Z][A-Za-z]+)(?:\(|\.model_validate)", path.read_text(encoding="utf-8"))
    )


def produced_by() -> dict[str, set[str]]:
    """Event type -> the services (folders of services/) whose code builds its model: the
    producers, read from the source as text (schemas imports nothing from services)."""
    names = {model.__name__: t for t, model in EVENT_TYPES.items()}
    found: dict[str, set[str]] = {t: set() for t in EVENT_TYPES}
    for path in sorted(SERVICES_DIR.glob("*/**/*.py")):
        service = path.relative_to(SERVICES_DIR).parts[0]
        if service in ("runtime", "devstack"):
            continue
        for name in _models_in(path) & set(names):
            found[names[name]].add(service)
    return found


def consumed_by() -> dict[str, set[str]]:
    """Event type -> the workers that subscribe to it (``ev.Model:`` keys of the
    ``subscriptions`` in services/<name>/worker.py and the modules it spreads in)."""
    names = {model.__name__: t for t, model in EVENT_TYPES.items()}
    found: dict[str, set[str]] = {t: set() for t in EVENT_TYPES}
    # the gear adapter, no worker: it reads what it checks records for (isinstance)
    for path in sorted(SERVICES_DIR.glob("gear/*.py")):
        for name in set(re.findall(r"isinstance\(\w+, ([A-Z][A-Za-z]+)\)", path.read_text())):
            if name in names:
                found[names[name]].add("gear")
    for worker in sorted(SERVICES_DIR.glob("*/worker.py")):
        text = worker.read_text(encoding="utf-8")
        subscribed = set(re.findall(r"ev\.([A-Z][A-Za-z]+)\s*:", text))
        # a KINDS tuple spread into the subscriptions (notify's dunning requests)
        if "**dict.fromkeys(KINDS" in text:
            subscribed |= set(re.findall(r"ev\.([A-Z][A-Za-z]+)", _kinds(worker.parent)))
        for name in subscribed & set(names):
            found[names[name]].add(worker.parent.name)
    return found


def _kinds(folder: Path) -> str:
    text = "".join(p.read_text(encoding="utf-8") for p in folder.glob("*.py"))
    match = re.search(r"\nKINDS[^=]*=\s*[({]([^)}]*)[)}]", text)
    return match.group(1) if match else ""


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    producers, consumers = produced_by(), consumed_by()
    for setting, types in TOPIC_EVENTS.items():
        topic = DEFAULT_TOPICS[setting]
        refs = {}
        for t in types:
            name = t.replace(".", "_")
            key = {"payment.received.v1": RECEIVED_KEY, "bank_statement.imported.v1": ACCOUNT_KEY}
            messages[name] = {
                "name": t,
                "contentType": "application/cloudevents+json",
                "payload": {"$ref": f"json/{t}.json"},
                "bindings": {"kafka": {"key": key.get(t, KEY), "bindingVersion": "0.5.0"}},
            }
            refs[name] = {"$ref": f"#/components/messages/{name}"}
        channels[setting] = {
            "address": topic,
            "description": f"Kafka topic (setting BILLING_TOPIC_{setting.upper()}); key: contract"
            " number" + (" (VS or bank transaction id)" if setting == "payments_received" else ""),
            "messages": refs,
            "bindings": {
                "kafka": {
                    "topic": topic,
                    "partitions": PARTITIONS,
                    "replicas": REPLICAS,
                    "bindingVersion": "0.5.0",
                }
            },
        }
        for action, by in (("send", producers), ("receive", consumers)):
            for service in sorted({s for t in types for s in by[t]}):
                ops = [t for t in types if service in by[t]]
                op: dict[str, Any] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{setting}"},
                    "summary": f"{service} {action}s {', '.join(ops)}",
                    "messages": [
                        {"$ref": f"#/channels/{setting}/messages/{t.replace('.', '_')}"}
                        for t in ops
                    ],
                }
                if action == "receive":
                    op["bindings"] = {
                        "kafka": {
                            "groupId": {
                                "type": "string",
                                "const": f"billing-{service}",
                                "description": "BILLING_GROUP_PREFIX-<service>",
                            },
                            "bindingVersion": "0.5.0",
                        }
                    }
                operations[f"{service}_{action}_{setting}"] = op
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ISP billing and dunning events",
            "version": "1.0.0",
            "description": PARTITIONER,
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "production": {
                "host": "kafka.isp.example:9093",
                "protocol": "kafka",
                "description": "The production Kafka cluster (BILLING_KAFKA_BOOTSTRAP_SERVERS)."
                " Clients connect with TLS and SASL (SCRAM-SHA-512), each service with a principal"
                " of its own allowed only its topics (docs/kafka.md); the address here is an"
                " example.",
                "security": [{"$ref": "#/components/securitySchemes/sasl_scram"}],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "securitySchemes": {
                "sasl_scram": {
                    "type": "scramSha512",
                    "description": "SASL/SCRAM-SHA-512 over TLS (BILLING_KAFKA_SECURITY_PROTOCOL"
                    "=SASL_SSL)",
                }
            },
        },
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
