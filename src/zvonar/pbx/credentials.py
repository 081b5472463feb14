"""SIP credentials and served domains over the directory, for one multi-tenant listener.

One SIP listener serves every account: the domain (and digest realm) names the tenant,
``directory.phone.sip_realm(slug)`` = ``"<slug>.zvonar"``, and phones register as
``sip:<sip_username>@<slug>.zvonar``. The SIP stack asks synchronously (the UA core is sans-IO),
so the active employees' HA1s live in memory: loaded once at start, then kept current by the
directory's events (one employee re-read per event). Plain passwords are never held.

Three adapters plug this into ``zvonar.sip`` without changing it:

- :class:`DirectoryCredentialStore` is a ``sip.auth.CredentialStore``;
- :class:`RealmDomains` is the registrar's ``domains`` set: "contains" any existing realm;
- :class:`TenantChallenger` is a ``DigestChallenger`` that challenges each request in the
  realm of its address-of-record (one HMAC nonce secret for all of them).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from zvonar.accounts.events import AccountCreated
from zvonar.accounts.models import Account
from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.directory.events import EmployeeEvent
from zvonar.directory.models import Employee
from zvonar.directory.phone import sip_realm
from zvonar.sip.auth import SERVER_ALGORITHMS, AuthResult, Credentials, DigestChallenger
from zvonar.sip.message import SipRequest
from zvonar.sip.uri import SipUri
from zvonar.store.db import Database

__all__ = [
    "DirectoryCredentialStore",
    "RealmDomains",
    "SipIdentity",
    "TenantChallenger",
]

log = logging.getLogger(__name__)

REALM_SUFFIX = ".zvonar"


@dataclass(frozen=True)
class SipIdentity:
    """Who a SIP username of a realm is: the employee behind registrations and calls."""

    account_id: uuid.UUID
    employee_id: uuid.UUID
    extension: str
    name: str
    aor: str = ""  # their address of record, sip:<username>@<realm> (registrar lookups)
    dnd: bool = False  # in do not disturb (presence shows them busy)


def _credentials(emp: Employee, realm: str) -> Credentials | None:
    if not emp.active or emp.ha1_md5 is None:
        return None
    pairs = [("SHA-256", emp.ha1_sha256), ("MD5", emp.ha1_md5)]
    return Credentials(emp.sip_username, realm, tuple((a, h) for a, h in pairs if h))


class DirectoryCredentialStore:
    """Active employees' digest credentials by (SIP username, realm), in memory.

    ``load()`` reads everything; ``attach(bus)`` keeps it current. Events that arrive while a
    full load runs are re-applied after it, so a stale snapshot never wins.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._creds: dict[tuple[str, str], Credentials] = {}
        self._who: dict[tuple[str, str], SipIdentity] = {}
        self._key_of: dict[uuid.UUID, tuple[str, str]] = {}  # employee id → its key
        self._by_extension: dict[tuple[uuid.UUID, str], SipIdentity] = {}  # (account, ext)
        self._realms: dict[str, uuid.UUID] = {}  # realm → account id
        self._slugs: dict[uuid.UUID, str] = {}  # account id → realm
        self._loading = False
        self._touched: set[uuid.UUID] = set()
        self.reloads = 0  # per-employee refreshes done (observability, tests)

    # -- the sip.auth.CredentialStore protocol -------------------------------------------------

    def get_credentials(self, username: str, realm: str) -> Credentials | None:
        return self._creds.get((username, realm))

    # -- lookups for the registrar and the resolver --------------------------------------------

    def serves(self, realm: str) -> bool:
        return realm in self._realms

    def account_for_realm(self, realm: str) -> uuid.UUID | None:
        return self._realms.get(realm)

    def realm_of(self, account_id: uuid.UUID) -> str | None:
        return self._slugs.get(account_id)

    def identity(self, username: str, realm: str) -> SipIdentity | None:
        return self._who.get((username, realm))

    def by_extension(self, account_id: uuid.UUID, extension: str) -> SipIdentity | None:
        """The employee (with SIP credentials) at ``extension`` of the account."""
        return self._by_extension.get((account_id, extension))

    def account_for_aor(self, aor: str) -> uuid.UUID | None:
        """The account of a canonical AOR ``sip:user@<slug>.zvonar`` (None if none)."""
        host = aor.rsplit("@", 1)[-1] if "@" in aor else aor.removeprefix("sip:")
        return self._realms.get(host)

    # -- loading -------------------------------------------------------------------------------

    async def load(self) -> None:
        self._loading, self._touched = True, set()
        try:
            async with self._db.read() as s:
                accounts = (await s.execute(select(Account.id, Account.slug))).all()
                employees = list(await s.scalars(select(Employee)))
            realms = {sip_realm(slug): aid for aid, slug in accounts}
            self._realms = realms
            self._slugs = {aid: realm for realm, aid in realms.items()}
            self._creds, self._who, self._key_of, self._by_extension = {}, {}, {}, {}
            for emp in employees:
                self._install(emp)
            touched = set(self._touched)
        finally:
            self._loading = False
        for employee_id in touched:
            await self.refresh_employee(employee_id)

    def _install(self, emp: Employee) -> None:
        realm = self._slugs.get(emp.account_id)
        if realm is None:
            return
        creds = _credentials(emp, realm)
        if creds is None:
            return
        key = (emp.sip_username, realm)
        self._creds[key] = creds
        aor = f"sip:{emp.sip_username}@{realm}"
        who = SipIdentity(emp.account_id, emp.id, emp.extension, emp.name, aor, emp.dnd)
        self._who[key] = who
        self._key_of[emp.id] = key
        self._by_extension[(emp.account_id, emp.extension)] = who

    def _forget(self, employee_id: uuid.UUID) -> None:
        key = self._key_of.pop(employee_id, None)
        if key is not None:
            self._creds.pop(key, None)
            who = self._who.pop(key, None)
            if who is not None:
                ext_key = (who.account_id, who.extension)
                if self._by_extension.get(ext_key) is who:
                    del self._by_extension[ext_key]

    async def refresh_employee(self, employee_id: uuid.UUID) -> None:
        """Re-read one employee (created, changed, deleted, deactivated, new password)."""
        if self._loading:
            self._touched.add(employee_id)
        async with self._db.read() as s:
            emp = await s.get(Employee, employee_id)
        self._forget(employee_id)
        if emp is not None:
            self._install(emp)
        self.reloads += 1

    async def refresh_accounts(self) -> None:
        async with self._db.read() as s:
            accounts = (await s.execute(select(Account.id, Account.slug))).all()
        self._realms = {sip_realm(slug): aid for aid, slug in accounts}
        self._slugs = {aid: realm for realm, aid in self._realms.items()}

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Follow the directory; returns the unsubscribe."""

        async def on_employee(event: Event) -> None:
            # Any change of an employee: created, changed (DND too), deleted.
            if isinstance(event, EmployeeEvent):
                await self.refresh_employee(event.employee_id)

        async def on_account(_event: Event) -> None:
            await self.refresh_accounts()

        offs = [
            bus.subscribe(EmployeeEvent, on_employee),
            bus.subscribe(AccountCreated, on_account),
        ]

        def detach() -> None:
            for off in offs:
                off()

        return detach


class RealmDomains(frozenset[str]):
    """The registrar's served domains (``RegistrarConfig.domains``): every account realm that
    exists now, plus fixed ``extra`` names. Only membership is meaningful; iteration sees the
    extras alone."""

    _store: DirectoryCredentialStore

    def __new__(cls, store: DirectoryCredentialStore, extra: Iterable[str] = ()) -> RealmDomains:
        obj = super().__new__(cls, (h.lower() for h in extra))
        obj._store = store
        return obj

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str):
            return False
        return frozenset.__contains__(self, item) or self._store.serves(item)


def request_realm(request: SipRequest) -> str | None:
    """The realm a request authenticates in: its address-of-record's domain.

    REGISTER: the To URI (the AOR being bound, §10.3 step 5 — authenticating in that realm is
    what stops a user of one account from binding another account's AOR); other requests: the
    From URI (the calling user's identity, §22.3).
    """
    uri = request.to.uri if request.method == "REGISTER" else request.from_.uri
    return uri.host if isinstance(uri, SipUri) else None


class TenantChallenger(DigestChallenger):
    """Digest auth in the realm of each request's domain (RFC 3261 §22.1: one realm per
    protection space — here one per account). Unknown domains are challenged in a realm no
    credentials exist for, so they can never authenticate."""

    FALLBACK_REALM = "zvonar"

    def __init__(
        self,
        secret: bytes,
        store: DirectoryCredentialStore,
        *,
        algorithms: Sequence[str] = SERVER_ALGORITHMS,
        nonce_ttl: float = 300.0,
    ) -> None:
        super().__init__(
            self.FALLBACK_REALM, secret, store, algorithms=algorithms, nonce_ttl=nonce_ttl
        )
        self._secret_bytes = secret
        self._store_ref = store
        self._algorithms = tuple(algorithms)
        self._by_realm: dict[str, DigestChallenger] = {}

    def for_realm(self, realm: str) -> DigestChallenger:
        if not self._store_ref.serves(realm):
            return self
        challenger = self._by_realm.get(realm)
        if challenger is None:
            challenger = DigestChallenger(
                realm,
                self._secret_bytes,
                self._store_ref,
                algorithms=self._algorithms,
                nonce_ttl=self.nonce_ttl,
            )
            self._by_realm[realm] = challenger
        return challenger

    def check(self, request: SipRequest, now: float, *, proxy: bool | None = None) -> AuthResult:
        realm = request_realm(request)
        target = self if realm is None else self.for_realm(realm)
        if target is self:
            return super().check(request, now, proxy=proxy)
        return target.check(request, now, proxy=proxy)
