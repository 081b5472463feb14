"""The HTTP route step's questions to the customer's back office.

:class:`~zvonar.integrations.http_route.HttpRouter` asks (signed, SSRF-checked, bounded in
time); this turns its answer into the scheme interpreter's outcome. The back office names
schemes, groups and employees by id, the interpreter by natural key, so a reply is translated
through the account's snapshot; whatever fails (no answer, a refused URL, an id the account
does not have) is an ``http_error`` whose payload says why, for the journal's scheme path.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from zvonar.integrations.http_route import CallFacts, Fallback, HttpRouter, RouteDecision
from zvonar.pbx.snapshot import RoutingSnapshot
from zvonar.routing.engine import HttpRequest, Outcome, OutcomeKind
from zvonar.routing.models import SchemeRow

log = logging.getLogger(__name__)


class BackOffice:
    def __init__(
        self,
        http: HttpRouter | None,
        route_secret: Callable[[uuid.UUID], str],
        snapshot: RoutingSnapshot,
        *,
        allow_private: bool = False,
    ) -> None:
        self.http = http
        self.route_secret = route_secret  # the account's signing key (integrations/signing.py)
        self.snapshot = snapshot
        self.allow_private = allow_private  # every account's (tests); else the account's setting

    async def ask(
        self,
        request: HttpRequest,
        facts: CallFacts,
        account_id: uuid.UUID,
        rows: list[SchemeRow],
    ) -> Outcome:
        if self.http is None:
            return Outcome(OutcomeKind.http_error, payload="no HTTP client")
        snap = await self.snapshot.account(account_id)
        decision = await self.http.route(
            request.url,
            facts,
            secret=self.route_secret(account_id),
            allow_private=self.allow_private
            or (snap is not None and snap.account.http_route_private),
            timeout=request.timeout,
        )
        if isinstance(decision, Fallback):
            # The customer's integrator reads why in the journal's path; we log the detail.
            log.info(
                "http route of account %s: %s (%s), the step's fallback runs",
                account_id,
                decision.reason.value,
                decision.detail,
            )
            return Outcome(OutcomeKind.http_error, payload=decision.reason.value)
        payload = await self._engine_reply(decision, account_id, rows)
        if payload is None:
            return Outcome(OutcomeKind.http_error, payload="unknown target in reply")
        return Outcome(OutcomeKind.http_reply, payload=payload)

    async def _engine_reply(
        self, decision: RouteDecision, account_id: uuid.UUID, rows: list[SchemeRow]
    ) -> dict[str, str] | None:
        """The back office names things by id; the interpreter by natural key."""
        kind, value = decision.kind.value, decision.value
        if kind in ("number", "action"):
            return {kind: value}
        if kind == "scheme":
            name = next((r.name for r in rows if str(r.id) == value), None)
            return {"scheme": name} if name else None
        snap = await self.snapshot.account(account_id)
        ref = _uuid(value)
        if kind == "group":
            gname = snap.group_names.get(ref) if snap is not None and ref is not None else None
            return {"group": gname} if gname else None
        if value.isdigit():
            return {"employee": value}
        ext = snap.extensions.get(ref) if snap is not None and ref is not None else None
        return {"employee": ext} if ext else None


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
