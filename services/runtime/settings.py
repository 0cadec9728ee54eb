"""Settings every worker and command reads from the environment (prefix ``BILLING_``).

``Settings`` holds what every worker runs on (Kafka, the database, the consumer, the outbox,
metrics, logs, the clock) and the company's own facts several services show or apply (its
name, bank accounts, rounding tolerance). A service's own settings are a subclass in its
``services/<name>/settings.py`` reading the same ``BILLING_*`` names; the worker builds the
class its ``ServiceSpec`` names, and ``get_settings(cls)`` loads any of them once.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal, TypeVar, overload

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.errors import BadConfig


class Topics(BaseSettings):
    """Kafka topic names. ``payments_received`` and ``network_access`` are external contracts."""

    model_config = SettingsConfigDict(env_prefix="BILLING_TOPIC_", extra="ignore")

    contracts: str = "billing.contracts"
    invoices: str = "billing.invoices"
    payments_received: str = "payments.received"
    payments: str = "billing.payments"
    dunning: str = "billing.dunning"
    notices: str = "billing.notices"
    network_access: str = "network.access"
    network_applied: str = "network.applied"
    notifications: str = "billing.notifications"
    # invoices and credit notes with their PDF and ISDOC, for notify (not on ``invoices``:
    # notify would read a billing run's million invoice events to skip them)
    documents: str = "billing.documents"
    # VoIP credit top-ups: requests (the zone, the CLI), their outcome, paid credit (usage)
    topups: str = "billing.topups"
    # what the customer zone asks of others: contact changes (invoicing), support requests
    zone: str = "billing.zone"
    # gear's traffic counter reports (external contract, keyed by gear: docs/usage.md)
    traffic_counters: str = "usage.traffic.counters"
    # closed hours of traffic per contract, for the zone
    traffic: str = "usage.traffic"
    # rated calls (invoicing, the zone) and prepaid credit (the PBX, notify, the zone)
    voip: str = "usage.voip"

    def all(self) -> list[str]:
        return [str(v) for v in self.model_dump().values()]

    def bulk(self) -> frozenset[str]:
        """Topics that a run fills in bulk (a billing run's million invoices): workers
        read them after their other topics (services/runtime/source.py)."""
        return frozenset({self.invoices})

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"


ENV_PREFIX = "BILLING_"
KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
# The settings past the protocol that secure a Kafka connection: SASL's or TLS's.
KAFKA_SECURITY = (
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_sasl_password_file",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
)


def env_name(setting: str) -> str:
    """The environment variable a setting is read from: errors name what the operator set."""
    return f"{ENV_PREFIX}{setting.upper()}"


# A former single shared operator token; named tokens replaced it (services/runtime/auth.py).
RETIRED = {
    "operator_token": "set BILLING_OPERATOR_TOKENS_FILE (lines name:token) or "
    "BILLING_OPERATOR_TOKENS instead: each operator's own named token",
}


def read_secret_file(setting: str, path: Path) -> str:
    """A secret kept in a file (a systemd credential, a mounted secret) rather than in the
    environment, which every process of the user can read: its content, without the
    trailing newline an editor or ``echo`` adds."""
    try:
        secret = path.read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{env_name(setting)}={path}: cannot be read ({exc})") from None
    if not secret:
        raise ValueError(f"{env_name(setting)}={path}: the file is empty")
    return secret


class Settings(BaseSettings):
    # A refused value is not repeated in the error: it may be a password from the
    # environment. A keyword that names no setting of the class is refused (a service's
    # setting given to the runtime's class would otherwise be dropped without a word);
    # the environment is read by field, so another service's variables are not seen.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", hide_input_in_errors=True
    )

    # Secrets a deployment may set, each either in the environment (``BILLING_<NAME>``) or,
    # preferred, in a file (``BILLING_<NAME>_FILE``: a systemd credential, a mounted
    # secret); read through ``secret(name)``. A service's class adds its own. Never a
    # command-line option: every user of the machine can read a process's arguments.
    SECRETS: ClassVar[tuple[str, ...]] = ("kafka_sasl_password", "operator_tokens")

    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    # How every Kafka client connects (services/runtime/kafka_client.py client_options).
    # Production: SASL_SSL with SCRAM-SHA-512 (deploy/README.md, "Kafka security").
    kafka_security_protocol: KafkaProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = None  # preferred: the password stays out of env
    kafka_ssl_cafile: Path | None = None  # CA bundle of the brokers (default: system CAs)
    kafka_ssl_certfile: Path | None = None  # mutual TLS: the client's certificate (PEM)
    kafka_ssl_keyfile: Path | None = None  # and its key, unless in the certificate's file
    # The relay's producer is idempotent (a retried send after a lost answer is written
    # once); off only for the Tansu fallback broker, which lacks it.
    kafka_idempotence: bool = True
    # How long a command-line client (billing payment publish, import-statement) waits for
    # the cluster to answer before it says so and exits; a worker waits as long as it takes.
    kafka_connect_timeout: float = Field(default=30.0, gt=0)
    database_url: str = "postgresql://postgres@127.0.0.1:5432/billing"
    # Four: two instances of a worker hold two partitions of each topic each, and a third
    # can still join. Production sets more (deploy/, 12). (On the old embedded Tansu broker
    # each partition a fetch named cost latency under load: docs/performance.md#finding-20.)
    topic_partitions: int = 4
    topic_replication_factor: int = 1
    # Consumer groups are named "<prefix>-<service>": two systems (or a benchmark beside a
    # running system) can share one Kafka cluster with their own topics and groups.
    group_prefix: str = "billing"

    # Consumer group tuning. The group coordinator holds a JoinGroup for up to half the
    # session timeout before it completes the rebalance (Tansu: exactly half; Kafka:
    # group.initial.rebalance.delay.ms). Faust's default 60 s session therefore costs 30 s
    # per start. 6 s is the smallest value Kafka accepts (group.min.session.timeout.ms)
    # and still detects a dead worker quickly.
    session_timeout: float = 6.0
    heartbeat_interval: float = 1.0
    rebalance_timeout: float = 10.0
    commit_interval: float = 0.5
    # Kafka answers a fetch as soon as data arrives: the wait only sets how often an idle
    # consumer asks (docs/decisions.md, "Fetch long-poll"); the Tansu fallback sets 25.
    fetch_max_wait_ms: int = 500

    batch_size: int = 500
    outbox_batch: int = 5000
    outbox_poll_interval: float = 0.5
    # An applied event's id stays in the consumer's inbox this long: above the topics'
    # retention, so a group reset to the earliest offset finds every id it applied.
    inbox_retention_days: int = Field(default=30, ge=1)
    inbox_prune_interval: float = Field(default=3600.0, gt=0)
    timer_poll_interval: float = 1.0

    # When true, "now" is the real time plus an offset shared through the database and
    # moved by `billing clock advance`. Never enable in production.
    test_clock: bool = False

    # production (the default) refuses to start a worker without operator tokens
    # (services/runtime/auth.py), provisioning without its notice secret
    # (services/provisioning/settings.py); the dev stack, `make run`, the demo and the
    # tests set development.
    environment: Literal["production", "development"] = "production"

    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    # /healthz: how long each check (a query, a Kafka metadata request) may take
    health_timeout: float = Field(default=2.0, gt=0)
    # how often a service's gauges counted from its tables (unmatched payments, contracts by
    # state, outbox age...) are queried again: about Prometheus's scrape interval
    gauge_interval: float = Field(default=15.0, gt=0)

    company_name: str = "ISP"  # signs e-mails, SMS and the notice page
    # Our bank account shown on invoices, notices and reminders, per currency.
    bank_accounts: dict[str, str] = Field(
        default_factory=lambda: {
            "CZK": "2001234561/2010",
            "EUR": "SK3511000000002612345674",
            "HUF": "HU42117730161111101800000000",
        }
    )
    # Underpayment accepted as settled, in minor units per currency (CZK invoices are
    # paid in whole crowns: 499.40 paid as 499.00 is paid).
    rounding_tolerance: dict[str, int] = Field(
        default_factory=lambda: {"CZK": 99, "EUR": 0, "HUF": 0}
    )

    # Named operator tokens for every operator endpoint (services/runtime/auth.py):
    # ``name:token`` a line in the file, or comma-separated in the environment.
    operator_tokens: SecretStr | None = None
    operator_tokens_file: Path | None = None
    # Origins (scheme://host[:port]) whose pages may send operators' state changes; a
    # request with any other Origin header is refused (scripts send none).
    operator_allowed_origins: list[str] = Field(default_factory=list)
    # Retired (RETIRED above says what replaced it): refused when set.
    operator_token: SecretStr | None = None

    log_level: str = "info"

    # Where a worker may write (Faust makes its data directory at start; the workers keep
    # nothing there). Default: systemd's $STATE_DIRECTORY (StateDirectory= in the unit),
    # else a folder of the user's in the temporary directory. Never the working directory:
    # the shipped unit mounts that read-only.
    state_dir: Path | None = None

    @model_validator(mode="after")
    def _secrets_set_once(self) -> Settings:
        for name, instead in RETIRED.items():
            if getattr(self, name) is not None:
                raise ValueError(f"{env_name(name)} is no longer read: {instead}")
        for name in self.SECRETS[1:]:  # the Kafka password's own check names its protocol
            if getattr(self, name) is not None and getattr(self, f"{name}_file") is not None:
                raise ValueError(
                    f"{env_name(name)} and {env_name(name + '_file')} are both set: keep one"
                )
        return self

    def secret(self, name: str) -> str | None:
        """A secret's value (``SECRETS``): from ``BILLING_<NAME>_FILE`` when that is set
        (read anew on each call, so a rotated file counts from the next client made), else
        from ``BILLING_<NAME>``; None when neither is set."""
        if name not in self.SECRETS:
            raise KeyError(f"{name} is not a secret setting")
        path: Path | None = getattr(self, f"{name}_file")
        if path is not None:
            return read_secret_file(f"{name}_file", path)
        value: SecretStr | None = getattr(self, name)
        return None if value is None else value.get_secret_value()

    @model_validator(mode="after")
    def _kafka_security_fits_the_protocol(self) -> Settings:
        """Credentials or TLS files the chosen protocol would not use are refused, not
        ignored: a client that silently connects without them is the failure to avoid."""
        protocol = self.kafka_security_protocol
        chosen = f"{env_name('kafka_security_protocol')}={protocol}"
        unused = [
            env_name(name)
            for name in KAFKA_SECURITY
            if getattr(self, name) is not None and not _used_by(name, protocol)
        ]
        if unused:
            raise ValueError(f"{', '.join(unused)} set, but {chosen} uses none of it")
        if protocol.startswith("SASL_"):
            self._check_sasl(chosen)
        self._check_tls_files()
        return self

    def _check_sasl(self, chosen: str) -> None:
        if not self.kafka_sasl_username:
            raise ValueError(f"{env_name('kafka_sasl_username')} is required by {chosen}")
        if (self.kafka_sasl_password is None) == (self.kafka_sasl_password_file is None):
            raise ValueError(
                f"{chosen} needs exactly one of {env_name('kafka_sasl_password_file')} "
                f"or {env_name('kafka_sasl_password')}"
            )
        if not self.kafka_sasl_secret():  # a file's is read here: unreadable or empty fail
            raise ValueError(f"{env_name('kafka_sasl_password')} is empty")

    def _check_tls_files(self) -> None:
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{env_name(name)}={path}: no such file")
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            raise ValueError(
                f"{env_name('kafka_ssl_keyfile')} is set without {env_name('kafka_ssl_certfile')}"
            )

    def kafka_sasl_secret(self) -> str:
        """The SASL password, from the file when one is named (read anew by each client
        made, so a rotated file counts from the worker's next start)."""
        secret = self.secret("kafka_sasl_password")
        if secret is None:
            raise ValueError(f"{env_name('kafka_sasl_password')} is not set")
        return secret

    def for_service(self, cls: type[S]) -> S:
        """These settings as a service's class ``cls``: each value here that ``cls`` has
        kept, the rest of its own read from the environment (the dev stack asks each
        worker's ``SPEC`` what it reads without starting it)."""
        return cls(**{name: value for name, value in self if name in cls.model_fields})

    def state_path(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        systemd = os.environ.get("STATE_DIRECTORY")
        if systemd:
            return Path(systemd.split(":")[0])
        return Path(tempfile.gettempdir()) / f"isp-billing-{os.getuid()}"


class MailRelaySettings(Settings):
    """The deployment's SMTP relay (``BILLING_SMTP_*``, ``BILLING_MAIL_FROM``): one relay,
    read alike by every service that sends mail (notify's messages, the zone's links)."""

    SECRETS: ClassVar[tuple[str, ...]] = (*Settings.SECRETS, "smtp_password")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_password_file: Path | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_ca_file: str | None = None  # CA bundle to verify the server (default: system CAs)
    smtp_timeout: float = 15.0
    mail_from: str = "billing@isp.example"


S = TypeVar("S", bound=Settings)


def _used_by(setting: str, protocol: str) -> bool:
    """Whether a Kafka security setting takes part in connections of ``protocol``."""
    if setting.startswith("kafka_sasl_"):
        return protocol.startswith("SASL_")
    return protocol.endswith("SSL")


def load(cls: type[S]) -> S:
    """``cls`` read from the environment; ``BadConfig`` (exit 78) names each variable
    refused."""
    try:
        return cls()
    except ValidationError as exc:
        refused = "; ".join(
            f"{env_name(str(e['loc'][0])) if e['loc'] else 'settings'}: {e['msg']}"
            for e in exc.errors(include_input=False)
        )
        raise BadConfig(refused) from None


class _Loaded:
    """``get_settings()``: the runtime's settings of this process; ``get_settings(cls)``: a
    service's class. Each is read once; ``cache_clear`` forgets them all (tests that change
    the environment)."""

    def __init__(self) -> None:
        self._by_class: dict[type[Settings], Settings] = {}

    @overload
    def __call__(self) -> Settings: ...

    @overload
    def __call__(self, cls: type[S]) -> S: ...

    def __call__(self, cls: type[Settings] = Settings) -> Settings:
        if cls not in self._by_class:
            self._by_class[cls] = load(cls)
        return self._by_class[cls]

    def cache_clear(self) -> None:
        self._by_class.clear()


get_settings = _Loaded()


@lru_cache(maxsize=1)
def get_topics() -> Topics:
    return Topics()
