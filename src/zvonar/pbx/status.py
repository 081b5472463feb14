"""What the running PBX is doing, read off its live objects (nothing here writes).

Two readers, two scopes:

* an account's admins (``GET /api/v1/pbx/status``): their phones' registrations, their trunks'
  registrations at the carrier, their calls in progress — what they look at when a phone does
  not ring or a trunk brings no calls;
* whoever runs the process (``GET /metrics``, Prometheus text format 0.0.4): process-wide
  gauges and counters — calls in progress, INVITEs refused by overload control, the event
  loop's lag, the journal's write-behind queue, registrations, media legs. Never per account:
  one tenant's figures are no other tenant's business, and the operator's scraper is not a
  tenant.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zvonar.calls.delays import DelayHistogram
from zvonar.pbx.trunk_registration import RegState, TrunkRegistrationStatus
from zvonar.sip.io.tls import HANDSHAKE_FAILURES

if TYPE_CHECKING:
    from zvonar.journal.writer import JournalWriter
    from zvonar.pbx.runtime import PbxRuntime

__all__ = [
    "AccountPbxStatus",
    "Metric",
    "PhoneStatus",
    "account_status",
    "process_metrics",
    "render_prometheus",
]


@dataclass(frozen=True)
class PhoneStatus:
    """One live registration of one of the account's SIP users (an employee's phone)."""

    user: str  # the user part of the AOR: the SIP login, usually the extension
    contact: str
    transport: str
    source: str  # host:port the REGISTER came from (what NAT showed us)
    user_agent: str | None
    expires_in: int  # seconds until the binding expires unless refreshed


@dataclass(frozen=True)
class AccountPbxStatus:
    calls_in_progress: int
    phones: tuple[PhoneStatus, ...]
    trunks: tuple[TrunkRegistrationStatus, ...]


def _user_of(aor: str) -> str:
    user = aor.removeprefix("sip:").removeprefix("sips:")
    return user.split("@", 1)[0] if "@" in user else user


def _host_port(source: tuple[str, int]) -> str:
    host, port = source
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def account_status(rt: PbxRuntime, account_id: uuid.UUID) -> AccountPbxStatus:
    """``account_id``'s slice of the PBX, now."""
    now = rt.runner.loop.time()
    phones: list[PhoneStatus] = []
    registrar = rt.ua.registrar
    bindings = registrar.location.all_bindings() if registrar is not None else []
    for b in bindings:
        if not b.is_live(now) or rt.credentials.account_for_aor(b.aor) != account_id:
            continue
        phones.append(
            PhoneStatus(
                user=_user_of(b.aor),
                contact=b.contact,
                transport=b.transport,
                source=_host_port(b.source),
                user_agent=b.user_agent,
                expires_in=b.remaining(now),
            )
        )
    phones.sort(key=lambda p: (p.user, p.contact))
    calls = sum(1 for call in rt.b2bua.calls.values() if call.account_id == account_id)
    return AccountPbxStatus(
        calls_in_progress=calls,
        phones=tuple(phones),
        trunks=tuple(rt.registrations.status(account_id)),
    )


@dataclass(frozen=True)
class Metric:
    """One sample; ``kind`` is Prometheus' TYPE (gauge, counter or histogram); ``suffix``
    names a histogram's samples (``_bucket``, ``_sum``, ``_count``)."""

    name: str
    kind: str
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()
    suffix: str = ""


