"""Who is calling: the B2BUA's INVITE gate (``calls.b2bua.InviteGate``).

Three kinds of callers reach the one multi-tenant listener:

- a phone of ours: the From domain is an account realm (``<slug>.zvonar``), whatever address
  the INVITE comes from. It must pass digest (407 Proxy-Authenticate in that
  realm, RFC 3261 §22.3, via ``TenantChallenger``) and the digest username must be the From
  user (else 403: one employee's password must not place calls as another). Only such calls
  may dial extensions and the outside world;
- a trusted trunk: the source IP is in an active trunk's ``allowed_sources`` (IPs or CIDRs:
  required for IP auth, the carrier's other sending addresses for a registration trunk); or
  the Request-URI carries the ``line`` token a registration trunk bound its Contact
  with, or the INVITE comes from that trunk's registrar's address (pbx/trunk_registration.py).
  Carriers do not answer digest challenges; the call is inbound to our numbers. A trunk
  vouches for its own account only (``CallerAuth.trunk_of``): a tenant may list any address,
  so towards another tenant's number the same INVITE is a stranger's (the resolver decides,
  once it knows whose number is called). A phone is told by its From first: an office's
  phones share its NAT address with its own PBX listed as a trunk, and a tenant may list
  another tenant's office address; carriers never write our realms in From;
- anyone else (a foreign SIP address): unauthenticated, routed as an inbound call to our
  numbers only — the resolver never gives them internal or outbound routes.

The gate runs synchronously inside the UA's event delivery, so the trunks' sources are kept in
memory: loaded at start, reloaded on every ``TrunkChanged``.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import select

from zvonar.calls.plan import CallerAuth
from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.directory.events import TrunkChanged
from zvonar.directory.models import Trunk
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.sip.ua import IncomingRequest, UserAgent
from zvonar.sip.uri import SipUri
from zvonar.store.db import Database

__all__ = ["InviteGate", "RegisteredTrunks", "TrunkSources", "trunk_auth"]

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_VERDICTS = 4096
_STRANGER = CallerAuth()


def trunk_auth(account_id: uuid.UUID, srtp: bool) -> CallerAuth:
    """The caller a trunk of ``account_id`` vouches for (``srtp``: it requires SRTP)."""
    accounts = frozenset((account_id,))
    return CallerAuth(trunk_of=accounts, srtp_of=accounts if srtp else frozenset())


class TrunkSources:
    """Source networks of active trunks, in memory (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # A trunk's source network, the trunk's caller (its account, whether it needs SRTP).
        self._nets: tuple[tuple[Network, CallerAuth], ...] = ()
        # source host → its trunks' caller or None (untrusted), until the trunks change
        self._verdicts: dict[str, CallerAuth | None] = {}

    async def load(self) -> None:
        async with self._db.read() as s:
            rows = list(
                # Any auth mode: a registering carrier may send its calls from other addresses
                # (its SBCs) than its registrar's; the trunk then lists them.
                await s.scalars(select(Trunk).where(Trunk.active.is_(True)))
            )
        nets: list[tuple[Network, CallerAuth]] = []
        for trunk in rows:
            vouched = trunk_auth(trunk.account_id, trunk.srtp)
            for text in trunk.allowed_sources or []:
                try:
                    nets.append((ipaddress.ip_network(text.strip(), strict=False), vouched))
                except ValueError:
                    log.warning("trunk %s: allowed source %r is no IP/CIDR", trunk.id, text)
        self._nets, self._verdicts = tuple(nets), {}

    def trunk_caller(self, host: str) -> CallerAuth | None:
        """Who a call from ``host`` is if trusted trunks send it (None: no trunk's source):
        the accounts whose trunks list ``host``, and those of them requiring SRTP."""
        try:
            return self._verdicts[host]
        except KeyError:
            pass
        if len(self._verdicts) >= _VERDICTS:  # bounded: sources are chosen by strangers
            self._verdicts.clear()
        verdict = self._verdicts[host] = self._match(host)
        return verdict

    def _match(self, host: str) -> CallerAuth | None:
        try:
            addr = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return None
        found: CallerAuth | None = None
        for net, vouched in self._nets:
            if net.version == addr.version and addr in net:
                found = vouched if found is None else found | vouched
        return found

    def attach(self, bus: EventBus) -> Callable[[], None]:
        async def on_trunk(_event: Event) -> None:
            await self.load()

        return bus.subscribe(TrunkChanged, on_trunk)


class RegisteredTrunks(Protocol):
    """What the gate asks the registration trunks (``TrunkRegistrations``)."""

    def caller_for_line(self, line: str) -> CallerAuth | None: ...

    def caller_for_source(self, host: str, port: int) -> CallerAuth | None: ...


class InviteGate:
    """``gate(incoming, now)`` → :class:`CallerAuth`, or None after answering 407/403."""

    def __init__(
        self, ua: UserAgent, credentials: DirectoryCredentialStore, trunks: TrunkSources
    ) -> None:
        self.ua = ua
        self.credentials = credentials
        self.trunks = trunks
        # The registration trunks (pbx/trunk_registration.py), set once they run.
        self.registered: RegisteredTrunks | None = None

    def __call__(self, inc: IncomingRequest, now: float) -> CallerAuth | None:
        from_uri = inc.request.from_.uri
        if isinstance(from_uri, SipUri) and self.credentials.serves(from_uri.host):
            # A phone of ours, whatever its address: an office's phones share their NAT
            # address with its own PBX or gateway listed as a trunk, and a tenant may list
            # any address (another tenant's office) as its trunk's source. Carriers never
            # write our realms in From.
            return self._phone(inc, from_uri, now)
        flow = inc.flow
        trunk = self.trunks.trunk_caller(flow.host)
        registered = self.registered
        if registered is not None:
            # A source may be several accounts' trunk, each its own way (IP auth, a line
            # token, a registrar): each vouches for its own account's numbers only.
            uri = inc.request.uri
            line = uri.param("line") if isinstance(uri, SipUri) else None
            for other in (
                registered.caller_for_line(line) if line else None,
                registered.caller_for_source(flow.host, flow.port),
            ):
                if other is not None:
                    trunk = other if trunk is None else trunk | other
        return trunk if trunk is not None else _STRANGER  # a foreign caller: our numbers only

    def _phone(self, inc: IncomingRequest, from_uri: SipUri, now: float) -> CallerAuth | None:
        realm = from_uri.host
        user = self.ua.authenticate(inc, now)  # sends the 407 / refusal itself
        if user is None:
            return None
        identity = self.credentials.identity(user, realm)
        if identity is None or (from_uri.user or "") != user:
            reason = "Forbidden (From does not match the credentials)"
            self.ua.reply(inc, 403, now, reason=reason)
            return None
        return CallerAuth(account_id=identity.account_id, user=user, realm=realm)
