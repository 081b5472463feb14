"""The web shell: sign in, a signed-in start page, the call journal (calls.py), language
switch, sign out; and /static.

Pages are server-rendered (Jinja2) and work without JavaScript; htmx is loaded for the live parts
to come and sends the session's CSRF token as ``X-CSRF-Token`` (templates/base.html).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from zvonar.accounts.models import User, WebSession
from zvonar.api.deps import CSRF_HEADER, SESSION_COOKIE
from zvonar.container import Container
from zvonar.core.errors import LimitExceeded, NotFound, Unauthenticated
from zvonar.i18n import LANGUAGES, negotiate
from zvonar.web.calls import CallsPage, call_detail, may_read_calls
from zvonar.web.csrf import LOGIN_COOKIE, LOGIN_TOKEN_MAX_AGE, LoginCsrf, tokens_match
from zvonar.web.render import STATIC_DIR, language_choices, render, see_other

# Longer than any real address or password; longer values are cut (and so never match).
_MAX_FIELD = 1024


async def _form(request: Request) -> dict[str, str]:
    """The text fields of a form post (files are refused by the parser)."""
    async with request.form(max_files=0, max_fields=16) as form:
        return {k: v[:_MAX_FIELD] for k, v in form.items() if isinstance(v, str)}


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _local_path(target: str) -> str:
    """A page of ours to go back to after a form post; anything else (another site, a
    scheme-relative ``//host``) is the start page: never an open redirect."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and target.isprintable():
        return target
    return "/"


@dataclass(frozen=True)
class _Reader:
    user: User
    session: WebSession
    lang: str


@dataclass(frozen=True)
class _SignedInPost:
    secret: str
    user: User
    session: WebSession
    fields: dict[str, str]


class WebShell:
    """Handlers of the shell; holds the container and the login-form token signer."""

    def __init__(self, container: Container) -> None:
        self.c = container
        self.settings = container.settings
        self.login_csrf = LoginCsrf(container.settings.effective_secret_key)
        self.calls_page = CallsPage(container)

    # --- helpers -------------------------------------------------------------------------------
    def _cookie(self, response: Response, name: str, value: str, max_age: int, path: str) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=path,
            httponly=True,
            samesite="lax",
            secure=self.settings.cookie_secure,
        )

    def _forget(self, response: Response, name: str, path: str) -> None:
        response.delete_cookie(
            name, path=path, httponly=True, samesite="lax", secure=self.settings.cookie_secure
        )

    async def _session(self, request: Request) -> tuple[str, User, WebSession] | None:
        secret = request.cookies.get(SESSION_COOKIE)
        if not secret:
            return None
        try:
            user, ws = await self.c.accounts.resolve_session(secret)
        except Unauthenticated:
            return None
        return secret, user, ws

    def _anonymous_lang(self, request: Request) -> str:
        return negotiate(
            request.headers.get("accept-language"), None, None, self.settings.default_language
        )

    async def _user_lang(self, request: Request, user: User) -> tuple[str, str]:
        """The page language for a signed-in user, and their account's name."""
        account = await self.c.accounts.get_account(user.account_id)
        lang = negotiate(
            request.headers.get("accept-language"),
            user.language,
            account.language,
            self.settings.default_language,
        )
        return lang, account.name

    def _to_login(self, request: Request) -> Response:
        response = see_other(request, "/login")
        if request.cookies.get(SESSION_COOKIE):
            self._forget(response, SESSION_COOKIE, "/")
        return response

    def _login_page(
        self,
        request: Request,
        lang: str,
        *,
        status_code: int = 200,
        email: str = "",
        error: str | None = None,
        error_count: int | None = None,
    ) -> Response:
        nonce = LoginCsrf.nonce(request.cookies.get(LOGIN_COOKIE))
        response = render(
            request,
            "login.html",
            lang,
            status_code=status_code,
            login_token=self.login_csrf.token(nonce),
            email=email,
            error=error,
            error_count=error_count,
        )
        self._cookie(response, LOGIN_COOKIE, nonce, LOGIN_TOKEN_MAX_AGE, "/login")
        return response

    async def _signed_in_post(self, request: Request) -> _SignedInPost | Response:
        """A form post from a signed-in browser with the session's CSRF token, or the refusal."""
        fields = await _form(request)
        found = await self._session(request)
        if found is None:
            return self._to_login(request)
        secret, user, ws = found
        sent = fields.get("csrf_token") or request.headers.get(CSRF_HEADER)
        if not tokens_match(sent, ws.csrf_token):
            lang, _account = await self._user_lang(request, user)
            return render(request, "error.html", lang, status_code=403, message="error.csrf")
        return _SignedInPost(secret, user, ws, fields)

    # --- pages ---------------------------------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        if await self._session(request) is not None:
            return see_other(request, "/")
        return self._login_page(request, self._anonymous_lang(request))

    async def login(self, request: Request) -> Response:
        lang = self._anonymous_lang(request)
        fields = await _form(request)
        email, password = fields.get("email", ""), fields.get("password", "")
        if not self.login_csrf.check(fields.get("login_token"), request.cookies.get(LOGIN_COOKIE)):
            return self._login_page(
                request, lang, status_code=403, email=email, error="login.error.expired"
            )
        try:
            signed = await self.c.accounts.sign_in(
                email,
                password,
                max_age=self.settings.session_max_age,
                source=request.client.host if request.client else None,
            )
        except LimitExceeded as exc:
            # The brake is on (per address, or per client address): a page, not JSON.
            wait = int(exc.details.get("retry_after", 60))
            page = self._login_page(
                request,
                lang,
                status_code=429,
                email=email,
                error="login.error.too_many_attempts",
                error_count=max(1, -(-wait // 60)),
            )
            page.headers["Retry-After"] = str(wait)
            return page
        except Unauthenticated:
            # One message for an unknown address and a wrong password (no account enumeration).
            return self._login_page(
                request, lang, status_code=401, email=email, error="login.error.bad_credentials"
            )
        previous = request.cookies.get(SESSION_COOKIE)
        if previous:
            await self.c.accounts.sign_out(previous)
        response = see_other(request, "/")
        self._cookie(
            response, SESSION_COOKIE, signed.session_secret, self.settings.session_max_age, "/"
        )
        self._forget(response, LOGIN_COOKIE, "/login")
        return response

    async def home(self, request: Request) -> Response:
        found = await self._session(request)
        if found is None:
            return self._to_login(request)
        _secret, user, ws = found
        lang, account_name = await self._user_lang(request, user)
        max_age = self.settings.session_max_age
        session_note = (
            ("home.session_hours", max_age // 3600)
            if max_age % 3600 == 0
            else ("home.session_minutes", max(1, max_age // 60))
        )
        return render(
            request,
            "home.html",
            lang,
            csrf_token=ws.csrf_token,
            user=user,
            account_name=account_name,
            session_note=session_note,
            **self._chrome(user, "home", "/"),
        )

    @staticmethod
    def _chrome(user: User, active: str, here: str) -> dict[str, Any]:
        """What the top bar of a signed-in page needs (templates/_topbar.html)."""
        return {
            "languages": language_choices(),
            "active": active,
            "here": here,
            "show_calls": may_read_calls(user),
        }

    async def _journal_reader(self, request: Request) -> _Reader | Response:
        """A signed-in user who may read the call journal, or where they go instead."""
        found = await self._session(request)
        if found is None:
            return self._to_login(request)
        _secret, user, ws = found
        lang, _account = await self._user_lang(request, user)
        if not may_read_calls(user):
            return render(request, "error.html", lang, status_code=403, message="error.forbidden")
        return _Reader(user, ws, lang)

    async def calls(self, request: Request) -> Response:
        reader = await self._journal_reader(request)
        if isinstance(reader, Response):
            return reader
        return render(
            request,
            "calls.html",
            reader.lang,
            csrf_token=reader.session.csrf_token,
            **await self.calls_page.context(reader.user, request),
            # The language switch comes back to this very page: its filters and place kept.
            **self._chrome(reader.user, "calls", _here(request)),
        )

    async def call(self, request: Request, call_pk: str) -> Response:
        reader = await self._journal_reader(request)
        if isinstance(reader, Response):
            return reader
        try:
            context = await call_detail(self.c, reader.user, uuid.UUID(call_pk))
        except (ValueError, NotFound):  # not a call id, or not a call of this account
            return render(
                request, "error.html", reader.lang, status_code=404, message="error.not_found"
            )
        return render(
            request,
            "call.html",
            reader.lang,
            csrf_token=reader.session.csrf_token,
            **context,
            **self._chrome(reader.user, "calls", _here(request)),
        )

    async def set_language(self, request: Request) -> Response:
        post = await self._signed_in_post(request)
        if isinstance(post, Response):
            return post
        language = post.fields.get("language", "")
        if language not in LANGUAGES:
            lang, _account = await self._user_lang(request, post.user)
            return render(
                request, "error.html", lang, status_code=400, message="error.bad_language"
            )
        await self.c.accounts.set_language(post.user.id, language)
        return see_other(request, _local_path(post.fields.get("next", "")))

    async def logout(self, request: Request) -> Response:
        post = await self._signed_in_post(request)
        if isinstance(post, Response):
            return post
        await self.c.accounts.sign_out(post.secret)
        response = see_other(request, "/login")
        self._forget(response, SESSION_COOKIE, "/")
        return response


def install(app: FastAPI, container: Container) -> None:
    """Mount the web shell's pages and static files on ``app``."""
    shell = WebShell(container)
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/", shell.home, methods=["GET"])
    router.add_api_route("/calls", shell.calls, methods=["GET"])
    router.add_api_route("/calls/{call_pk}", shell.call, methods=["GET"])
    router.add_api_route("/login", shell.login_form, methods=["GET"])
    router.add_api_route("/login", shell.login, methods=["POST"])
    router.add_api_route("/settings/language", shell.set_language, methods=["POST"])
    router.add_api_route("/logout", shell.logout, methods=["POST"])
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
