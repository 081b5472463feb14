"""HTTP route: the customer's back office decides where a call goes.

We POST a JSON description of the call, signed (see :mod:`zvonar.integrations.signing`), to the
account's URL and read back one target. Whatever goes wrong — a slow or unreachable server, a
non-2xx, a redirect, an oversize or malformed reply, an unsafe URL — :meth:`HttpRouter.route`
returns :class:`Fallback` with a reason and the scheme step continues with its fallback: a call is
never dropped because somebody's web server is down.

Reply shape (exactly one key)::

    {"scheme": "<uuid>"} | {"group": "<uuid>"} | {"employee": "<uuid or extension>"}
    | {"number": "+79161234567"} | {"action": "hangup" | "voicemail"}
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

import httpx
import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zvonar import __version__
from zvonar.integrations.signing import SIGNATURE_HEADER, sign
from zvonar.integrations.ssrf import Resolver, UnsafeTarget, check_url, system_resolver

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 2.0
MAX_REPLY_BYTES = 64 * 1024


@dataclass(frozen=True)
class CallFacts:
    """What the back office is told about the call."""

    call_id: str
    caller: str | None  # E.164, or None for a withheld number
    dialed: str
    dialed_label: str | None
    started_at: datetime
    session_id: str | None = None
    tracking: Mapping[str, str] = field(default_factory=dict)


class TargetKind(enum.StrEnum):
    scheme = "scheme"
    group = "group"
    employee = "employee"
    number = "number"
    action = "action"


@dataclass(frozen=True)
class RouteDecision:
    kind: TargetKind
    value: str


class FallbackReason(enum.StrEnum):
    unsafe_target = "unsafe_target"
    timeout = "timeout"
    connect_error = "connect_error"
    http_status = "http_status"
    redirect = "redirect"
    oversize = "oversize"
    bad_reply = "bad_reply"
    error = "error"


@dataclass(frozen=True)
class Fallback:
    reason: FallbackReason
    detail: str = ""


class BadReply(Exception):
    """The reply is not exactly one valid target."""


# --- request ------------------------------------------------------------------------------------


def route_payload(facts: CallFacts) -> dict[str, object]:
    body: dict[str, object] = {
        "event": "call.route",
        "call_id": facts.call_id,
        "caller": facts.caller,
        "dialed": {"number": facts.dialed, "label": facts.dialed_label},
        "time": facts.started_at.isoformat(),
    }
    if facts.session_id is not None:
        body["session_id"] = facts.session_id
    if facts.tracking:
        body["tracking"] = dict(facts.tracking)
    return body


def build_route_request(facts: CallFacts, secret: str, now: int) -> tuple[bytes, dict[str, str]]:
    """The signed JSON body and its headers (``now`` in unix seconds)."""
    body = json.dumps(route_payload(facts), ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Accept": "application/json",
        # Raw bytes only: a compressed reply could inflate far past the size cap in one chunk.
        "Accept-Encoding": "identity",
        "User-Agent": f"Zvonar/{__version__}",
        SIGNATURE_HEADER: sign(body, secret, now),
    }
    return body, headers


# --- reply --------------------------------------------------------------------------------------

_Extension = Annotated[str, Field(pattern=r"^[0-9]{2,6}$")]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: uuid.UUID | None = None
    group: uuid.UUID | None = None
    employee: uuid.UUID | _Extension | None = None
    number: Annotated[str, Field(max_length=20)] | None = None
    action: Literal["hangup", "voicemail"] | None = None

    @field_validator("number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            n = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException as exc:
            raise ValueError("number must be E.164") from exc
        if not phonenumbers.is_valid_number(n):
            raise ValueError("number is not valid")
        return str(phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164))

    @model_validator(mode="after")
    def _exactly_one(self) -> _Reply:
        given = [name for name in self.model_fields_set if getattr(self, name) is not None]
        if len(given) != 1 or len(self.model_fields_set) != 1:
            raise ValueError("the reply must name exactly one target")
        return self


def parse_route_reply(data: bytes) -> RouteDecision:
    """The decision in ``data``; :class:`BadReply` for anything else."""
    try:
        reply = _Reply.model_validate_json(data)
    except ValidationError as exc:
        raise BadReply(str(exc.errors(include_url=False, include_input=False))) from exc
    (name,) = reply.model_fields_set
    return RouteDecision(TargetKind(name), str(getattr(reply, name)))


# --- client -------------------------------------------------------------------------------------


class HttpRouter:
    """Asks customers' URLs where calls go. Never raises (except cancellation)."""

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        resolver: Resolver = system_resolver,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        # No keep-alive: requests go to pinned IPs, and a pooled TLS connection opened for one
        # host name must never carry a request for another host on the same IP. No proxies from
        # the environment, no redirects (a 3xx could point anywhere).
        self._client = client or httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._resolver = resolver
        self._max = max_reply_bytes

    async def aclose(self) -> None:
        await self._client.aclose()

    async def route(
        self,
        url: str,
        facts: CallFacts,
        *,
        secret: str,
        allow_private: bool = False,
        # A domain setting of the route step (the fallback must know it was *our* deadline that
        # expired), not a cancellation knob: hence a parameter despite ASYNC109.
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    ) -> RouteDecision | Fallback:
        """POST ``facts`` to ``url`` and return the decision or why the fallback applies.

        ``timeout`` bounds the whole exchange: DNS, connect, request and reading the reply.
        """
        try:
            async with asyncio.timeout(timeout):
                return await self._route(url, facts, secret, allow_private, timeout)
        except TimeoutError:
            return Fallback(FallbackReason.timeout, f"no reply within {timeout} s")
        except Exception as exc:  # the call must go on whatever broke here
            log.exception("HTTP route to %s failed", url)
            return Fallback(FallbackReason.error, type(exc).__name__)

    async def _route(
        self, url: str, facts: CallFacts, secret: str, allow_private: bool, budget: float
    ) -> RouteDecision | Fallback:
        try:
            target = await check_url(url, allow_private=allow_private, resolver=self._resolver)
        except UnsafeTarget as exc:
            return Fallback(FallbackReason.unsafe_target, exc.reason)
        body, headers = build_route_request(facts, secret, int(time.time()))
        headers["Host"] = target.host_header
        request = self._client.build_request(
            "POST",
            target.pinned_url,
            content=body,
            headers=headers,
            timeout=budget,
            # TLS: SNI and certificate checks use the URL's host name, not the pinned IP.
            extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            return Fallback(FallbackReason.timeout, f"no reply within {budget} s")
        except httpx.HTTPError as exc:
            return Fallback(FallbackReason.connect_error, type(exc).__name__)
        try:
            if response.is_redirect:
                return Fallback(FallbackReason.redirect, str(response.status_code))
            if not response.is_success:
                return Fallback(FallbackReason.http_status, str(response.status_code))
            if response.headers.get("content-encoding", "identity").lower() != "identity":
                return Fallback(FallbackReason.bad_reply, "compressed reply")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max:
                return Fallback(FallbackReason.oversize, f"reply over {self._max} bytes")
            data = bytearray()
            async for chunk in response.aiter_raw():
                data += chunk
                if len(data) > self._max:
                    return Fallback(FallbackReason.oversize, f"reply over {self._max} bytes")
        except httpx.TimeoutException:
            return Fallback(FallbackReason.timeout, f"no reply within {budget} s")
        except httpx.HTTPError as exc:
            return Fallback(FallbackReason.connect_error, type(exc).__name__)
        finally:
            await response.aclose()
        try:
            return parse_route_reply(bytes(data))
        except BadReply as exc:
            return Fallback(FallbackReason.bad_reply, str(exc)[:500])
