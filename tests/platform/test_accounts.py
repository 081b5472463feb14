"""Accounts, users, tokens, sessions: the service and its HTTP surface."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Tenant, make_tenant
from zvonar.accounts.events import ApiTokenCreated, ApiTokenRevoked
from zvonar.accounts.models import Role
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.core.errors import Conflict, InvalidInput, Unauthenticated


async def test_me_with_token(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    r = await client.get("/api/v1/me", headers=tenant_a.headers)
    assert r.status_code == 200
    assert r.json()["account_id"] == str(tenant_a.account_id)
    assert r.json()["role"] == "admin"


@pytest.mark.parametrize(
    "header",
    [None, "Bearer zvt_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer "],
)
async def test_bad_or_missing_credentials_are_401(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = await client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] in {"unauthenticated", "invalid_token"}


async def test_token_shown_once_stored_hashed_and_revocable(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container, bus: RecordingBus
) -> None:
    r = await client.post(
        "/api/v1/tokens", json={"name": "crm", "role": "operator"}, headers=tenant_a.headers
    )
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("zvt_") and created["prefix"] == secret[: len(created["prefix"])]
    listed = (await client.get("/api/v1/tokens", headers=tenant_a.headers)).json()
    assert all("secret" not in t for t in listed)
    assert any(t["id"] == created["id"] for t in listed)
    # Nothing in the table equals the secret: only its hash is kept.
    from sqlalchemy import select

    from zvonar.accounts.models import ApiToken

    async with container.db.read() as s:
        hashes = list(await s.scalars(select(ApiToken.secret_hash)))
    assert secret not in hashes and all(len(h) == 64 for h in hashes)

    op = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/api/v1/me", headers=op)).json()["role"] == "operator"
    r = await client.delete(f"/api/v1/tokens/{created['id']}", headers=tenant_a.headers)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert (await client.get("/api/v1/me", headers=op)).status_code == 401
    assert bus.of_type(ApiTokenCreated) and bus.of_type(ApiTokenRevoked)


async def test_operator_token_cannot_manage_tokens_or_escalate(
    client: httpx.AsyncClient, container: Container
) -> None:
    op = await make_tenant(container, "charlie", role=Role.operator)
    r = await client.post("/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=op.headers)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "permission_denied"
    r = await client.get("/api/v1/users", headers=op.headers)
    assert r.status_code == 403


async def test_supervisor_cannot_mint_admin_token(
    client: httpx.AsyncClient, container: Container, tenant_a: Tenant
) -> None:
    from zvonar.accounts.access import Perm, Principal

    sup = Principal(account_id=tenant_a.account_id, role=Role.supervisor)
    assert not sup.can(Perm.tokens_manage)
    r = await client.post(
        "/api/v1/tokens", json={"name": "crm", "role": "admin"}, headers=tenant_a.headers
    )
    assert r.status_code == 201  # an admin may


async def test_users_create_and_duplicate(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    body = {
        "email": "Olena@Alpha.example",
        "name": "Olena",
        "role": "operator",
        "password": "long enough pw",
        "language": "uk",
    }
    r = await client.post("/api/v1/users", json=body, headers=tenant_a.headers)
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "olena@alpha.example"
    assert "password" not in r.text and "password_hash" not in r.text
    r = await client.post("/api/v1/users", json=body, headers=tenant_a.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "user_exists"


async def test_sign_in_same_error_for_unknown_user_and_wrong_password(
    container: Container, tenant_a: Tenant
) -> None:
    with pytest.raises(Unauthenticated) as wrong:
        await container.accounts.sign_in(tenant_a.admin_email, "wrong password", max_age=60)
    with pytest.raises(Unauthenticated) as unknown:
        await container.accounts.sign_in("nobody@nowhere.example", "whatever1", max_age=60)
    assert wrong.value.code == unknown.value.code == "bad_credentials"
    assert wrong.value.message == unknown.value.message
    signed = await container.accounts.sign_in(
        tenant_a.admin_email.upper(), tenant_a.admin_password, max_age=60
    )
    user, _ = await container.accounts.resolve_session(signed.session_secret)
    assert user.email == tenant_a.admin_email
    await container.accounts.sign_out(signed.session_secret)
    with pytest.raises(Unauthenticated):
        await container.accounts.resolve_session(signed.session_secret)


async def test_account_and_user_rules(container: Container) -> None:
    await container.accounts.create_account("One", "one")
    with pytest.raises(Conflict):
        await container.accounts.create_account("One again", "one")
    with pytest.raises(InvalidInput):
        await container.accounts.create_account("Bad", "Bad Slug!")
    acc = await container.accounts.account_by_slug("one")
    with pytest.raises(InvalidInput) as weak:
        await container.accounts.create_user(
            acc.id, email="a@one.example", name="A", role=Role.admin, password="short"
        )
    assert weak.value.code == "weak_password"
