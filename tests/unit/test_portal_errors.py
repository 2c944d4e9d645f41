"""What the portal's answers say besides their content, through its own app (no database,
no Kafka): a fault on the server is a bare 500 that names no path, a refusal is a 403,
and no page or document is kept in a browser's cache."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from starlette.testclient import TestClient

from services.clearing import queries
from services.portal import users
from services.portal.app import create_app
from services.portal.config import PortalSettings

AGENCY = "220100"
PASSWORD = "the agency's password"


class Pool:
    """Connections nobody reads from: the queries are replaced in each test."""

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[object]:
        yield object()


@pytest.fixture
def app(tmp_path: Path) -> Any:
    secrets = tmp_path / "secrets"
    users.add(secrets, AGENCY, PASSWORD)
    app = create_app(PortalSettings("postgresql://nowhere/none", "127.0.0.1:1", "", secrets))
    app.state.pool = Pool()
    app.state.publisher = object()  # nothing may be published in these tests
    return app


def test_an_unreadable_users_file_is_a_server_fault_that_names_no_path(app: Any) -> None:
    secret = app.state.settings.secrets / users.USERS_FILE

    def unreadable(path: Path) -> Any:
        raise PermissionError(13, "Permission denied", str(path))

    client = TestClient(app, raise_server_exceptions=False)
    with mock.patch.object(users, "_read", unreadable):
        r = client.post("/api/session", json={"login": AGENCY, "password": PASSWORD})
    assert r.status_code == 500
    assert str(secret) not in r.text and "secrets" not in r.text


def test_reporting_a_remittance_on_another_agencys_instruction_is_refused(app: Any) -> None:
    client = TestClient(app)
    token = client.post("/api/session", json={"login": AGENCY, "password": PASSWORD}
                        ).json()["csrf_token"]

    async def instruction(_: Any, instruction_id: str) -> Any:
        return SimpleNamespace(instruction_id=instruction_id, payer="220200", payee="hub")

    with mock.patch.object(queries, "instruction", instruction):
        r = client.post(f"/api/agencies/{AGENCY}/instructions/2026-10-220200/remittances",
                        headers={"X-CSRF-Token": token}, json={"amount": "1.00"})
    assert r.status_code == 403 and "not paid by 220100" in r.json()["detail"]


def test_pages_and_documents_are_not_kept_in_the_browsers_cache(app: Any) -> None:
    client = TestClient(app, follow_redirects=False)
    assert client.get("/login").headers["cache-control"] == "no-store"
    logged_in = client.post("/api/session", json={"login": AGENCY, "password": PASSWORD})
    assert logged_in.headers["cache-control"] == "no-store"
    assert client.get("/api/me").headers["cache-control"] == "no-store"
    assert "no-store" not in client.get("/static/portal.css").headers.get("cache-control", "")
