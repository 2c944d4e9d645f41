"""Who is asking: logging in, the session's user, the 401/403 answers, and CSRF tokens.

The session is Starlette's signed cookie (HttpOnly, SameSite=Strict, Secure over https);
it holds the login, the role, the agency, the session's id and login time, the CSRF token
and the language, never a password. A session ends `SESSION_SECONDS` after its login
whatever is done with it meanwhile, and a logged-out session's cookie no longer works.
Every action (POST) carries the session's CSRF token: the form field ``csrf_token`` or the
header ``X-CSRF-Token``. Failed logins are counted per login name (`LoginThrottle`)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from services.portal import users
from services.portal.labels import DEFAULT_LANGUAGE, LANGUAGES
from services.portal.users import User

CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 8 * 3600
#: Logins are agency codes and ``auditor``; a longer name is refused unchecked.
LONGEST_LOGIN = 64


class Sessions:
    """What the signed cookie cannot say by itself: when a session ends. A cookie carries
    its login time, so renewing the cookie does not lengthen the session; a logged-out
    session's id is remembered until it would have ended anyway (in this process: a
    restarted portal forgets them, and only the login time bounds such a cookie)."""

    def __init__(self, seconds: int = SESSION_SECONDS,
                 clock: Callable[[], float] = time.time):
        self.seconds = seconds
        self.clock = clock
        self._ended: dict[str, float] = {}  # session id -> when it would have ended

    def start(self) -> dict[str, Any]:
        return {"sid": secrets.token_urlsafe(16), "since": int(self.clock())}

    def alive(self, data: dict[str, Any]) -> bool:
        since, sid = data.get("since"), data.get("sid")
        if not isinstance(since, int) or not isinstance(sid, str):
            return False  # a cookie of before sessions had a login time
        now = self.clock()
        return since <= now < since + self.seconds and sid not in self._ended

    def end(self, data: dict[str, Any]) -> None:
        now = self.clock()
        for stale in [s for s, until in self._ended.items() if until <= now]:
            del self._ended[stale]
        since, sid = data.get("since"), data.get("sid")
        if isinstance(since, int) and isinstance(sid, str):
            self._ended[sid] = since + self.seconds


class LoginThrottle:
    """Failed logins per login name: after `limit` failures within `window` seconds, that
    login is refused (429) without checking its password until the oldest of them is
    `window` old; a successful login clears its count. An attempt counts as failed from
    before its password is checked until it succeeds, so attempts sent all at once are held
    off too. Guessing a password costs an hour per few dozen attempts instead of a fraction
    of a second (an agency's login is its public code), at the price that a stranger can
    hold a login off for `window` at a time."""

    def __init__(self, limit: int = 10, window: float = 15 * 60,
                 clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, list[float]] = {}

    def _recent(self, login: str) -> list[float]:
        now = self.clock()
        recent = [t for t in self._failures.get(login, []) if now - t < self.window]
        if recent:
            self._failures[login] = recent
        else:
            self._failures.pop(login, None)
        return recent

    def attempt(self, login: str) -> int:
        """Count an attempt at `login` as failed until it succeeds; or, while `login` is
        held off, count nothing and return the seconds until it may try again."""
        recent = self._recent(login)
        if len(recent) >= self.limit:
            return max(1, int(recent[-self.limit] + self.window - self.clock()) + 1)
        if len(self._failures) > 10_000:  # names made up by the thousand: forget the stale
            for name in list(self._failures):
                self._recent(name)
        self._failures.setdefault(login, []).append(self.clock())
        return 0

    def succeeded(self, login: str) -> None:
        self._failures.pop(login, None)

    def __len__(self) -> int:
        """How many login names have attempts counted."""
        return len(self._failures)


async def authenticate(request: Request, login: str, password: str) -> User | None:
    """The user of `login` and `password`, or None; 429 while `login` is held off. The
    password hash is checked on a worker thread: argon2 takes a good part of a second of
    CPU, which would stall every other request on the event loop."""
    if len(login) > LONGEST_LOGIN:
        return None  # no such login, and not a name to keep a count under
    throttle: LoginThrottle = request.app.state.login_throttle
    wait = throttle.attempt(login)
    if wait:
        raise HTTPException(429, f"too many failed logins for {login}: try again in "
                                 f"{-(-wait // 60)} min", headers={"Retry-After": str(wait)})
    user = await run_in_threadpool(users.authenticate, request.app.state.settings.secrets,
                                   login, password)
    if user is not None:
        throttle.succeeded(login)
    return user


class LoginRequired(Exception):
    """No session: the API answers 401, a page sends the browser to the login page."""


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


def session_user(request: Request) -> User | None:
    data: dict[str, Any] = request.session.get("user") or {}
    if not data.get("login") or not _sessions(request).alive(data):
        return None
    return User(data["login"], data["role"], data.get("agency") or None)


def log_in(request: Request, user: User) -> str:
    """Start a fresh session for `user` (a new id, login time and CSRF token); return the
    token."""
    language = request.session.get("lang", DEFAULT_LANGUAGE)
    request.session.clear()
    request.session["user"] = {"login": user.login, "role": user.role,
                               "agency": user.agency or "", **_sessions(request).start()}
    request.session["lang"] = language
    return csrf_token(request)


def log_out(request: Request) -> None:
    _sessions(request).end(request.session.get("user") or {})
    language = request.session.get("lang", DEFAULT_LANGUAGE)
    request.session.clear()
    request.session["lang"] = language


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def check_csrf(request: Request, sent: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not sent or not secrets.compare_digest(str(expected), sent):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def require_user(request: Request) -> User:
    user = session_user(request)
    if user is None:
        raise LoginRequired()
    return user


def require_view(request: Request, agency: str) -> User:
    """The user may see `agency`'s data: the agency itself or the auditor; else 403."""
    user = require_user(request)
    if not user.may_see(agency):
        raise HTTPException(403, f"{user.login} may not see agency {agency}'s data")
    return user


def require_actor(request: Request, agency: str) -> User:
    """Only the agency itself answers for itself (the auditor looks, it does not act)."""
    user = require_user(request)
    if user.agency != agency:
        raise HTTPException(403, f"{user.login} may not act for agency {agency}")
    return user


def require_auditor(request: Request) -> User:
    user = require_user(request)
    if not user.is_auditor:
        raise HTTPException(403, "only the auditor sees every agency")
    return user


def language(request: Request) -> str:
    chosen = request.query_params.get("lang") or request.session.get("lang")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE
