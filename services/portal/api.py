"""The JSON API (OpenAPI at ``/api/openapi.json``): the same documents the pages show.

Log in with ``POST /api/session``; the answer carries the CSRF token that every ``POST``
needs in the header ``X-CSRF-Token``. An agency's paths answer 403 for another agency."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field

from services.portal import actions, auth, reads

router = APIRouter(prefix="/api")
REPORTED_ON = Query(None, description="the items the daily report of this date covered")


class Login(BaseModel):
    login: str = Field(description="an agency code, or `auditor`")
    password: str


class Dispute(BaseModel):
    settlement_ids: list[str] = Field(default_factory=list)
    reason: str | None = None


class Remittance(BaseModel):
    amount: str = Field(description="yuan, two decimals, as a string: `1234.50`")
    paid_at: str | None = Field(None, description="RFC 3339; default now")


def _csrf(request: Request, x_csrf_token: str | None = Header(None)) -> None:
    auth.check_csrf(request, x_csrf_token)


def _pool(request: Request) -> Any:
    return request.app.state.pool


def _publisher(request: Request) -> Any:
    return request.app.state.publisher


@router.post("/session", tags=["session"], summary="log in; returns the CSRF token")
async def log_in(request: Request, body: Login) -> dict[str, Any]:
    user = await auth.authenticate(request, body.login, body.password)
    if user is None:
        raise HTTPException(401, "wrong login or password")
    token = auth.log_in(request, user)
    return {"login": user.login, "role": user.role, "agency": user.agency, "csrf_token": token}


@router.delete("/session", tags=["session"], dependencies=[Depends(_csrf)])
async def log_out(request: Request) -> dict[str, Any]:
    auth.log_out(request)
    return {"ok": True}


@router.get("/me", tags=["session"])
async def me(request: Request) -> dict[str, Any]:
    user = auth.require_user(request)
    return {"login": user.login, "role": user.role, "agency": user.agency,
            "csrf_token": auth.csrf_token(request)}


@router.get("/agencies/{agency}/home", tags=["agency"])
async def home(request: Request, agency: str) -> dict[str, Any]:
    auth.require_view(request, agency)
    async with _pool(request).acquire() as conn:
        return await reads.home(conn, agency)


@router.get("/agencies/{agency}/statements", tags=["agency"])
async def statements(request: Request, agency: str) -> list[dict[str, Any]]:
    auth.require_view(request, agency)
    async with _pool(request).acquire() as conn:
        return await reads.statements(conn, agency)


@router.get("/agencies/{agency}/statements/{cycle}", tags=["agency"])
async def statement(request: Request, agency: str, cycle: str) -> dict[str, Any]:
    auth.require_view(request, agency)
    async with _pool(request).acquire() as conn:
        return await reads.statement(conn, agency, cycle)


@router.post("/agencies/{agency}/statements/{cycle}/confirm", tags=["actions"],
             dependencies=[Depends(_csrf)], status_code=202,
             summary="publish clearing.statement_confirmed (with the statement's checksum)")
async def confirm_statement(request: Request, agency: str, cycle: str) -> dict[str, Any]:
    auth.require_actor(request, agency)
    async with _pool(request).acquire() as conn:
        return await actions.confirm_statement(conn, _publisher(request), agency, cycle)


@router.post("/agencies/{agency}/statements/{cycle}/dispute", tags=["actions"],
             dependencies=[Depends(_csrf)], status_code=202,
             summary="publish clearing.statement_disputed")
async def dispute_statement(request: Request, agency: str, cycle: str,
                            body: Dispute) -> dict[str, Any]:
    auth.require_actor(request, agency)
    async with _pool(request).acquire() as conn:
        return await actions.dispute_statement(conn, _publisher(request), agency, cycle,
                                               actions.settlement_ids(body.settlement_ids),
                                               body.reason)


@router.get("/agencies/{agency}/daily-reports", tags=["agency"])
async def daily_reports(request: Request, agency: str) -> list[dict[str, Any]]:
    auth.require_view(request, agency)
    async with _pool(request).acquire() as conn:
        return await reads.daily_reports(conn, agency)


@router.post("/agencies/{agency}/daily-reports/{day}/confirm", tags=["actions"],
             dependencies=[Depends(_csrf)], status_code=202,
             summary="publish clearing.daily_report_confirmed")
async def confirm_daily_report(request: Request, agency: str, day: date) -> dict[str, Any]:
    auth.require_actor(request, agency)
    async with _pool(request).acquire() as conn:
        return await actions.confirm_daily_report(conn, _publisher(request), agency, day)


@router.post("/agencies/{agency}/daily-reports/{day}/dispute", tags=["actions"],
             dependencies=[Depends(_csrf)], status_code=202,
             summary="publish clearing.daily_report_disputed")
async def dispute_daily_report(request: Request, agency: str, day: date,
                               body: Dispute) -> dict[str, Any]:
    auth.require_actor(request, agency)
    async with _pool(request).acquire() as conn:
        return await actions.dispute_daily_report(
            conn, _publisher(request), agency, day, actions.settlement_ids(body.settlement_ids),
            body.reason)


@router.get("/agencies/{agency}/instructions", tags=["agency"])
async def instructions(request: Request, agency: str) -> list[dict[str, Any]]:
    auth.require_view(request, agency)
    async with _pool(request).acquire() as conn:
        return await reads.instructions(conn, agency)


@router.post("/agencies/{agency}/instructions/{instruction_id}/remittances", tags=["actions"],
             dependencies=[Depends(_csrf)], status_code=202,
             summary="publish clearing.remittance_reported")
async def report_remittance(request: Request, agency: str, instruction_id: str,
                            body: Remittance) -> dict[str, Any]:
    auth.require_actor(request, agency)
    async with _pool(request).acquire() as conn:
        return await actions.report_remittance(conn, _publisher(request), agency,
                                               instruction_id, body.amount, body.paid_at)


@router.get("/agencies/{agency}/notices", tags=["agency"])
async def notices(request: Request, agency: str) -> list[dict[str, Any]]:
    auth.require_view(request, agency)
    async with _pool(request).acquire() as conn:
        return await reads.notices(conn, agency)


@router.get("/agencies/{agency}/items", tags=["drill-down"],
            summary="the settlements and refunds behind a figure, paged and searchable")
async def items(request: Request, agency: str, cycle: str | None = None,
                counterpart: str | None = None,
                q: str | None = Query(None, description="a settlement id or a person id"),
                reported_on: date | None = REPORTED_ON,
                page: int = Query(1, ge=1),
                size: int = Query(reads.PAGE_SIZE, ge=1, le=500)) -> dict[str, Any]:
    auth.require_view(request, agency)
    async with _pool(request).acquire() as conn:
        return await reads.items(conn, agency, reads.Search(cycle, counterpart, q or None,
                                                            page, size, reported_on))


@router.get("/agencies/{agency}/settlements/{settlement_id}", tags=["drill-down"])
async def settlement(request: Request, agency: str, settlement_id: str) -> dict[str, Any]:
    auth.require_view(request, agency)
    async with _pool(request).acquire() as conn:
        return await reads.settlement(conn, agency, settlement_id)


@router.get("/instructions/{instruction_id}", tags=["agency"])
async def instruction(request: Request, instruction_id: str) -> dict[str, Any]:
    user = auth.require_user(request)
    async with _pool(request).acquire() as conn:
        found = await reads.instruction(conn, instruction_id)
    if not user.may_see(reads.instruction_agency(found)):
        raise HTTPException(403, f"{user.login} may not see instruction {instruction_id}")
    return found


@router.get("/audit", tags=["auditor"],
            summary="every agency, the ledger check and the last audit replay")
async def audit(request: Request, fresh: bool = Query(
        False, description="run the ledger check now (else one of the last minute)")
                ) -> dict[str, Any]:
    auth.require_auditor(request)
    async with _pool(request).acquire() as conn:
        return await reads.audit(conn, request.app.state.settings.secrets.parent, fresh)
