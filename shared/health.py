"""Whether the Kafka broker and the PostgreSQL server a command needs answer."""

from __future__ import annotations

import asyncpg

from shared.db import redact_url
from shared.messaging import clients as kafka_clients


async def unreachable(bootstrap: str, database_url: str, timeout: float = 5.0) -> list[str]:
    """What does not answer, one line each (the password redacted); empty when both do.
    `clearinghouse health` exits 1 on any; `clearinghouse bench` checks before it creates
    anything, so that a bench started without `clearinghouse infra up` says so."""
    problems = []
    try:
        conn = await asyncpg.connect(database_url, timeout=timeout)
    except Exception as exc:  # any failure to answer is the answer
        problems.append(f"PostgreSQL at {redact_url(database_url)} does not answer: {exc}")
    else:
        await conn.close()
    admin = kafka_clients.admin(bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await admin.start()
        await admin.list_topics()
    except Exception as exc:
        problems.append(f"Kafka at {bootstrap} does not answer: {exc!r}")
    finally:
        await admin.close()
    return problems
