"""Server-rendered pages (Jinja2): the same documents as the API, formatted, with the
actions as forms that carry the session's CSRF token; and the SVG charts."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.portal import actions, auth, charts, reads
from services.portal.labels import label

router = APIRouter(include_in_schema=False)


def _render(request: Request, template: str, status_code: int = 200,
            **context: Any) -> HTMLResponse:
    templates = request.app.state.templates
    user = auth.session_user(request)
    lang = auth.language(request)
    return templates.TemplateResponse(request, template, {
        "user": user, "lang": lang, "t": lambda key, **kw: label(key, lang).format(**kw),
        "csrf": auth.csrf_token(request), "flash": request.session.pop("flash", None),
        "agency_names": request.app.state.agency_names, **context}, status_code=status_code)


def _local(target: str | None) -> str:
    """A redirect target of this site only (no ``//host`` or ``/\\host``), else ``/``."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _back(url: str, flash: str | None = None, request: Request | None = None
          ) -> RedirectResponse:
    if flash and request is not None:
        request.session["flash"] = flash
    return RedirectResponse(url, status_code=303)


async def _form(request: Request) -> dict[str, str]:
    """The form's fields (a field given several times, such as ticked settlement ids, joined
    with commas), after its CSRF token is checked."""
    form = await request.form()
    auth.check_csrf(request, str(form.get("csrf_token") or ""))
    return {k: ",".join(str(v) for v in form.getlist(k)) for k in form}


# ---- session ---------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    return _render(request, "login.html", failed=False, next=request.query_params.get("next"))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    user = await auth.authenticate(request, form.get("login", ""), form.get("password", ""))
    if user is None:
        return _render(request, "login.html", status_code=401, failed=True,
                       next=form.get("next"))
    auth.log_in(request, user)
    return _back(_local(form.get("next")))


@router.post("/logout")
async def logout(request: Request) -> Response:
    await _form(request)
    auth.log_out(request)
    return _back("/login")


@router.get("/lang/{lang}")
async def switch_language(request: Request, lang: str) -> Response:
    if lang in ("zh", "en"):
        request.session["lang"] = lang
    return _back(_local(request.query_params.get("next")))


@router.get("/")
async def root(request: Request) -> Response:
    user = auth.require_user(request)
    return _back("/audit" if user.is_auditor else f"/agency/{user.agency}")


# ---- an agency's pages -----------------------------------------------------------------------


@router.get("/agency/{agency}")
async def home(request: Request, agency: str) -> HTMLResponse:
    auth.require_view(request, agency)
    async with request.app.state.pool.acquire() as conn:
        document = await reads.home(conn, agency)
        statements = await reads.statements(conn, agency)
    latest = statements[0]["cycle"] if statements else None
    return _render(request, "home.html", agency=agency, home=document,
                   statements=statements, latest=latest)


@router.get("/agency/{agency}/statements/{cycle}")
async def statement(request: Request, agency: str, cycle: str) -> HTMLResponse:
    auth.require_view(request, agency)
    async with request.app.state.pool.acquire() as conn:
        document = await reads.statement(conn, agency, cycle)
    return _render(request, "statement.html", agency=agency, s=document)


@router.post("/agency/{agency}/statements/{cycle}/{answer}")
async def answer_statement(request: Request, agency: str, cycle: str, answer: str) -> Response:
    form = await _form(request)
    auth.require_actor(request, agency)
    publisher = request.app.state.publisher
    async with request.app.state.pool.acquire() as conn:
        if answer == "confirm":
            event = await actions.confirm_statement(conn, publisher, agency, cycle)
        elif answer == "dispute":
            event = await actions.dispute_statement(
                conn, publisher, agency, cycle, actions.settlement_ids(form.get("settlement_ids")),
                form.get("reason"))
        else:
            raise HTTPException(404, f"no action {answer}")
    lang = auth.language(request)
    return _back(f"/agency/{agency}/statements/{cycle}",
                 f"{label('published', lang)}: {event['type']} ({event['id']})", request)


@router.get("/agency/{agency}/daily-reports")
async def daily_reports(request: Request, agency: str) -> HTMLResponse:
    auth.require_view(request, agency)
    async with request.app.state.pool.acquire() as conn:
        found = await reads.daily_reports(conn, agency)
    return _render(request, "daily_reports.html", agency=agency, reports=found)


@router.post("/agency/{agency}/daily-reports/{day}/{answer}")
async def answer_daily_report(request: Request, agency: str, day: date,
                              answer: str) -> Response:
    form = await _form(request)
    auth.require_actor(request, agency)
    publisher = request.app.state.publisher
    async with request.app.state.pool.acquire() as conn:
        if answer == "confirm":
            event = await actions.confirm_daily_report(conn, publisher, agency, day)
        elif answer == "dispute":
            event = await actions.dispute_daily_report(
                conn, publisher, agency, day, actions.settlement_ids(form.get("settlement_ids")),
                form.get("reason"))
        else:
            raise HTTPException(404, f"no action {answer}")
    lang = auth.language(request)
    return _back(f"/agency/{agency}/daily-reports",
                 f"{label('published', lang)}: {event['type']} ({event['id']})", request)