def process_metrics(
    rt: PbxRuntime | None, *, journal: JournalWriter | None = None, published: int | None = None
) -> list[Metric]:
    """The process's figures; without a PBX in this process only the journal's and the bus'
    (the API alone still writes and publishes)."""
    out: list[Metric] = [
        Metric("zvonar_pbx_up", "gauge", "1 if this process runs the PBX.", float(rt is not None))
    ]
    if journal is not None:
        out += [
            Metric(
                "zvonar_journal_queue_events",
                "gauge",
                "Call events queued for the journal and not yet written.",
                journal.pending,
            ),
            Metric(
                "zvonar_journal_dropped_events_total",
                "counter",
                "Call events lost to a full journal queue.",
                journal.dropped,
            ),
            Metric(
                "zvonar_journal_poisoned_events_total",
                "counter",
                "Call events the journal could not write and dropped alone.",
                journal.poisoned,
            ),
        ]
    if published is not None:
        out.append(
            Metric(
                "zvonar_bus_events_published_total",
                "counter",
                "Events published on the in-process bus.",
                published,
            )
        )
    if rt is None:
        return out
    guard = rt.b2bua.overload
    registrar = rt.ua.registrar
    now = rt.runner.loop.time()
    live = sum(
        1
        for b in (registrar.location.all_bindings() if registrar is not None else [])
        if b.is_live(now)
    )
    out += [
        Metric(
            "zvonar_calls_in_progress",
            "gauge",
            "Inbound calls the B2BUA is handling.",
            len(rt.b2bua.calls),
        ),
        Metric("zvonar_media_legs", "gauge", "Media legs allocated.", rt.engine.leg_count),
        Metric("zvonar_sip_registrations", "gauge", "Live registrations of phones.", live),
        Metric(
            "zvonar_event_loop_lag_seconds",
            "gauge",
            "How late the event loop ran at the last check.",
            guard.lag if guard is not None else 0.0,
        ),
        Metric(
            "zvonar_overload_shedding",
            "gauge",
            "1 while new INVITEs are refused with 503 because the loop runs late.",
            float(guard.shedding) if guard is not None else 0.0,
        ),
        Metric(
            "zvonar_overload_rejected_invites_total",
            "counter",
            "New INVITEs refused with 503 by overload control (loop lag or max_calls).",
            guard.shed if guard is not None else 0,
        ),
    ]
    out += _histogram(
        "zvonar_post_dial_delay_seconds",
        "From a caller's INVITE to our first INVITE for them (calls rung directly).",
        rt.b2bua.post_dial_delay,
    )
    dns = rt.dns.stats
    out += [
        Metric(
            "zvonar_dns_lookups_total",
            "counter",
            "Host name lookups of trunks and SIP targets (NAPTR/SRV/A/AAAA), by result.",
            value,
            (("result", result),),
        )
        for result, value in (("cached", dns.hits), ("asked", dns.misses), ("failed", dns.failures))
    ]
    out += _sip_metrics(rt.runner.all_stats())
    states = Counter(s.state for s in rt.registrations.status())
    out += [
        Metric(
            "zvonar_trunk_registrations",
            "gauge",
            "Trunks registering at their carrier, by state.",
            states.get(state, 0),
            (("state", state.value),),
        )
        for state in RegState
    ]
    return out


# The SIP transports' and core's counters (sip/io/stats.py, sip/ua/events.py), grouped by
# metric: name → (help, label, {counter: label value}).
_SIP_COUNTERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "zvonar_sip_messages_total": (
        "SIP messages received and sent (every transport).",
        "direction",
        {"received": "in", "sent": "out"},
    ),
    "zvonar_sip_bytes_total": (
        "Bytes of SIP received and sent.",
        "direction",
        {"bytes_received": "in", "bytes_sent": "out"},
    ),
    "zvonar_sip_dropped_total": (
        "SIP input discarded without an answer, by reason.",
        "reason",
        {"dropped_malformed": "malformed", "dropped_oversize": "oversize", "blocked": "blocked"},
    ),
    "zvonar_sip_rejected_total": (
        "SIP requests answered statelessly with an error, by class.",
        "class",
        {"rejected_4xx": "4xx", "rejected_5xx": "5xx"},
    ),
    "zvonar_sip_connections_total": (
        "TCP and TLS connections, by what happened to them.",
        "event",
        {
            "tcp_accepted": "accepted",
            "tcp_connected": "connected",
            "tcp_refused": "refused",
            "tcp_closed": "closed",
            "tcp_idle_closed": "idle_closed",
            "tcp_framing_errors": "framing_error",
            "tls_handshake_failures": "tls_handshake_failed",
        },
    ),
    "zvonar_sip_tls_handshake_failures_total": (
        "TLS handshakes on the listener that failed, by why.",
        "reason",
        {f"tls_failed_{reason}": reason for reason in HANDSHAKE_FAILURES},
    ),
    "zvonar_sip_auth_total": (
        "Digest authentication: challenges sent and failed attempts.",
        "result",
        {"auth_challenges": "challenged", "auth_failures": "failed"},
    ),
    "zvonar_sip_errors_total": (
        "Sends that failed and inputs the core failed on.",
        "kind",
        {"send_errors": "send", "internal_errors": "internal"},
    ),
}


def _sip_metrics(stats: dict[str, int]) -> list[Metric]:
    return [
        Metric(name, "counter", help_, stats.get(counter, 0), ((label, value),))
        for name, (help_, label, counters) in _SIP_COUNTERS.items()
        for counter, value in counters.items()
    ]


def _histogram(name: str, help_: str, h: DelayHistogram) -> list[Metric]:
    out = [
        Metric(name, "histogram", help_, n, (("le", _value(bound)),), "_bucket")
        for bound, n in h.buckets()
    ]
    out.append(Metric(name, "histogram", help_, h.total, (), "_sum"))
    out.append(Metric(name, "histogram", help_, h.count, (), "_count"))
    return out


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(int(v)) if float(v).is_integer() else repr(float(v))


def _label_value(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def render_prometheus(metrics: Iterable[Metric]) -> str:
    """The text exposition format: HELP and TYPE once per name, then its samples."""
    lines: list[str] = []
    seen: set[str] = set()
    for m in metrics:
        if m.name not in seen:
            seen.add(m.name)
            lines.append(f"# HELP {m.name} {m.help}")
            lines.append(f"# TYPE {m.name} {m.kind}")
        labels = ""
        if m.labels:
            labels = "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in m.labels) + "}"
        lines.append(f"{m.name}{m.suffix}{labels} {_value(m.value)}")
    return "\n".join(lines) + "\n"
