"""The portal's sessions and logins through its own app (no database, no Kafka): when a
session ends, what logging out does to its cookie, failed logins throttled, and the
password hash checked off the event loop."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from starlette.testclient import TestClient

from services.portal import auth, users
from services.portal.app import create_app
from services.portal.config import PortalSettings

AGENCY, OTHER = "220100", "220200"
PASSWORD = "the agency's password"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(tmp_path: Path) -> Any:
    secrets = tmp_path / "secrets"
    users.add(secrets, AGENCY, PASSWORD)
    users.add(secrets, OTHER, PASSWORD)
    return create_app(PortalSettings("postgresql://nowhere/none", "127.0.0.1:1", "", secrets))


def _client(app: Any) -> TestClient:
    return TestClient(app, follow_redirects=False)


def _log_in(client: TestClient, login: str = AGENCY, password: str = PASSWORD
            ) -> httpx.Response:
    return client.post("/api/session", json={"login": login, "password": password})


def _with_cookie(app: Any, cookie: str) -> TestClient:
    """Another browser holding a copy of a session's cookie."""
    client = _client(app)
    client.cookies.set("ch_portal", cookie)
    return client


def test_a_logged_out_sessions_cookie_no_longer_works(app: Any) -> None:
    client = _client(app)
    token = _log_in(client).json()["csrf_token"]
    copied = client.cookies["ch_portal"]
    assert client.delete("/api/session", headers={"X-CSRF-Token": token}).status_code == 200
    assert _with_cookie(app, copied).get("/api/me").status_code == 401
    # Through the page's logout form too.
    page = _client(app)
    page.get("/login")
    form_token = _log_in(page).json()["csrf_token"]
    copied = page.cookies["ch_portal"]
    assert page.post("/logout", data={"csrf_token": form_token}).status_code == 303
    replayed = _with_cookie(app, copied)
    assert replayed.get("/api/me").status_code == 401
    assert replayed.get(f"/agency/{AGENCY}").headers["location"].startswith("/login")


def test_a_session_ends_eight_hours_after_its_login_however_often_renewed(app: Any) -> None:
    clock = Clock()
    app.state.sessions = auth.Sessions(clock=clock)
    client = _client(app)
    # The cookie's signature is dated by the same clock: each language switch re-signs it.
    with mock.patch("itsdangerous.timed.time.time", clock):
        assert _log_in(client).status_code == 200
        for _ in range(7):
            clock.now += 3600
            assert client.get("/lang/en").status_code == 303  # a renewed cookie
            assert client.get("/api/me").status_code == 200
        clock.now += 3600 + 1
        client.get("/lang/zh")
        assert client.get("/api/me").status_code == 401
        assert _log_in(client).status_code == 200  # a new login is a new session
        assert client.get("/api/me").status_code == 200


def test_failed_logins_are_throttled_per_login(app: Any) -> None:
    clock = Clock()
    app.state.login_throttle = auth.LoginThrottle(limit=10, window=900, clock=clock)
    client = _client(app)
    for _ in range(10):
        assert _log_in(client, password="a guess").status_code == 401
    refused = _log_in(client)  # even the right password, without checking it
    assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 901
    assert "ch_portal" not in refused.headers.get("set-cookie", "")
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = client.post("/login", data={"csrf_token": token.group(1), "login": AGENCY,
                                       "password": PASSWORD})
    assert form.status_code == 429 and "retry-after" in form.headers
    assert _log_in(_client(app), OTHER).status_code == 200  # another login is not held off
    clock.now += 901
    assert _log_in(client).status_code == 200
    # A successful login clears the count.
    for _ in range(9):
        assert _log_in(client, password="a guess").status_code == 401
    assert _log_in(client).status_code == 200
    # A made-up name of any length is no key to keep a count under (memory).
    assert _log_in(client, "9" * 100_000).status_code == 401
    assert len(app.state.login_throttle) == 0
    assert _log_in(client, password="a guess").status_code == 401
    assert _log_in(client).status_code == 200
    # A made-up name of any length is no key to keep a count under (memory).
    assert _log_in(client, "9" * 100_000).status_code == 401
    assert len(app.state.login_throttle) == 0


def test_the_password_is_checked_off_the_event_loop(app: Any) -> None:
    def slow_authenticate(*_: Any) -> None:
        time.sleep(1.0)  # argon2 as a slow, loaded machine runs it
        return None

    async def meanwhile() -> tuple[float, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://portal") as client:
            started = time.perf_counter()
            login = asyncio.create_task(client.post(
                "/api/session", json={"login": AGENCY, "password": "x"}))
            await asyncio.sleep(0.1)  # the login is being checked
            other = await client.get("/api/me")
            took = time.perf_counter() - started
            assert (await login).status_code == 401
            return took, other.status_code

    with mock.patch.object(users, "authenticate", slow_authenticate):
        took, status = asyncio.run(meanwhile())
    assert status == 401 and took < 0.7  # not after the 1 s check


def test_failed_logins_sent_all_at_once_are_throttled_too(app: Any) -> None:
    def slow_authenticate(*_: Any) -> None:
        time.sleep(0.2)
        return None

    async def at_once() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://portal") as client:
            answers = await asyncio.gather(*(client.post(
                "/api/session", json={"login": AGENCY, "password": f"guess {n}"})
                for n in range(30)))
            return [a.status_code for a in answers]

    with mock.patch.object(users, "authenticate", slow_authenticate):
        codes = asyncio.run(at_once())
    assert codes.count(401) == 10 and codes.count(429) == 20
