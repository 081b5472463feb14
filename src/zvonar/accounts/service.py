"""Account, user, token and session writes. Services are the only writers (DESIGN.md)."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from zvonar.accounts.access import Perm, Principal
from zvonar.accounts.events import (
    AccountCreated,
    AccountSettingsChanged,
    ApiTokenCreated,
    ApiTokenRevoked,
    UserCreated,
)
from zvonar.accounts.models import Account, ApiToken, Role, User, WebSession
from zvonar.accounts.passwords import (
    hash_password,
    needs_rehash,
    new_secret,
    sha256_hex,
    verify_password,
)
from zvonar.accounts.rules import (
    ACCOUNT_LANGUAGES,
    account_country,
    check_account_values,
    check_time_zone,
    is_account_name,
)
from zvonar.accounts.throttle import LoginThrottle
from zvonar.core.errors import Conflict, InvalidInput, LimitExceeded, NotFound, Unauthenticated
from zvonar.core.schemas import is_email
from zvonar.store.base import utcnow
from zvonar.store.db import Database

TOKEN_PREFIX = "zvt"  # noqa: S105 (a public marker, not a secret)
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MIN_PASSWORD = 8


@dataclass(frozen=True)
class IssuedToken:
    """Returned once at creation: ``secret`` is never stored and cannot be shown again."""

    token: ApiToken
    secret: str


@dataclass(frozen=True)
class SignedIn:
    session_secret: str
    csrf_token: str
    user: User


class AccountService:
    def __init__(
        self,
        db: Database,
        *,
        throttle: LoginThrottle | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.throttle = throttle or LoginThrottle()
        self._monotonic = monotonic

    # --- accounts and users ------------------------------------------------------------------
    async def create_account(
        self,
        name: str,
        slug: str,
        *,
        time_zone: str = "UTC",
        country: str = "RU",
        language: str = "ru",
    ) -> Account:
        if not _SLUG.match(slug):
            raise InvalidInput("slug must be lower-case letters, digits and dashes", field="slug")
        name = name.strip()
        if not is_account_name(name):
            raise InvalidInput("the name must be 1-200 printable characters", field="name")
        country = account_country(country)
        check_time_zone(time_zone)
        if language not in ACCOUNT_LANGUAGES:
            raise InvalidInput(
                f"unknown language {language!r}: one of {', '.join(ACCOUNT_LANGUAGES)}",
                code="invalid_language",
                field="language",
            )
        async with self.db.unit_of_work() as uow:
            if await uow.session.scalar(select(Account.id).where(Account.slug == slug)):
                raise Conflict(f"account {slug!r} already exists", code="account_exists")
            account = Account(
                name=name,
                slug=slug,
                time_zone=time_zone,
                country=country,
                language=language,
            )
            uow.session.add(account)
            await uow.session.flush()
            uow.emit(AccountCreated(account_id=account.id, name=name))
        return account

    async def get_account(self, account_id: uuid.UUID) -> Account:
        async with self.db.read() as s:
            account = await s.get(Account, account_id)
        if account is None:
            raise NotFound("account not found")
        return account

    async def account_settings(self, p: Principal) -> Account:
        """The principal's account (``directory.read``: operators read its zone, language)."""
        p.require(Perm.directory_read)
        return await self.get_account(p.account_id)

    async def update_settings(self, p: Principal, values: dict[str, Any]) -> Account:
        """Change the account's settings (``config.manage``, as ``config apply``): the same
        rules (accounts/rules.py, ``invalid_setting`` with ``details.field``), and the same
        ``AccountSettingsChanged``, which the running PBX follows at once and other processes
        within a second (the outbox). A value equal to the stored one is no change."""
        p.require(Perm.config_manage)
        check_account_values(values, code="invalid_setting", prefix="")
        async with self.db.unit_of_work() as uow:
            account = await uow.session.get(Account, p.account_id)
            if account is None:
                raise NotFound("account not found")
            changed = tuple(f for f, v in values.items() if getattr(account, f) != v)
            for field in changed:
                setattr(account, field, values[field])
            if changed:
                uow.emit(AccountSettingsChanged(account_id=account.id, changed=changed))
        return account

    async def account_by_slug(self, slug: str) -> Account:
        async with self.db.read() as s:
            account = await s.scalar(select(Account).where(Account.slug == slug))
        if account is None:
            raise NotFound(f"account {slug!r} not found")
        return account

    async def create_user(
        self,
        account_id: uuid.UUID,
        *,
        email: str,
        name: str,
        role: Role,
        password: str | None = None,
        language: str | None = None,
    ) -> User:
        email = email.strip().lower()
        if not is_email(email):
            raise InvalidInput("not an email address", field="email", code="invalid_email")
        if password is not None and len(password) < MIN_PASSWORD:
            raise InvalidInput(
                f"password must have at least {MIN_PASSWORD} characters",
                field="password",
                code="weak_password",
            )
        async with self.db.unit_of_work() as uow:
            if await uow.session.scalar(select(User.id).where(User.email == email)):
                raise Conflict(f"user {email!r} already exists", code="user_exists")
            user = User(
                account_id=account_id,
                email=email,
                name=name,
                role=role,
                language=language,
                password_hash=hash_password(password) if password else None,
            )
            uow.session.add(user)
            await uow.session.flush()
            uow.emit(UserCreated(account_id=account_id, user_id=user.id, email=email, role=role))
        return user

    async def user_by_email(self, email: str) -> User | None:
        async with self.db.read() as s:
            return await s.scalar(select(User).where(User.email == email.strip().lower()))

    async def set_password(self, user_id: uuid.UUID, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise InvalidInput("password too short", field="password", code="weak_password")
        async with self.db.unit_of_work() as uow:
            user = await uow.session.get(User, user_id)
            if user is None:
                raise NotFound("user not found")
            user.password_hash = hash_password(password)

    async def list_users(self, principal: Principal) -> list[User]:
        principal.require(Perm.users_manage)
        async with self.db.read() as s:
            rows = await s.scalars(
                select(User).where(User.account_id == principal.account_id).order_by(User.email)
            )
            return list(rows)

    # --- web sessions ------------------------------------------------------------------------
    async def sign_in(
        self, email: str, password: str, *, max_age: int, source: str | None = None
    ) -> SignedIn:
        """Check a password; the same error for an unknown email and a wrong password.

        Repeated failures for one email or from one source are refused for a while with
        ``LimitExceeded(code="too_many_attempts")`` before any hash is computed.
        """
        email = email.strip().lower()
        mono = self._monotonic()
        wait = self.throttle.retry_after(email, source, mono)
        if wait is not None:
            raise LimitExceeded(
                "too many failed sign-ins; try again later",
                code="too_many_attempts",
                retry_after=int(wait) + 1,
            )
        async with self.db.unit_of_work() as uow:
            user = await uow.session.scalar(select(User).where(User.email == email))
            ok = verify_password(user.password_hash if user else None, password)
            if user is None or not ok or not user.is_active:
                self.throttle.failed(email, source, mono)
                raise Unauthenticated("wrong email or password", code="bad_credentials")
            self.throttle.succeeded(email)
            if user.password_hash and needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            now = utcnow()
            user.last_login_at = now
            secret = secrets.token_urlsafe(32)
            csrf = secrets.token_urlsafe(24)
            uow.session.add(
                WebSession(
                    id_hash=sha256_hex(secret),
                    user_id=user.id,
                    csrf_token=csrf,
                    expires_at=now + timedelta(seconds=max_age),
                )
            )
        return SignedIn(session_secret=secret, csrf_token=csrf, user=user)

    async def resolve_session(self, secret: str) -> tuple[User, WebSession]:
        async with self.db.read() as s:
            ws = await s.get(WebSession, sha256_hex(secret))
            if ws is None or ws.expires_at <= utcnow():
                raise Unauthenticated("session expired", code="session_expired")
            user = await s.get(User, ws.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("session expired", code="session_expired")
        return user, ws

    async def sign_out(self, secret: str) -> None:
        async with self.db.unit_of_work() as uow:
            await uow.session.execute(
                delete(WebSession).where(WebSession.id_hash == sha256_hex(secret))
            )

    async def set_language(self, user_id: uuid.UUID, language: str) -> None:
        async with self.db.unit_of_work() as uow:
            user = await uow.session.get(User, user_id)
            if user is None:
                raise NotFound("user not found")
            user.language = language

    # --- API tokens ----------------------------------------------------------------------------
    async def create_token(
        self,
        account_id: uuid.UUID,
        *,
        name: str,
        role: Role,
        created_by: uuid.UUID | None = None,
        expires_at: datetime | None = None,
    ) -> IssuedToken:
        if expires_at is not None and expires_at <= utcnow():
            # It could never be used: the caller's clock or arithmetic is off, say so now.
            raise InvalidInput("expires_at is not in the future", code="expiry_in_past")
        secret = new_secret(TOKEN_PREFIX)
        async with self.db.unit_of_work() as uow:
            token = ApiToken(
                account_id=account_id,
                name=name,
                role=role,
                created_by=created_by,
                prefix=secret[: len(TOKEN_PREFIX) + 7],
                secret_hash=sha256_hex(secret),
                expires_at=expires_at,
            )
            uow.session.add(token)
            await uow.session.flush()
            uow.emit(ApiTokenCreated(account_id=account_id, token_id=token.id, role=role))
        return IssuedToken(token=token, secret=secret)

    async def list_tokens(self, principal: Principal) -> list[ApiToken]:
        principal.require(Perm.tokens_manage)
        async with self.db.read() as s:
            rows = await s.scalars(
                select(ApiToken)
                .where(ApiToken.account_id == principal.account_id)
                .order_by(ApiToken.created_at)
            )
            return list(rows)

    async def revoke_token(self, principal: Principal, token_id: uuid.UUID) -> ApiToken:
        principal.require(Perm.tokens_manage)
        async with self.db.unit_of_work() as uow:
            token = await uow.session.get(ApiToken, token_id)
            if token is None or token.account_id != principal.account_id:
                raise NotFound("token not found")
            if token.revoked_at is None:
                token.revoked_at = utcnow()
                uow.emit(ApiTokenRevoked(account_id=token.account_id, token_id=token.id))
        return token

    async def resolve_token(self, secret: str, *, touch: bool = True) -> Principal:
        """The principal a token's secret stands for; ``touch=False`` checks it without
        counting as a use (``last_used_at``)."""
        async with self.db.unit_of_work() as uow:
            token = await uow.session.scalar(
                select(ApiToken).where(ApiToken.secret_hash == sha256_hex(secret))
            )
            now = utcnow()
            if (
                token is None
                or token.revoked_at is not None
                or (token.expires_at is not None and token.expires_at <= now)
            ):
                raise Unauthenticated("invalid or revoked API token", code="invalid_token")
            # Touch at most once a minute: a hot integration should not write on every request.
            if touch and (
                token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1)
            ):
                token.last_used_at = now
            return Principal(
                account_id=token.account_id,
                role=token.role,
                token_id=token.id,
                user_id=token.created_by,
            )

    async def count_accounts(self) -> int:
        async with self.db.read() as s:
            return int(await s.scalar(select(func.count()).select_from(Account)) or 0)
