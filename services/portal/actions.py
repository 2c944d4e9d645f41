"""The agencies' actions: each checks that what it answers was published to this agency,
builds the contract's payload (so a malformed answer never leaves the portal) and hands it
to `Publisher.publish_inbound`. Whether it is accepted is the clearing service's decision."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError

from services.clearing import queries
from services.portal.labels import SHANGHAI
from services.portal.publish import Publisher
from services.portal.reads import Forbidden, NotFound
from shared.events.base import Payload
from shared.events.clearing import (
    DailyReportConfirmed,
    DailyReportDisputed,
    RemittanceReported,
    StatementConfirmed,
    StatementDisputed,
)


class Invalid(ValueError):
    """The answer breaks the contract (the API answers 422 with the message)."""


def _payload(model: type[Payload], data: dict[str, Any]) -> Payload:
    try:
        return model.model_validate_json(orjson.dumps(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "data"
        raise Invalid(f"{where}: {first.get('msg')}") from None


def settlement_ids(text: str | list[str] | None) -> list[str]:
    if text is None:
        return []
    parts = text if isinstance(text, list) else text.replace("\n", ",").split(",")
    return [p.strip() for p in parts if p.strip()]


async def confirm_statement(conn: asyncpg.Connection, publisher: Publisher, agency: str,
                            cycle: str) -> dict[str, Any]:
    found = await queries.statement(conn, agency, cycle)
    if found is None:
        raise NotFound(f"no statement of cycle {cycle} was issued to {agency}")
    payload = _payload(StatementConfirmed, {"agency": agency, "cycle": cycle,
                                            "checksum": found.checksum})
    return await publisher.publish_inbound(agency, payload)


async def dispute_statement(conn: asyncpg.Connection, publisher: Publisher, agency: str,
                            cycle: str, ids: list[str], reason: str | None) -> dict[str, Any]:
    if await queries.statement(conn, agency, cycle) is None:
        raise NotFound(f"no statement of cycle {cycle} was issued to {agency}")
    payload = _payload(StatementDisputed, {"agency": agency, "cycle": cycle,
                                           "settlement_ids": ids, "reason": reason or None})
    return await publisher.publish_inbound(agency, payload)


async def _report(conn: asyncpg.Connection, agency: str, day: date) -> Any:
    for report, _ in await queries.daily_reports(conn, agency):
        if report.date == day:
            return report
    raise NotFound(f"no daily report of {day} was sent to {agency}")


async def confirm_daily_report(conn: asyncpg.Connection, publisher: Publisher, agency: str,
                               day: date) -> dict[str, Any]:
    report = await _report(conn, agency, day)
    payload = _payload(DailyReportConfirmed, {"agency": agency, "date": day.isoformat(),
                                              "checksum": report.checksum})
    return await publisher.publish_inbound(agency, payload)


async def dispute_daily_report(conn: asyncpg.Connection, publisher: Publisher, agency: str,
                               day: date, ids: list[str], reason: str | None
                               ) -> dict[str, Any]:
    await _report(conn, agency, day)
    if not ids:
        raise Invalid("settlement_ids: name at least one disputed settlement")
    payload = _payload(DailyReportDisputed, {"agency": agency, "date": day.isoformat(),
                                             "settlement_ids": ids, "reason": reason or None})
    return await publisher.publish_inbound(agency, payload)


async def report_remittance(conn: asyncpg.Connection, publisher: Publisher, agency: str,
                            instruction_id: str, amount: str, paid_at: str | None
                            ) -> dict[str, Any]:
    found = await queries.instruction(conn, instruction_id)
    if found is None:
        raise NotFound(f"no net-transfer instruction {instruction_id} was issued")
    if found.payer != agency:
        raise Forbidden(f"instruction {instruction_id} is not paid by {agency}")
    moment = _moment(paid_at)
    payload = _payload(RemittanceReported, {
        "instruction_id": instruction_id, "amount": amount.strip().replace(",", ""),
        "paid_at": moment.isoformat(), "agency": agency})
    return await publisher.publish_inbound(agency, payload)


def _moment(text: str | None) -> datetime:
    """When the money left: an ISO time (Asia/Shanghai when it has no offset), else now."""
    if not text:
        return datetime.now(SHANGHAI).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Invalid(f"paid_at: {text!r} is not a time (YYYY-MM-DDTHH:MM)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)
