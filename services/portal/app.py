"""The portal's web application (FastAPI on uvicorn): the JSON API under ``/api``, pages,
SVG charts and its own static files; sessions signed with a key kept in the secrets
directory. Nothing is loaded from elsewhere (no CDN: FastAPI's Swagger page is off, the
OpenAPI document is at ``/api/openapi.json``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from services.clearing.queries import SCHEMA
from services.portal import api, auth, pages, users
from services.portal.actions import Invalid
from services.portal.config import PortalSettings, load_portal_settings
from services.portal.labels import label, money, shanghai
from services.portal.publish import Publisher
from services.portal.reads import Forbidden, NotFound
from shared.messaging.clients import CredentialsError
from shared.reference import load_reference

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "ch_portal"
SESSION_SECONDS = auth.SESSION_SECONDS


async def open_pool(database_url: str) -> asyncpg.Pool:
    """Read-only connections on the clearing schema."""
    return await asyncpg.create_pool(database_url, min_size=1, max_size=4, server_settings={
        "search_path": SCHEMA, "default_transaction_read_only": "on",
        "application_name": "clearinghouse-portal"})


def create_app(settings: PortalSettings | None = None) -> FastAPI:
    settings = settings or load_portal_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await open_pool(settings.database_url)
        app.state.publisher = Publisher(settings.kafka_bootstrap_servers, settings.topic_prefix)
        try:
            yield
        finally:
            await app.state.publisher.close()
            await app.state.pool.close()

    app = FastAPI(title="clearinghouse portal", version="1", lifespan=lifespan,
                  description=(api.__doc__ or "").strip(), openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.sessions = auth.Sessions(SESSION_SECONDS)
    app.state.login_throttle = auth.LoginThrottle()
    app.state.agency_names = {a.code: a.name for a in load_reference().agencies.values()}
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["money"] = money
    templates.env.filters["shanghai"] = shanghai
    app.state.templates = templates
    app.add_middleware(SessionMiddleware, secret_key=users.session_key(settings.secrets),
                       session_cookie=SESSION_COOKIE, max_age=SESSION_SECONDS,
                       same_site="strict", https_only=settings.secure_cookies)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/static/"):
            # An agency's figures stay in no browser cache after its logout (the back
            # button, a shared computer); the charts say their own (private, a minute).
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def page_error(request: Request, status: int, message: str) -> Response:
        if is_api(request):
            return JSONResponse({"detail": message}, status_code=status)
        return pages._render(request, "error.html", status_code=status, status=status,
                             message=message)

    @app.exception_handler(auth.LoginRequired)
    async def login_required(request: Request, _: Exception) -> Response:
        if is_api(request):
            return JSONResponse({"detail": "log in first: POST /api/session"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        response = page_error(request, exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})  # Retry-After of a throttled login
        return response

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return page_error(request, 404, str(exc))

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        lang = auth.language(request)
        return page_error(request, 403, f"{label('forbidden', lang)}: {exc}")

    @app.exception_handler(KafkaError)
    async def kafka_down(request: Request, exc: KafkaError) -> Response:
        return page_error(request, 503, "the answer could not be published on Kafka "
                          f"({type(exc).__name__}); try again later")

    @app.exception_handler(CredentialsError)
    async def no_credentials(request: Request, exc: CredentialsError) -> Response:
        return page_error(request, 503, f"the answer could not be published: {exc}")

    @app.exception_handler(Invalid)
    async def invalid(request: Request, exc: Invalid) -> Response:
        return page_error(request, 422, str(exc))

    return app
