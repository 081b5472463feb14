"""The directory-backed credential store, served domains and the per-realm challenger."""

from __future__ import annotations

from zvonar.container import Container
from zvonar.directory.schemas import EmployeeIn, EmployeePatch
from zvonar.pbx.credentials import DirectoryCredentialStore, RealmDomains, TenantChallenger
from zvonar.sip.auth import (
    Authorized,
    Challenge,
    ClientCredentials,
    Failed,
    client_auth_flow,
    compute_ha1,
)
from zvonar.sip.message import SipRequest, make_response, parse_message

from .conftest import PASSWORD, seed_account

SECRET = b"0123456789abcdef0123456789abcdef"


def register(user: str, domain: str, *, request_host: str | None = None) -> SipRequest:
    host = request_host or domain
    raw = (
        f"REGISTER sip:{host} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKabc123;rport\r\n"
        f"From: <sip:{user}@{domain}>;tag=f1\r\n"
        f"To: <sip:{user}@{domain}>\r\n"
        "Call-ID: reg-1@test\r\n"
        "CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{user}@127.0.0.1:5099>\r\n"
        "Expires: 300\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(raw)
    assert isinstance(msg, SipRequest)
    return msg


def login(
    challenger: TenantChallenger, req: SipRequest, user: str, password: str
) -> Authorized | Challenge | Failed:
    """Challenge, answer with `password`, return the challenger's verdict on the answer."""
    first = challenger.check(req, 100.0)
    assert isinstance(first, Challenge)
    flow = client_auth_flow(req, ClientCredentials(user, password))
    sent = next(flow)
    retry = flow.send(make_response(sent, first.status, headers=first.headers))
    return challenger.check(retry, 100.5)


async def test_loads_active_employees_ha1_per_account_realm(container: Container) -> None:
    alpha = await seed_account(container, "alpha")
    await seed_account(container, "bravo", number="+74951234568")
    store = DirectoryCredentialStore(container.db)
    await store.load()
    creds = store.get_credentials("101", "alpha.zvonar")
    assert creds is not None
    assert creds.ha1_for("MD5") == compute_ha1("MD5", "101", "alpha.zvonar", PASSWORD)
    assert creds.ha1_for("SHA-256") == compute_ha1("SHA-256", "101", "alpha.zvonar", PASSWORD)
    # Same username in another tenant: another realm, another HA1.
    other = store.get_credentials("101", "bravo.zvonar")
    assert other is not None and other.ha1_for("MD5") != creds.ha1_for("MD5")
    assert store.get_credentials("101", "charlie.zvonar") is None
    assert store.get_credentials("102", "alpha.zvonar") is None
    who = store.identity("101", "alpha.zvonar")
    assert who is not None and who.employee_id == alpha.employee_id
    assert store.account_for_aor("sip:101@alpha.zvonar") == alpha.account_id


async def test_directory_events_keep_the_cache_current(container: Container) -> None:
    alpha = await seed_account(container, "alpha")
    store = DirectoryCredentialStore(container.db)
    off = store.attach(container.bus)
    await store.load()
    p = alpha.principal
    # A new employee appears without a reload.
    boris = await container.directory.create_employee(
        p, EmployeeIn(name="Boris", extension="102", sip_password="another-pass-102")
    )
    assert store.get_credentials("102", "alpha.zvonar") is not None
    # Deactivated: gone; reactivated with a new password: the new HA1.
    await container.directory.update_employee(p, alpha.employee_id, EmployeePatch(active=False))
    assert store.get_credentials("101", "alpha.zvonar") is None
    await container.directory.update_employee(
        p, alpha.employee_id, EmployeePatch(active=True, sip_password="changed-pass-101")
    )
    creds = store.get_credentials("101", "alpha.zvonar")
    assert creds is not None
    assert creds.ha1_for("MD5") == compute_ha1("MD5", "101", "alpha.zvonar", "changed-pass-101")
    # Deleted (Boris: the account's scheme rings 101, who therefore cannot be deleted).
    await container.directory.delete_employee(p, boris.view.employee.id)
    assert store.get_credentials("102", "alpha.zvonar") is None
    # A new account's realm is served at once.
    await container.accounts.create_account("Delta", "delta")
    assert store.serves("delta.zvonar")
    off()


async def test_realm_domains_membership(container: Container) -> None:
    await seed_account(container, "alpha")
    store = DirectoryCredentialStore(container.db)
    await store.load()
    domains = RealmDomains(store, ["10.0.0.5"])
    assert "alpha.zvonar" in domains
    assert "10.0.0.5" in domains
    assert "bravo.zvonar" not in domains
    assert object() not in domains


async def test_challenger_uses_the_aor_realm_and_blocks_cross_tenant(
    container: Container,
) -> None:
    await seed_account(container, "alpha")
    await seed_account(container, "bravo", number="+74951234568", password="bravo-pass-101")
    store = DirectoryCredentialStore(container.db)
    await store.load()
    challenger = TenantChallenger(SECRET, store)

    first = challenger.check(register("101", "alpha.zvonar"), 1.0)
    assert isinstance(first, Challenge) and first.status == 401
    assert all('realm="alpha.zvonar"' in value for _, value in first.headers)

    ok = login(challenger, register("101", "alpha.zvonar"), "101", PASSWORD)
    assert isinstance(ok, Authorized) and ok.realm == "alpha.zvonar"
    # alpha's password does not open bravo's AOR; bravo's own does.
    assert isinstance(login(challenger, register("101", "bravo.zvonar"), "101", PASSWORD), Failed)
    theirs = login(challenger, register("101", "bravo.zvonar"), "101", "bravo-pass-101")
    assert isinstance(theirs, Authorized) and theirs.realm == "bravo.zvonar"
    assert isinstance(login(challenger, register("101", "alpha.zvonar"), "101", "wrong"), Failed)
    # An unknown domain is challenged in a realm nobody has credentials for.
    unknown = challenger.check(register("101", "nobody.zvonar"), 1.0)
    assert isinstance(unknown, Challenge)
    assert all('realm="zvonar"' in value for _, value in unknown.headers)
