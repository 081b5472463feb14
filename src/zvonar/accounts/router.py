"""HTTP endpoints of the accounts slice: who am I, users, API tokens."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from zvonar.accounts.access import Perm
from zvonar.accounts.models import Role
from zvonar.accounts.schemas import (
    AccountOut,
    AccountPatch,
    MeOut,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
)
from zvonar.api.deps import AppContainer, CurrentPrincipal
from zvonar.core.errors import PermissionDenied

router = APIRouter(tags=["accounts"])

_RANK = {Role.operator: 0, Role.marketer: 0, Role.supervisor: 1, Role.admin: 2}


@router.get("/me", response_model=MeOut)
async def me(p: CurrentPrincipal) -> MeOut:
    return MeOut(account_id=p.account_id, role=p.role, user_id=p.user_id, token_id=p.token_id)


@router.get("/account", response_model=AccountOut)
async def get_account(p: CurrentPrincipal, c: AppContainer) -> AccountOut:
    """The account's settings (``directory.read``)."""
    return AccountOut.model_validate(await c.accounts.account_settings(p))


@router.patch("/account", response_model=AccountOut)
async def update_account(body: AccountPatch, p: CurrentPrincipal, c: AppContainer) -> AccountOut:
    """Change the account's settings (``config.manage``); only the fields sent change.
    ``422 invalid_setting`` names the field in ``details.field``."""
    values = body.model_dump(exclude_unset=True)
    return AccountOut.model_validate(await c.accounts.update_settings(p, values))


@router.get("/users", response_model=list[UserOut])
async def list_users(p: CurrentPrincipal, c: AppContainer) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in await c.accounts.list_users(p)]


@router.post("/users", response_model=UserOut, status_code=201)
async def create_user(body: UserIn, p: CurrentPrincipal, c: AppContainer) -> UserOut:
    p.require(Perm.users_manage)
    user = await c.accounts.create_user(
        p.account_id,
        email=body.email,
        name=body.name,
        role=body.role,
        password=body.password,
        language=body.language,
    )
    return UserOut.model_validate(user)


@router.get("/tokens", response_model=list[TokenOut])
async def list_tokens(p: CurrentPrincipal, c: AppContainer) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in await c.accounts.list_tokens(p)]


@router.post("/tokens", response_model=TokenCreatedOut, status_code=201)
async def create_token(body: TokenIn, p: CurrentPrincipal, c: AppContainer) -> TokenCreatedOut:
    p.require(Perm.tokens_manage)
    # A token never carries more power than whoever minted it.
    if _RANK[body.role] > _RANK[p.role]:
        raise PermissionDenied("cannot mint a token above your own role", code="role_escalation")
    issued = await c.accounts.create_token(
        p.account_id,
        name=body.name,
        role=body.role,
        created_by=p.user_id,
        expires_at=body.expires_at,
    )
    out = TokenOut.model_validate(issued.token).model_dump()
    return TokenCreatedOut(**out, secret=issued.secret)


@router.delete("/tokens/{token_id}", response_model=TokenOut)
async def revoke_token(token_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer) -> TokenOut:
    return TokenOut.model_validate(await c.accounts.revoke_token(p, token_id))
