"""The project's Kafka clients as production connects them: TLS and SCRAM-SHA-512.

One Apache Kafka node whose CLIENT listener is SASL_SSL (services/devstack/kafka.py,
ClientSecurity), with a certificate for 127.0.0.1 from a CA made here with openssl. The
workers, the CLI and the test's own clients are configured by BILLING_KAFKA_* alone
(kafka_client.client_options): a payment settles an invoice only if invoice.issued went
from invoicing to payments and invoice.settled back over that listener. The listener in
turn refuses a client without credentials, with a wrong password, or not trusting its CA;
each refusal is told by its reason, which a PLAINTEXT broker would not give.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from services.devstack import kafka
from services.devstack.demo import CONTRACTS, START, Scenario, isolated_stack
from services.devstack.stack import Stack
from services.runtime import db
from services.runtime.clock import set_clock
from services.runtime.kafka_client import client_options
from services.runtime.settings import Settings
from tests.conftest import unavailable

USER = "billing"
# a comma and quotes: Kafka's format tool would split or strip them (kafka.ClientSecurity)
PASSWORD = 'scram,"pass"=word'


@dataclass(frozen=True)
class Secured:
    bootstrap: str
    cafile: Path
    password_file: Path

    def env(self) -> dict[str, str]:
        """What an operator puts in billing.env: the password stays in its file."""
        return {
            "BILLING_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "BILLING_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "BILLING_KAFKA_SASL_USERNAME": USER,
            "BILLING_KAFKA_SASL_PASSWORD_FILE": str(self.password_file),
            "BILLING_KAFKA_SSL_CAFILE": str(self.cafile),
        }

    def settings(self, **changes: Any) -> Settings:
        """The production settings, or a client that got some of them wrong."""
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": self.bootstrap,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_username": USER,
            "kafka_sasl_password_file": self.password_file,
            "kafka_ssl_cafile": self.cafile,
        }
        return Settings(**(values | changes))


def openssl(cwd: Path, *args: str) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr}")


def make_keystore(d: Path) -> Path:
    """A CA (ca.pem) and the broker's PEM keystore: its PKCS#8 key (genpkey writes no
    other form), then its certificate for IP 127.0.0.1, the name clients check, then the
    CA, in one file as ``ssl.keystore.type=PEM`` reads it."""
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=billing test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl(d, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", "server.key")  # fmt: skip
    openssl(d, "req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "server.ext",
            "-out", "server.pem")  # fmt: skip
    keystore = d / "keystore.pem"
    parts = ("server.key", "server.pem", "ca.pem")
    keystore.write_text("".join((d / f).read_text() for f in parts))
    return keystore


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    if shutil.which("openssl") is None:
        unavailable("no openssl on PATH (make system-deps)", "the SASL_SSL test")
    if not kafka.available():
        unavailable("no Java or Maven for Apache Kafka (make system-deps)", "the SASL_SSL test")
    d = tmp_path_factory.mktemp("sasl-ssl")
    keystore = make_keystore(d)
    password_file = d / "kafka.password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    security = kafka.ClientSecurity(keystore_pem=keystore, users={USER: PASSWORD})
    cluster = kafka.cluster(d / "kafka", kafka.free_ports(1), security=security).start()
    try:
        yield Secured(cluster.bootstrap, d / "ca.pem", password_file)
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: the runner's own BILLING_KAFKA_* must not leak in."""
    for name in os.environ:
        if name.startswith("BILLING_KAFKA_"):
            monkeypatch.delenv(name)


async def pay_one_invoice(stack: Stack) -> tuple[str | None, bool | None]:
    """Contracts loaded and December billed by the CLI; the payments worker learns the
    invoice from invoice.issued; the bank's payment of it published; what invoicing and
    payments then hold of it."""
    scenario = Scenario(stack, out=lambda _: None)
    conn = await db.connect(stack.database_url)
    try:
        await set_clock(conn, START)
        await scenario.cli("contracts", "load", str(CONTRACTS))
        await scenario.cli("invoicing", "run", "--period", "2026-12")
        await scenario.quiet(timeout=60)
        known = await conn.fetchrow(
            "SELECT amount_minor, ss FROM payments.invoices WHERE contract = '1001'"
        )
        assert known is not None, "payments never read invoice.issued of 1001"
        await scenario.pay("1001", known["amount_minor"], known["ss"])
        await scenario.quiet(timeout=60)
        status = await conn.fetchval(
            "SELECT status FROM invoicing.invoices WHERE contract = '1001'"
        )
        settled = await conn.fetchval(
            "SELECT settled FROM payments.invoices WHERE contract = '1001'"
        )
        return status, settled
    finally:
        await conn.close()


def test_a_payment_settles_an_invoice_over_sasl_ssl(
    secured: Secured, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in secured.env().items():
        monkeypatch.setenv(name, value)  # Stack.env() hands them to the workers and the CLI
    stack = isolated_stack(tmp_path / "run", database_url, bootstrap=secured.bootstrap)
    try:
        stack.start_infrastructure()  # topics created by the admin client, over SASL_SSL
        stack.start_workers()
        assert asyncio.run(pay_one_invoice(stack)) == ("paid", True)
    finally:
        stack.stop()


async def refusal(settings: Settings, caplog: pytest.LogCaptureFixture) -> str:
    """Why the broker turned the client away: aiokafka raises only that it could not
    bootstrap and logs the reason."""
    caplog.clear()
    producer = AIOKafkaProducer(**client_options(settings), request_timeout_ms=10000)
    try:
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
            await asyncio.wait_for(producer.start(), 20)
    finally:
        await producer.stop()
    return caplog.text


async def accepted(settings: Settings) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    try:
        await asyncio.wait_for(producer.start(), 20)
        await asyncio.wait_for(producer.send_and_wait("sasl-ssl-check", b"ok"), 20)
    finally:
        await producer.stop()


def test_the_listener_refuses_wrong_credentials_and_an_untrusted_ca(
    secured: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    plaintext = Settings(kafka_bootstrap_servers=secured.bootstrap)
    tls_only = Settings(
        kafka_bootstrap_servers=secured.bootstrap,
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=secured.cafile,
    )
    wrong = secured.settings(kafka_sasl_password_file=None, kafka_sasl_password="pass=word")
    system_cas = secured.settings(kafka_ssl_cafile=None)

    async def run() -> None:
        await accepted(secured.settings())  # the right client gets in: the port is up
        closed = f"Connection at {secured.bootstrap} closed"
        with caplog.at_level(logging.WARNING, logger="aiokafka"):
            assert closed in await refusal(plaintext, caplog)  # not TLS: hung up on
            assert closed in await refusal(tls_only, caplog)  # TLS, but no SASL handshake
            why = await refusal(wrong, caplog)
            assert "SaslAuthenticationFailed" in why and "invalid credentials" in why
            assert "CERTIFICATE_VERIFY_FAILED" in await refusal(system_cas, caplog)

    asyncio.run(run())