@router.get("/agency/{agency}/instructions")
async def instructions(request: Request, agency: str) -> HTMLResponse:
    auth.require_view(request, agency)
    async with request.app.state.pool.acquire() as conn:
        found = await reads.instructions(conn, agency)
    return _render(request, "instructions.html", agency=agency, instructions=found)


@router.post("/agency/{agency}/instructions/{instruction_id}/remittances")
async def remit(request: Request, agency: str, instruction_id: str) -> Response:
    form = await _form(request)
    auth.require_actor(request, agency)
    async with request.app.state.pool.acquire() as conn:
        event = await actions.report_remittance(conn, request.app.state.publisher, agency,
                                                instruction_id, form.get("amount", ""),
                                                form.get("paid_at") or None)
    lang = auth.language(request)
    return _back(f"/agency/{agency}/instructions",
                 f"{label('published', lang)}: {event['type']} ({event['id']})", request)


@router.get("/agency/{agency}/notices")
async def notices(request: Request, agency: str) -> HTMLResponse:
    auth.require_view(request, agency)
    async with request.app.state.pool.acquire() as conn:
        found = await reads.notices(conn, agency)
    return _render(request, "notices.html", agency=agency, notices=found)


@router.get("/agency/{agency}/items")
async def items(request: Request, agency: str) -> HTMLResponse:
    auth.require_view(request, agency)
    p = request.query_params
    search = reads.Search(p.get("cycle") or None, p.get("counterpart") or None,
                          (p.get("q") or "").strip() or None, _int(p.get("page"), 1),
                          reported_on=_date(p.get("reported_on")))
    async with request.app.state.pool.acquire() as conn:
        document = await reads.items(conn, agency, search)
    query = "&".join(f"{k}={quote(v)}" for k, v in (("cycle", search.cycle),
                                                   ("counterpart", search.counterpart),
                                                   ("q", search.q),
                                                   ("reported_on", document["reported_on"]))
                     if v)
    return _render(request, "items.html", agency=agency, d=document, query=query)


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise HTTPException(422, f"reported_on: {text!r} is not a date (YYYY-MM-DD)") from None


def _int(text: str | None, default: int) -> int:
    try:
        return max(1, int(text)) if text else default
    except ValueError:
        return default


@router.get("/agency/{agency}/settlements/{settlement_id}")
async def settlement(request: Request, agency: str, settlement_id: str) -> HTMLResponse:
    auth.require_view(request, agency)
    async with request.app.state.pool.acquire() as conn:
        document = await reads.settlement(conn, agency, settlement_id)
    return _render(request, "settlement.html", agency=agency, d=document)


# ---- the auditor -----------------------------------------------------------------------------


@router.get("/audit")
async def audit(request: Request) -> HTMLResponse:
    auth.require_auditor(request)
    async with request.app.state.pool.acquire() as conn:
        document = await reads.audit(conn, request.app.state.settings.secrets.parent,
                                     request.query_params.get("fresh") == "1")
    # Charts of the latest cycle whose statements are out (an open cycle has no flows yet).
    cycles = sorted({s["cycle"] for s in document["statements"]}, reverse=True)
    return _render(request, "audit.html", d=document, cycles=cycles)


# ---- charts (SVG) ----------------------------------------------------------------------------


def _chart_scope(request: Request) -> str | None:
    """The agency a chart is of: the agency itself, or (the auditor) `?agency=` or all."""
    user = auth.require_user(request)
    wanted = request.query_params.get("agency") or None
    if user.is_auditor:
        return wanted
    if wanted is not None and wanted != user.agency:
        raise HTTPException(403, f"{user.login} may not see agency {wanted}'s data")
    return user.agency


def _svg(text: str) -> Response:
    return Response(text, media_type="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=60"})


@router.get("/charts/nets.svg")
async def nets_chart(request: Request) -> Response:
    scope = _chart_scope(request)
    async with request.app.state.pool.acquire() as conn:
        rows = await reads.nets_over_cycles(conn, scope)
    return _svg(charts.net_bars(rows, label("nets_over_cycles", auth.language(request))))


@router.get("/charts/flows/{cycle}.svg")
async def flows_chart(request: Request, cycle: str) -> Response:
    scope = _chart_scope(request)
    async with request.app.state.pool.acquire() as conn:
        left, centre, right = await reads.flows(conn, scope, cycle)
    return _svg(charts.flow_diagram(left, centre, right,
                                    f"{label('flows', auth.language(request))} {cycle}"))


@router.get("/charts/daily/{cycle}.svg")
async def daily_chart(request: Request, cycle: str) -> Response:
    scope = _chart_scope(request)
    async with request.app.state.pool.acquire() as conn:
        rows = await reads.daily_volumes(conn, cycle, scope)
    return _svg(charts.daily_bars(rows, f"{label('daily_volumes', auth.language(request))} "
                                        f"{cycle}"))
