"""How the PBX reaches a target a routing decision names: an employee's registered devices
and, when they chose it, their mobiles through a trunk; a SIP URI; an outside number through
a carrier. The resolver (``pbx/resolver.py``) decides *who*, and which trunk each outside
number takes (``Trunks``: the read model's ranking, pbx/snapshot.py ``trunk_for``); this
module knows *how to ring them* — contacts, flows, the carrier's credentials, RFC 5806
diversion, the trunk's caller ID, and the "press 1" prompt of a mobile that must confirm.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from zvonar.calls.events import Target, TargetKind
from zvonar.calls.plan import RingTarget
from zvonar.media.engine import PromptNotFoundError
from zvonar.media.prompts import prompt_path
from zvonar.pbx.dns import named_flow, server_part
from zvonar.pbx.snapshot import AccountInfo, Person, TrunkInfo
from zvonar.routing.engine import Dial
from zvonar.routing.scheme import TargetKind as RouteKind
from zvonar.sip.location import Binding
from zvonar.sip.ua import Flow, UserAgent
from zvonar.sip.uri import SipUri, parse_uri

__all__ = ["Bindings", "Reach", "Trunks", "uri_flow", "via_trunk"]

log = logging.getLogger(__name__)

Bindings = Callable[[str], list[Binding]]  # canonical AOR → live bindings
# An outside number (E.164) → the trunk to ring it through, None when no trunk may dial it:
# one call's numbers may each take another trunk (a mobile abroad, a per-country carrier).
Trunks = Callable[[str], TrunkInfo | None]


class Reach:
    """The contacts to ring for a dial; ``bindings`` are the registrar's live ones,
    ``prompts_dir`` an account's own prompts (for "press 1" in its language)."""

    def __init__(
        self, bindings: Bindings, prompts_dir: Callable[[uuid.UUID], Path] | None = None
    ) -> None:
        self.bindings = bindings
        self.prompts_dir = prompts_dir

    def employee(
        self,
        person: Person,
        realm: str,
        trunks: Trunks | None = None,
        diverted_by: str | None = None,
        *,
        account: AccountInfo | None = None,
        confirm_mobiles: bool = False,
    ) -> tuple[RingTarget, ...]:
        """All the employee's registered devices, plus their mobiles (each over the trunk
        ``trunks`` chooses for it) when they chose to be rung there (``ring_mobile``) — one
        wave, at once. A mobile takes the call only by pressing 1 (in ``account``'s
        language) when they chose so (``mobile_confirm``) or the caller asks it
        (``confirm_mobiles``: a queue's offer).
        Nothing while they are in do not disturb: a scheme moves on, a colleague's call gets
        its final answer, a queue offers the caller to another agent."""
        if person.dnd:
            return ()
        target = Target(TargetKind.employee, person.name, person.id)
        devices = tuple(
            RingTarget.phone(b.contact, UserAgent.binding_flow(b), target, f"x{person.extension}")
            for b in self.bindings(f"sip:{person.sip_username}@{realm}")
        )
        if not person.mobiles or trunks is None:
            return devices
        mobile = Target(TargetKind.mobile, f"{person.name} (mobile)"[:200], person.id)
        label = f"m{person.extension}"
        rings = []
        for number in person.mobiles:
            trunk = trunks(number)
            if trunk is None:  # no trunk may dial it
                continue
            ring = via_trunk(number, trunk, mobile, label, diverted_by)
            if ring is None:  # its host is unusable
                continue
            if diverted_by is None and trunk.caller_id:
                # A colleague's call: an extension means nothing to the carrier, the trunk's
                # own number does (the display still says who calls).
                ring = replace(ring, from_user=trunk.caller_id)
            rings.append(ring)
        mobiles = tuple(rings)
        if (person.mobile_confirm or confirm_mobiles) and account is not None and mobiles:
            prompt = self.prompt(account.id, account.language, "accept_call")
            mobiles = tuple(replace(r, accept_prompt=prompt) for r in mobiles)
        return devices + mobiles

    def prompt(self, account_id: uuid.UUID, language: str, key: str) -> Path | None:
        """The prompt ``key`` in ``language``, the account's own recording first; None (and
        a warning) when there is no such file."""
        base = self.prompts_dir(account_id) if self.prompts_dir else None
        try:
            return prompt_path(key, language, base_dir=base)
        except PromptNotFoundError:
            log.warning("account %s: no %s prompt", account_id, key)
            return None

    def dial(
        self,
        dial: Dial,
        staff: Mapping[str, Person],
        realm: str,
        trunks: Trunks | None,
        diverted_by: str | None = None,
        account: AccountInfo | None = None,
    ) -> list[RingTarget]:
        """The contacts ``dial`` reaches (an employee among ``staff``, a SIP URI, a number
        through the trunk ``trunks`` chooses for it); ``diverted_by``: the account's number
        the call came in on, named to the carrier when it is forwarded out through a trunk
        (RFC 5806)."""
        if dial.kind is RouteKind.employee:
            person = staff.get(dial.ref)
            if person is None:
                return []
            return list(self.employee(person, realm, trunks, diverted_by, account=account))
        if dial.kind is RouteKind.sip:
            try:
                uri = parse_uri(dial.ref)
            except Exception:
                return []
            flow = uri_flow(uri) if isinstance(uri, SipUri) else None
            if flow is None:
                return []
            return [RingTarget(dial.ref, flow, Target(TargetKind.external, dial.ref[:200]))]
        trunk = trunks(dial.ref) if dial.kind is RouteKind.number and trunks else None
        if trunk is not None:
            target = Target(TargetKind.external, dial.ref)
            ring = via_trunk(dial.ref, trunk, target, diverted_by=diverted_by)
            return [ring] if ring is not None else []
        return []


def uri_flow(uri: SipUri) -> Flow | None:
    # A host name is kept as is: pbx.dns resolves it (cached) before the wave is rung.
    return named_flow(uri.host, uri.port, uri.param("transport") or "udp")


def via_trunk(
    number: str,
    trunk: TrunkInfo,
    target: Target,
    label: str | None = None,
    diverted_by: str | None = None,
) -> RingTarget | None:
    """``number`` rung through the carrier of ``trunk`` (None: its host is unusable), as a
    forward from the account's number ``diverted_by`` when a customer's call is passed on."""
    flow = named_flow(trunk.host, trunk.port, trunk.transport)
    if flow is None:
        return None
    # No port: the URI names the transport and pbx.dns locates the carrier by SRV.
    uri = f"sip:{number}@{server_part(flow.host, trunk.port, trunk.transport)}"
    return RingTarget(
        uri,
        flow,
        target,
        label,
        auth=trunk.auth,
        diversion=diverted_by,
        secure_media=trunk.srtp,
        carrier_user=trunk.from_user,
    )
