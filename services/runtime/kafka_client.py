"""What every Kafka client of the project shares: how it connects (``client_options``) and
how it learns a topic's partitions."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from services.runtime.errors import Unavailable
from services.runtime.settings import Settings, Topics, env_name


def client_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every producer, consumer and admin client of the project is
    made with: the brokers and, past PLAINTEXT, the TLS context and SASL credentials of
    ``BILLING_KAFKA_*``. PLAINTEXT gives the brokers alone, so those clients are made as
    they were before there was anything else to give."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap_servers.split(",")}
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return options
    options["security_protocol"] = protocol
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = tls_context(settings)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_secret()
    return options


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The brokers' certificates checked against ``kafka_ssl_cafile`` (else the system's
    CAs), host names included; the client's own certificate for mutual TLS. A file that
    is not PEM, or a key that does not match its certificate, is named with its setting
    here rather than left to an OpenSSL message about neither."""
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
    except (OSError, ssl.SSLError) as exc:
        files = [
            f"{env_name(name)}={getattr(settings, name)}"
            for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
            if getattr(settings, name) is not None
        ]
        named = ", ".join(files) or "the system's CAs"
        raise ValueError(f"Kafka TLS files ({named}) cannot be loaded: {exc}") from exc
    return context


async def partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str], timeout: float = 30.0
) -> list[TopicPartition]:
    """Every partition of ``topics``, in order. A topic created moments ago may not be in
    the metadata yet (Kafka's brokers learn of it from the controller a little later), so
    the metadata is asked again until each topic has its partitions; TimeoutError names
    those still unknown."""
    wanted = list(dict.fromkeys(topics))
    deadline = time.monotonic() + timeout
    while True:
        missing = [t for t in wanted if not consumer.partitions_for_topic(t)]
        if not missing:
            return [
                TopicPartition(t, p)
                for t in wanted
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics unknown to the broker after {timeout:.0f} s: {missing}")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.05)


class BrokerUnavailable(Unavailable):
    """The cluster did not answer a command-line client in time; the message names it
    (exit 69)."""


async def start_producer(producer: AIOKafkaProducer, settings: Settings, who: str) -> None:
    """Start ``producer`` or say why not within ``kafka_connect_timeout``. Without a
    quorum (or with a broker that accepts a connection and never answers) an idempotent
    producer's start waits for its producer id forever; a person at a terminal gets a
    sentence naming the cluster instead, and the producer is closed."""
    timeout = settings.kafka_connect_timeout
    where = f"Kafka at {settings.kafka_bootstrap_servers}"
    try:
        await asyncio.wait_for(producer.start(), timeout)
    except (TimeoutError, KafkaError) as exc:
        with contextlib.suppress(Exception):
            await producer.stop()
        why = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else str(exc)
        raise BrokerUnavailable(
            f"{who}: {where} is not reachable ({why}; {env_name('kafka_connect_timeout')})"
        ) from exc


async def create_topics(settings: Settings, topics: Topics) -> list[str]:
    """Create the topics of ``topics`` and their ``.dlq`` twins that the cluster lacks
    (``billing topics``, the dev stack); return the names created."""
    names = topics.all()
    names += [Topics.dlq(t) for t in names]
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(n, settings.topic_partitions, settings.topic_replication_factor)
                    for n in missing
                ]
            )
        return missing
    finally:
        await admin.close()
