"""The one place where Kafka clients are made.

Every producer, consumer and admin client of the project, and the FastStream broker of
each service, is built here, so that a Kafka setting (authentication, TLS, timeouts) is
changed once. Callers say *who* they are (a principal: ``svc-settlement``,
``hospital-H220202001``, ``agency-220100``, ``auditor``, ``admin``); how that principal
proves it is resolved here:

- ``KAFKA_SECURITY_PROTOCOL``: ``SASL_PLAINTEXT`` (the default once credentials are
  known), ``SSL`` (mutual TLS: the principal is the client certificate's CN; the local
  broker's TLS listener), ``SASL_SSL`` (SCRAM over TLS, for a broker that offers it) or
  ``PLAINTEXT`` (no authentication; only for a broker started without it);
- TLS files: ``KAFKA_SSL_CAFILE``, ``KAFKA_SSL_CERTFILE``, ``KAFKA_SSL_KEYFILE``, by
  default the installation's CA and the principal's certificate under
  ``<cache>/secrets/tls/`` (made by ``participants sync``);
- ``KAFKA_SASL_MECHANISM``: ``SCRAM-SHA-512`` unless told (``PLAIN`` for ``admin``);
- the principal: the caller's, else ``KAFKA_PRINCIPAL``, else ``admin``;
- its password: ``KAFKA_SASL_PASSWORD`` when ``KAFKA_PRINCIPAL`` names the same principal,
  else the credentials file ``CLEARINGHOUSE_KAFKA_CREDENTIALS`` (default
  ``<cache>/secrets/kafka-credentials.json``, written mode 0600 by
  ``clearinghouse participants sync``).

Passwords never appear in a ``repr``, a log line or an error message.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class _QuietPlainWarning(logging.Filter):
    """aiokafka warns on every PLAIN login over a plaintext listener; the operator's admin
    logs in that way on the local broker (a loopback listener), once per client."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "in the clear" not in record.getMessage()


logging.getLogger("aiokafka.conn").addFilter(_QuietPlainWarning())

#: The operator's principal (a super user: creates topics, users and ACLs).
ADMIN = "admin"
AUDITOR = "auditor"
DEFAULT_MECHANISM = "SCRAM-SHA-512"


def service_principal(service: str) -> str:
    return f"svc-{service}"


def hospital_principal(code: str) -> str:
    return f"hospital-{code}"


def agency_principal(code: str) -> str:
    return f"agency-{code}"


def principal_of_source(source: str) -> str:
    """The principal of an event's CloudEvents ``source``: ``hospital/H220202001`` →
    ``hospital-H220202001``, ``agency/220100`` → ``agency-220100``."""
    kind, _, code = source.partition("/")
    if kind in ("hospital", "agency") and code:
        return f"{kind}-{code}"
    raise ValueError(f"no participant principal for source {source!r}")


