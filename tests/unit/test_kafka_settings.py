"""The BILLING_KAFKA_* connection settings: what client_options gives every Kafka client,
and that a wrong or incomplete combination is refused at start with the variable named,
never silently run as PLAINTEXT or without the credentials the operator meant to set."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import certifi
import pytest
from pydantic import ValidationError

from services.runtime.kafka_client import client_options
from services.runtime.settings import Settings


@pytest.fixture(autouse=True)
def no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: the runner's own BILLING_KAFKA_* must not leak in."""
    for name in os.environ:
        if name.startswith("BILLING_KAFKA_"):
            monkeypatch.delenv(name)


def env(monkeypatch: pytest.MonkeyPatch, **values: str | Path) -> Settings:
    for name, value in values.items():
        monkeypatch.setenv(f"BILLING_KAFKA_{name.upper()}", str(value))
    return Settings()


def test_plaintext_gives_the_brokers_alone() -> None:
    settings = Settings(kafka_bootstrap_servers="10.0.0.1:9092,10.0.0.2:9092")
    assert client_options(settings) == {"bootstrap_servers": ["10.0.0.1:9092", "10.0.0.2:9092"]}


def test_sasl_ssl_with_a_password_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "kafka.password"
    secret.write_text("s3,c'r=t\n")  # as `echo` writes it
    settings = env(
        monkeypatch,
        bootstrap_servers="kafka1:9093,kafka2:9093",
        security_protocol="SASL_SSL",
        sasl_username="billing",
        sasl_password_file=secret,
        ssl_cafile=certifi.where(),
    )
    options = client_options(settings)
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": ["kafka1:9093", "kafka2:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "billing",
        "sasl_plain_password": "s3,c'r=t",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) > 10  # the bundle, not an empty store


def test_sasl_plaintext_has_no_tls_and_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = env(
        monkeypatch,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="billing",
        sasl_password="hunter2",
    )
    options = client_options(settings)
    assert "ssl_context" not in options
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["sasl_plain_password"] == "hunter2"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"security_protocol": "SASL_SSL", "sasl_password": "x"},
            "BILLING_KAFKA_SASL_USERNAME is required by BILLING_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "billing"},
            "exactly one of BILLING_KAFKA_SASL_PASSWORD_FILE or BILLING_KAFKA_SASL_PASSWORD",
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_username": "billing",
                "sasl_password": "x",
                "sasl_password_file": "{tmp}/password",
            },
            "exactly one of BILLING_KAFKA_SASL_PASSWORD_FILE or BILLING_KAFKA_SASL_PASSWORD",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "billing", "sasl_password": ""},
            "BILLING_KAFKA_SASL_PASSWORD is empty",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_username": "billing",
                "sasl_password_file": "{tmp}/missing",
            },
            "BILLING_KAFKA_SASL_PASSWORD_FILE={tmp}/missing: cannot be read",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_username": "billing",
                "sasl_password_file": "{tmp}/empty",
            },
            "BILLING_KAFKA_SASL_PASSWORD_FILE={tmp}/empty: the file is empty",
        ),
        (
            {"sasl_username": "billing", "sasl_password": "x"},
            "BILLING_KAFKA_SASL_USERNAME, BILLING_KAFKA_SASL_PASSWORD set, but "
            "BILLING_KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses none of it",
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_username": "billing",
                "sasl_password": "x",
                "ssl_cafile": "{tmp}/password",
            },
            "BILLING_KAFKA_SSL_CAFILE set, but BILLING_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT",
        ),
        (
            {"security_protocol": "SSL", "ssl_cafile": "{tmp}/missing"},
            "BILLING_KAFKA_SSL_CAFILE={tmp}/missing: no such file",
        ),
        (
            {"security_protocol": "SSL", "ssl_keyfile": "{tmp}/password"},
            "BILLING_KAFKA_SSL_KEYFILE is set without BILLING_KAFKA_SSL_CERTFILE",
        ),
    ],
)
def test_a_wrong_combination_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, values: dict[str, str], message: str
) -> None:
    (tmp_path / "password").write_text("x\n")
    (tmp_path / "empty").write_text("\n")
    filled = {k: v.format(tmp=tmp_path) for k, v in values.items()}
    with pytest.raises(ValidationError) as caught:
        env(monkeypatch, **filled)
    assert message.format(tmp=tmp_path) in str(caught.value)


def test_an_error_does_not_repeat_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError) as caught:
        env(monkeypatch, security_protocol="SASL_SSL", sasl_password="hunter2-secret")
    assert "BILLING_KAFKA_SASL_USERNAME" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_an_unknown_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        env(monkeypatch, security_protocol="TLS")


def test_tls_files_that_do_not_load_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    settings = env(monkeypatch, security_protocol="SSL", ssl_cafile=tmp_path / "ca.pem")
    with pytest.raises(ValueError, match=f"BILLING_KAFKA_SSL_CAFILE={tmp_path}/ca.pem"):
        client_options(settings)
    # a client certificate without its key: the bundle holds certificates only
    settings = env(monkeypatch, ssl_cafile=certifi.where(), ssl_certfile=certifi.where())
    with pytest.raises(ValueError, match=r"BILLING_KAFKA_SSL_CERTFILE=.*cannot be loaded"):
        client_options(settings)
