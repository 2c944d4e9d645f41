"""Settings from the environment, with defaults that work against `clearinghouse infra up`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_KAFKA = "127.0.0.1:19092"
DEFAULT_DATABASE_URL = "postgresql://clearinghouse:clearinghouse@127.0.0.1:15432/clearinghouse"
REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Where ``infra up`` keeps servers, jars and secrets: ``CLEARINGHOUSE_CACHE``, else
    ``~/.cache/clearinghouse`` (the same rule as infra.local)."""
    env = os.environ.get("CLEARINGHOUSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "clearinghouse"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str
    database_url: str
    reference_dir: Path
    #: Prefix of consumer-group ids; an audit replay uses its own so it never moves live offsets.
    group_prefix: str = "clearinghouse"
    #: Namespaces every topic name (tests and demo runs on a shared broker); empty in production.
    topic_prefix: str = ""
    log_level: str = "INFO"
    #: Who this process is to Kafka (``svc-settlement``, ``auditor``, ...); None: the
    #: environment's ``KAFKA_PRINCIPAL`` (shared.messaging.clients resolves the password).
    kafka_principal: str | None = None


def load_settings() -> Settings:
    return Settings(
        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA),
        database_url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        reference_dir=Path(
            os.environ.get("CLEARINGHOUSE_REFERENCE_DIR", str(REPO_ROOT / "reference"))
        ),
        group_prefix=os.environ.get("CLEARINGHOUSE_GROUP_PREFIX", "clearinghouse"),
        log_level=os.environ.get("CLEARINGHOUSE_LOG_LEVEL", "INFO"),
        topic_prefix=os.environ.get("CLEARINGHOUSE_TOPIC_PREFIX", ""),
        kafka_principal=os.environ.get("KAFKA_PRINCIPAL") or None,
    )