def cache_dir() -> Path:
    """Where ``infra up`` keeps servers, jars and secrets (same rule as infra.local)."""
    env = os.environ.get("CLEARINGHOUSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "clearinghouse"


def credentials_file() -> Path:
    env = os.environ.get("CLEARINGHOUSE_KAFKA_CREDENTIALS")
    return Path(env).expanduser() if env else cache_dir() / "secrets" / "kafka-credentials.json"


class CredentialsError(RuntimeError):
    """A principal's password is not known: say where it was looked for, never a secret."""


@dataclass(frozen=True)
class KafkaAuth:
    """How one principal connects. ``repr`` leaves the password out."""

    principal: str | None
    password: str | None = field(default=None, repr=False)
    protocol: str = "PLAINTEXT"
    mechanism: str = DEFAULT_MECHANISM
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.protocol.endswith("SSL"):
            return None
        context = ssl.create_default_context(cafile=self.cafile)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        # The local broker's certificate names 127.0.0.1 and localhost (infra/secrets.py).
        return context

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer, admin and client."""
        if self.protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.authenticated:
            options.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.principal,
                           sasl_plain_password=self.password)
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        return options

    def librdkafka(self) -> dict[str, str]:
        """The same as librdkafka properties (kcat ``-X``, confluent-kafka)."""
        if self.protocol == "PLAINTEXT":
            return {}
        props = {"security.protocol": self.protocol.lower()}
        if self.authenticated:
            props.update({"sasl.mechanisms": self.mechanism,
                          "sasl.username": self.principal or "",
                          "sasl.password": self.password or ""})
        if self.protocol.endswith("SSL") and self.cafile:
            props["ssl.ca.location"] = self.cafile
        if self.protocol.endswith("SSL") and self.certfile:
            props["ssl.certificate.location"] = self.certfile
            props["ssl.key.location"] = self.keyfile or ""
        return props


def _read_credentials(path: Path) -> dict[str, str]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read the Kafka credentials file {path}: "
                               f"{type(exc).__name__}") from None
    users = document.get("principals", document)
    return {name: entry["password"] if isinstance(entry, dict) else entry
            for name, entry in users.items() if isinstance(entry, dict | str)}


def tls_files(principal: str) -> tuple[str | None, str | None, str | None]:
    """(CA, certificate, key) files of `principal` for mutual TLS, where they exist."""
    folder = cache_dir() / "secrets" / "tls"

    def found(env: str, default: Path) -> str | None:
        value = os.environ.get(env)
        return value if value else (str(default) if default.exists() else None)

    return (found("KAFKA_SSL_CAFILE", folder / "ca.pem"),
            found("KAFKA_SSL_CERTFILE", folder / "clients" / f"{principal}.pem"),
            found("KAFKA_SSL_KEYFILE", folder / "clients" / f"{principal}.key"))


def kafka_auth(principal: str | None = None, protocol: str | None = None) -> KafkaAuth:
    """How `principal` (else ``KAFKA_PRINCIPAL``, else ``admin``) connects, from the
    environment and the credentials file (see the module's docstring); `protocol`
    overrides ``KAFKA_SECURITY_PROTOCOL``."""
    env_principal = os.environ.get("KAFKA_PRINCIPAL")
    name = principal or env_principal or ADMIN
    protocol = (protocol or os.environ.get("KAFKA_SECURITY_PROTOCOL", "")).upper()
    if protocol == "SSL":
        cafile, certfile, keyfile = tls_files(name)
        if certfile is None or keyfile is None:
            raise CredentialsError(f"no client certificate for principal {name!r} under "
                                   f"{cache_dir() / 'secrets' / 'tls' / 'clients'} (run "
                                   f"`clearinghouse participants sync`)")
        return KafkaAuth(name, protocol="SSL", cafile=cafile, certfile=certfile,
                         keyfile=keyfile)
    # The operator's admin is a static PLAIN user of the broker (it exists before any SCRAM
    # credential does, infra/kafka.py); everyone else logs in with SCRAM.
    mechanism = os.environ.get("KAFKA_SASL_MECHANISM") or (
        "PLAIN" if name == ADMIN else DEFAULT_MECHANISM)
    cafile = os.environ.get("KAFKA_SSL_CAFILE") or None
    password = None
    if os.environ.get("KAFKA_SASL_PASSWORD") and name == env_principal:
        password = os.environ["KAFKA_SASL_PASSWORD"]
    if protocol == "PLAINTEXT":
        return KafkaAuth(None, protocol="PLAINTEXT")
    if password is None:
        path = credentials_file()
        known = _read_credentials(path)
        if not known and not protocol:
            # No credentials anywhere and no protocol asked for: a broker without
            # authentication (a testcontainers broker, an old local one).
            return KafkaAuth(None, protocol="PLAINTEXT")
        password = known.get(name)
        if password is None:
            raise CredentialsError(
                f"no Kafka password for principal {name!r}: not in {path} and "
                f"KAFKA_SASL_PASSWORD is not set for it (run `clearinghouse participants sync`)")
    if cafile is None and protocol == "SASL_SSL":
        cafile = tls_files(name)[0]
    return KafkaAuth(name, password, protocol or "SASL_PLAINTEXT", mechanism, cafile)


def producer(bootstrap: str, *, principal: str | None = None, **options: Any) -> Any:
    """An aiokafka producer for `principal`. ``acks=all`` unless told otherwise (aiokafka's
    default is 1): on a replicated cluster a record is acknowledged only once the
    ``min.insync.replicas`` have it, so losing the leader loses no acknowledged record."""
    from aiokafka import AIOKafkaProducer

    options.setdefault("acks", "all")
    return AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_auth(principal).aiokafka(),
                            **options)


def consumer(*topics: str, bootstrap: str, principal: str | None = None,
             **options: Any) -> Any:
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap,
                            **kafka_auth(principal).aiokafka(), **options)


def admin(bootstrap: str, *, principal: str | None = None, **options: Any) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_auth(principal).aiokafka(),
                               **options)


def client(bootstrap: str, *, principal: str | None = None, **options: Any) -> Any:
    from aiokafka.client import AIOKafkaClient

    return AIOKafkaClient(bootstrap_servers=bootstrap, **kafka_auth(principal).aiokafka(),
                          **options)


def faststream_security(principal: str | None = None) -> Any:
    """FastStream's security object for `principal`, or None without authentication."""
    auth = kafka_auth(principal)
    if not auth.authenticated:
        if auth.protocol == "SSL":
            from faststream.security import BaseSecurity

            return BaseSecurity(ssl_context=auth.ssl_context())
        return None
    from faststream.security import SASLPlaintext, SASLScram256, SASLScram512

    kinds = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256,
             "PLAIN": SASLPlaintext}
    kind = kinds[auth.mechanism.upper()]
    context = auth.ssl_context()
    return kind(username=auth.principal or "", password=auth.password or "",
                use_ssl=context is not None, ssl_context=context)


def write_kcat_config(path: Path, bootstrap: str, principal: str | None = None,
                      protocol: str | None = None) -> Path:
    """A librdkafka properties file (``kcat -F FILE``) that connects as `principal`: what a
    hospital or an agency keeps in its own kcat configuration. Mode 0600, so the password
    is neither world-readable nor on a command line (``ps``)."""
    lines = [f"bootstrap.servers={bootstrap}"]
    auth = kafka_auth(principal, protocol)
    lines += [f"{key}={value}" for key, value in auth.librdkafka().items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    return path
