"""HTTP endpoints of the running PBX: an account's live status, the process's metrics.

``GET /api/v1/pbx/status`` (``directory.read``): the account's registered phones, its trunks'
registrations at their carriers and its calls in progress; ``503 pbx_unavailable`` when this
process runs no PBX.

``GET /api/v1/pbx/trunks/{trunk_id}/servers`` (``directory.read``): where the trunk's calls
go now, in the order they are tried — its host located as RFC 3263 says (SRV for a trunk
without a port), from the PBX's DNS cache; an empty list when nothing reachable is found.
``404 not_found`` for another account's trunk (before anything else), ``503 pbx_unavailable``
without a PBX in this process.

``GET /metrics`` (Prometheus text format): process-wide figures for whoever runs Zvonar, with
``Authorization: Bearer <metrics_token>`` (setting ``metrics_token``); ``404 not_found`` while
that setting is unset, ``401 invalid_token`` for another token. No account's token opens it:
it is not a tenant's view.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from zvonar.accounts.access import Perm
from zvonar.api.deps import AppContainer, CurrentPrincipal
from zvonar.core.bus import InProcessBus
from zvonar.core.errors import NotFound, Unauthenticated, Unavailable
from zvonar.pbx.dns import is_ip
from zvonar.pbx.outbound_resolver import MAX_SERVERS
from zvonar.pbx.runtime import PbxRuntime
from zvonar.pbx.status import account_status, process_metrics, render_prometheus

__all__ = ["PbxUnavailable", "metrics_router", "router"]

router = APIRouter(tags=["pbx"])
metrics_router = APIRouter(include_in_schema=False)

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class PbxUnavailable(Unavailable):
    """This process runs no PBX, so there is nothing live to show."""

    code = "pbx_unavailable"


class PhoneOut(BaseModel):
    user: str
    contact: str
    transport: str
    source: str
    user_agent: str | None
    expires_in: int


class TrunkRegistrationOut(BaseModel):
    trunk_id: str
    name: str
    registrar: str
    state: str
    server: str | None
    expires: int | None
    last_status: int | None
    last_reason: str | None
    failures: int
    retry_at: datetime | None
    updated_at: datetime | None


class PbxStatusOut(BaseModel):
    calls_in_progress: int
    phones: list[PhoneOut]
    trunks: list[TrunkRegistrationOut]


def _maybe_pbx(request: Request) -> PbxRuntime | None:
    rt: PbxRuntime | None = getattr(request.app.state, "pbx", None)
    return rt


MaybePbx = Annotated[PbxRuntime | None, Depends(_maybe_pbx)]


@router.get("/pbx/status", response_model=PbxStatusOut)
async def pbx_status(p: CurrentPrincipal, rt: MaybePbx) -> PbxStatusOut:
    """The account's phones, trunk registrations and calls in progress, now."""
    p.require(Perm.directory_read)
    if rt is None:
        raise PbxUnavailable("this process runs no PBX")
    st = account_status(rt, p.account_id)
    return PbxStatusOut(
        calls_in_progress=st.calls_in_progress,
        phones=[PhoneOut.model_validate(ph, from_attributes=True) for ph in st.phones],
        trunks=[
            TrunkRegistrationOut(
                trunk_id=str(t.trunk_id),
                name=t.trunk_name,
                registrar=t.registrar,
                state=t.state.value,
                server=t.server,
                expires=t.expires,
                last_status=t.last_status,
                last_reason=t.last_reason,
                failures=t.failures,
                retry_at=t.retry_at,
                updated_at=t.updated_at,
            )
            for t in st.trunks
        ],
    )


class ServerOut(BaseModel):
    transport: str
    address: str
    port: int


class TrunkServersOut(BaseModel):
    trunk_id: str
    name: str
    lookup: str  # "ip": the host is an address; "address": A/AAAA (a port given); "srv"
    servers: list[ServerOut]


@router.get("/pbx/trunks/{trunk_id}/servers", response_model=TrunkServersOut)
async def trunk_servers(
    trunk_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer, rt: MaybePbx
) -> TrunkServersOut:
    """Where this trunk's outbound calls go now, in the order they are tried (RFC 3263)."""
    p.require(Perm.directory_read)
    trunk = await c.directory.get_trunk(p, trunk_id)  # 404 first: another's trunk is no one's
    if rt is None:
        raise PbxUnavailable("this process runs no PBX")
    flows = await rt.dns.locate(trunk.host, trunk.port, trunk.transport.value)
    lookup = "ip" if is_ip(trunk.host) else "address" if trunk.port is not None else "srv"
    return TrunkServersOut(
        trunk_id=str(trunk.id),
        name=trunk.name,
        lookup=lookup,
        servers=[ServerOut(transport=f.transport, address=f.host, port=f.port) for f in flows][
            :MAX_SERVERS
        ],
    )


@metrics_router.get("/metrics")
async def metrics(request: Request, c: AppContainer, rt: MaybePbx) -> PlainTextResponse:
    wanted = c.settings.metrics_token
    if wanted is None:
        raise NotFound("metrics are off (setting metrics_token)")
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    expected = wanted.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(secret.strip().encode(), expected):
        raise Unauthenticated("use 'Authorization: Bearer <metrics_token>'", code="invalid_token")
    bus = c.bus
    published = bus.published if isinstance(bus, InProcessBus) else None
    text = render_prometheus(process_metrics(rt, journal=c.journal.writer, published=published))
    return PlainTextResponse(text, media_type=PROMETHEUS_TEXT)
