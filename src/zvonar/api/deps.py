"""FastAPI dependencies: the container, the authenticated principal, CSRF for cookie sessions."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from zvonar.accounts.access import Principal
from zvonar.container import Container
from zvonar.core.errors import PermissionDenied, Unauthenticated

SESSION_COOKIE = "zvonar_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

# Declared for the OpenAPI contract (securitySchemes, and each operation's security); they
# never refuse on their own: principal() reads the header and the cookie itself, with our codes.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token (`zvonar token create`, or POST /api/v1/tokens).",
)
_session = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description=f"The web UI's session cookie; unsafe methods also need {CSRF_HEADER}.",
)


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


async def principal(
    request: Request,
    c: Annotated[Container, Depends(container)],
    _token: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _cookie: Annotated[str | None, Depends(_session)],
) -> Principal:
    """A bearer API token, or the web session cookie (then unsafe methods need the CSRF header)."""
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated("use 'Authorization: Bearer <token>'", code="invalid_token")
        return await c.accounts.resolve_token(secret.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        user, ws = await c.accounts.resolve_session(cookie)
        if request.method not in _SAFE:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), ws.csrf_token.encode()):
                raise PermissionDenied("missing or wrong CSRF token", code="csrf_failed")
        return Principal.of_user(user)
    raise Unauthenticated("authentication required")


CurrentPrincipal = Annotated[Principal, Depends(principal)]
AppContainer = Annotated[Container, Depends(container)]
