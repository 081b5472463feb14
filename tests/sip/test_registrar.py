"""Registrar (RFC 3261 §10.3), location service, persistence and OPTIONS qualify."""

from __future__ import annotations

import json
from email.utils import formatdate
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zvonar.sip.headers import parse_name_addr
from zvonar.sip.location import (
    Binding,
    BindingEventKind,
    InMemoryLocationStore,
    JsonFileLocationStore,
    LocationService,
    LocationStoreError,
    Target,
    aor_key,
)
from zvonar.sip.message import SipRequest, SipResponse, parse_message
from zvonar.sip.registrar import (
    ContactReachable,
    ContactUnreachable,
    OptionsQualifier,
    Registrar,
    RegistrarConfig,
)
from zvonar.sip.uri import parse_uri

SRC = ("203.0.113.7", 40000)


def register(
    contacts: list[str] | None = None,
    *,
    expires: int | str | None = None,
    call_id: str = "reg-1",
    cseq: int = 1,
    to: str = "sip:100@pbx.example.com",
    ruri: str = "sip:pbx.example.com",
    extra: str = "",
) -> SipRequest:
    lines = [
        f"REGISTER {ruri} SIP/2.0",
        "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport",
        "Max-Forwards: 70",
        f"From: <{to}>;tag=a",
        f"To: <{to}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        "User-Agent: TestPhone/1.0",
    ]
    lines += [f"Contact: {c}" for c in contacts or []]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    text = "\r\n".join(lines) + "\r\n" + extra + "Content-Length: 0\r\n\r\n"
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


def registrar(store: object = None, **cfg: object) -> Registrar:
    loc = LocationService(store) if store is not None else LocationService()  # type: ignore[arg-type]
    return Registrar(loc, RegistrarConfig(**cfg), tag_factory=lambda: "rt")  # type: ignore[arg-type]


def contact_expires(resp: SipResponse) -> dict[str, str | None]:
    out = {}
    for value in resp.header_values("Contact"):
        na = parse_name_addr(value)
        out[str(na.uri)] = na.param("expires")
    return out


def test_register_stores_binding_and_answers_200() -> None:
    r = Registrar(tag_factory=lambda: "rt", wall_offset=1_700_000_000.0)
    resp = r.handle_register(register(["<sip:100@10.0.0.5:5060>"]), SRC, "udp", "f1", now=20.0)
    assert resp.status == 200 and resp.to.tag == "rt" and resp.call_id == "reg-1"
    assert contact_expires(resp) == {"sip:100@10.0.0.5:5060": "3600"}
    assert resp.header("Date") == formatdate(1_700_000_020.0, usegmt=True)
    (b,) = r.lookup("sip:100@pbx.example.com", 20.0)
    assert b.expires_at == 3620.0 and b.registered_at == 20.0
    assert (b.call_id, b.cseq, b.user_agent) == ("reg-1", 1, "TestPhone/1.0")
    # NAT (RFC 3581): reach it where the REGISTER came from, not at its private Contact.
    assert b.contact == "sip:100@10.0.0.5:5060"
    assert b.target == Target("UDP", "203.0.113.7", 40000, "f1")
    assert [e.kind for e in r.events()] == [BindingEventKind.ADDED]


def test_contact_expires_beats_header_and_q_orders_lookup() -> None:
    r = registrar()
    req = register(
        ["<sip:a@10.0.0.5>;q=0.5", "<sip:b@10.0.0.6>;expires=300;q=0.9", "<sip:c@10.0.0.7>"],
        expires=600,
    )
    resp = r.handle_register(req, SRC, "UDP", None, now=0.0)
    assert contact_expires(resp) == {
        "sip:a@10.0.0.5": "600",
        "sip:b@10.0.0.6": "300",
        "sip:c@10.0.0.7": "600",
    }
    assert "q=0.5" in " ".join(resp.header_values("Contact"))
    assert [b.contact for b in r.lookup("sip:100@pbx.example.com", 1.0)] == [
        "sip:c@10.0.0.7",
        "sip:b@10.0.0.6",
        "sip:a@10.0.0.5",
    ]


def test_min_expires_423_and_max_expires_clamp() -> None:
    r = registrar(min_expires=60, max_expires=1800)
    too_short = r.handle_register(register(["<sip:a@h>"], expires=59), SRC, "UDP", None, 0.0)
    assert too_short.status == 423 and too_short.header("Min-Expires") == "60"
    assert r.lookup("sip:100@pbx.example.com", 0.0) == []
    ok = r.handle_register(register(["<sip:a@h>;expires=60"], cseq=2), SRC, "UDP", None, 0.0)
    assert contact_expires(ok) == {"sip:a@h": "60"}
    long = r.handle_register(register(["<sip:a@h>"], expires=99999, cseq=3), SRC, "UDP", None, 0)
    assert contact_expires(long) == {"sip:a@h": "1800"}


def test_exact_expiry_arithmetic_and_timer() -> None:
    r = registrar()
    r.handle_register(register(["<sip:a@h>"], expires=120), SRC, "UDP", None, now=1000.0)
    r.events()
    query = r.handle_register(register(cseq=2), SRC, "UDP", None, now=1030.5)
    assert contact_expires(query) == {"sip:a@h": "89"}  # 89.5 left, rounded down
    assert r.next_deadline() == 1120.0
    assert len(r.lookup("sip:100@pbx.example.com", 1119.999)) == 1
    assert r.lookup("sip:100@pbx.example.com", 1120.0) == []
    assert r.handle_timer(1119.0) == []
    (gone,) = r.handle_timer(1120.0)
    assert gone.contact == "sip:a@h" and r.next_deadline() is None
    assert [e.kind for e in r.events()] == [BindingEventKind.EXPIRED]


def test_next_deadline_follows_every_change_of_the_bindings() -> None:
    # The runner asks after every message; the answer is cached, so each change must reset it.
    r = registrar()
    assert r.next_deadline() is None
    r.handle_register(register(["<sip:a@h>"], expires=120), SRC, "UDP", None, now=0.0)
    assert r.next_deadline() == 120.0
    r.handle_register(register(["<sip:b@h>"], expires=60, cseq=2), SRC, "UDP", None, now=10.0)
    assert r.next_deadline() == 70.0
    r.handle_register(register(["<sip:b@h>"], expires=600, cseq=3), SRC, "UDP", None, now=20.0)
    assert r.next_deadline() == 120.0  # b refreshed past a
    r.handle_register(register(["<sip:a@h>"], expires=0, cseq=4), SRC, "UDP", None, now=30.0)
    assert r.next_deadline() == 620.0  # a removed
    assert r.handle_timer(619.0) == [] and r.next_deadline() == 620.0
    (gone,) = r.handle_timer(620.0)
    assert gone.contact == "sip:b@h" and r.next_deadline() is None


def test_refresh_and_call_id_cseq_ordering() -> None:
    r = registrar()
    aor = "sip:100@pbx.example.com"
    assert r.handle_register(register(["<sip:a@h>"], cseq=5), SRC, "UDP", None, 0).status == 200
    again = r.handle_register(register(["<sip:a@h>"], expires=100, cseq=5), SRC, "UDP", None, 1)
    assert again.status == 500  # same Call-ID, CSeq not higher (§10.3 step 7)
    assert r.lookup(aor, 1)[0].expires_at == 3600.0
    lower = r.handle_register(register(["<sip:a@h>"], expires=100, cseq=4), SRC, "UDP", None, 1)
    assert lower.status == 500
    newer = r.handle_register(register(["<sip:a@h>"], expires=100, cseq=6), SRC, "UDP", None, 2)
    assert newer.status == 200 and r.lookup(aor, 2)[0].expires_at == 102.0
    other = register(["<sip:A@H:5060>"], expires=200, cseq=1, call_id="reg-2")
    other2 = register(["<sip:a@H>"], expires=200, cseq=1, call_id="reg-2")  # equal URI (§19.1.4)
    assert r.handle_register(other2, SRC, "UDP", None, 3).status == 200
    (b,) = r.lookup(aor, 3)
    assert (b.call_id, b.cseq, b.expires_at) == ("reg-2", 1, 203.0)
    assert r.handle_register(other, SRC, "UDP", None, 3).status == 200
    assert len(r.lookup(aor, 3)) == 2  # user part differs in case: a different contact


def test_unregister_one_and_wildcard() -> None:
    r = registrar()
    aor = "sip:100@pbx.example.com"
    r.handle_register(register(["<sip:a@h>", "<sip:b@h>", "<sip:c@h>"]), SRC, "UDP", None, 0)
    one = r.handle_register(register(["<sip:a@h>;expires=0"], cseq=2), SRC, "UDP", None, 1)
    assert set(contact_expires(one)) == {"sip:b@h", "sip:c@h"}
    for bad in (
        register(["*"], expires=10, cseq=3),
        register(["*"], cseq=3),
        register(["*", "<sip:b@h>"], expires=0, cseq=3),
    ):
        assert r.handle_register(bad, SRC, "UDP", None, 2).status == 400
    stale = register(["*"], expires=0, cseq=1)  # b and c were stored by CSeq 1
    assert r.handle_register(stale, SRC, "UDP", None, 2).status == 500
    assert len(r.lookup(aor, 2)) == 2
    everything = r.handle_register(register(["*"], expires=0, cseq=9), SRC, "UDP", None, 2)
    assert everything.status == 200 and not everything.has_header("Contact")
    assert r.lookup(aor, 2) == []
    kinds = [e.kind for e in r.events()]
    assert kinds.count(BindingEventKind.REMOVED) == 3
    # A different Call-ID may remove bindings regardless of CSeq.
    r.handle_register(register(["<sip:z@h>"], cseq=50), SRC, "UDP", None, 3)
    wipe = register(["*"], expires=0, cseq=1, call_id="other")
    assert r.handle_register(wipe, SRC, "UDP", None, 3).status == 200


def test_authorization_domain_require_and_bad_input() -> None:
    r = registrar(domains=frozenset({"pbx.example.com"}))
    ok = register(["<sip:a@h>"])
    assert r.handle_register(ok, SRC, "UDP", None, 0, user="100").status == 200
    assert r.handle_register(ok, SRC, "UDP", None, 0, user="101").status == 403
    foreign = register(["<sip:a@h>"], ruri="sip:elsewhere.example")
    assert r.handle_register(foreign, SRC, "UDP", None, 0).status == 404
    foreign_aor = register(["<sip:a@h>"], to="sip:100@elsewhere.example")
    assert r.handle_register(foreign_aor, SRC, "UDP", None, 0).status == 404
    req = register(["<sip:a@h>"], cseq=2, extra="Require: foo, path\r\n")
    resp = r.handle_register(req, SRC, "UDP", None, 0)
    assert resp.status == 420 and resp.header("Unsupported") == "foo"
    assert (
        r.handle_register(register(["<sip:a@h>;q=1.5"], cseq=3), SRC, "UDP", None, 0).status == 400
    )
    assert r.handle_register(register(["<sip:a@h"], cseq=3), SRC, "UDP", None, 0).status == 400
    with pytest.raises(ValueError):
        r.handle_register(parse_invite(), SRC, "UDP", None, 0)


def parse_invite() -> SipRequest:
    req = register(["<sip:a@h>"])
    return SipRequest("INVITE", req.uri, req.headers)


def test_malformed_expires_param_counts_as_3600() -> None:
    r = registrar(max_expires=7200)
    resp = r.handle_register(register(["<sip:a@h>;expires=soon"]), SRC, "UDP", None, 0)
    assert contact_expires(resp) == {"sip:a@h": "3600"}


def test_max_contacts_displaces_oldest() -> None:
    r = registrar(max_contacts=2)
    aor = "sip:100@pbx.example.com"
    for i, c in enumerate(["<sip:a@h>", "<sip:b@h>", "<sip:c@h>"]):
        call = register([c], call_id=f"c{i}")
        assert r.handle_register(call, SRC, "UDP", None, float(i)).status == 200
    assert {b.contact for b in r.lookup(aor, 3)} == {"sip:b@h", "sip:c@h"}
    many = register(["<sip:x@h>", "<sip:y@h>", "<sip:z@h>"], call_id="c9")
    assert r.handle_register(many, SRC, "UDP", None, 4).status == 403


def test_path_is_stored_and_echoed_when_supported() -> None:
    r = registrar()
    extra = "Path: <sip:edge.example.com;lr>\r\nSupported: path\r\n"
    resp = r.handle_register(register(["<sip:a@h>"], extra=extra), SRC, "UDP", None, 0)
    assert resp.header_values("Path") == ["<sip:edge.example.com;lr>"]
    assert r.lookup("sip:100@pbx.example.com", 0)[0].path == ("<sip:edge.example.com;lr>",)
    no_support = register(["<sip:b@h>"], cseq=2, extra="Path: <sip:edge.example.com;lr>\r\n")
    assert not r.handle_register(no_support, SRC, "UDP", None, 0).has_header("Path")


def test_aor_key_canonical_form() -> None:
    assert (
        aor_key(parse_uri("sips:%61lice@EXAMPLE.com:5061;transport=tls")) == "sip:alice@example.com"
    )
    assert aor_key(parse_uri("sip:example.com")) == "sip:example.com"


# -- persistence ---------------------------------------------------------------------------


def test_json_store_survives_restart_with_new_clock_origin(tmp_path: Path) -> None:
    path = tmp_path / "loc" / "bindings.json"
    # Process 1: monotonic now = 100 is wall time 1_000_100.
    r1 = registrar(JsonFileLocationStore(path, wall_offset=1_000_000.0))
    r1.handle_register(register(["<sip:a@10.0.0.5>"], expires=300), SRC, "TCP", "conn-7", 100.0)
    r1.handle_register(
        register(["<sip:b@10.0.0.5>"], expires=60, call_id="x"), SRC, "UDP", "u", 100
    )
    assert [p.name for p in path.parent.iterdir()] == ["bindings.json"]  # no temp file left
    assert len(json.loads(path.read_text())["bindings"]) == 2

    # Process 2 starts with monotonic now = 5 at wall 1_000_200 (100 s later).
    store2 = JsonFileLocationStore(path, wall_offset=1_000_195.0)
    r2 = registrar(store2)
    assert r2.load(now=5.0) == 1  # b (60 s) expired during the downtime and is purged
    (b,) = r2.lookup("sip:100@pbx.example.com", 5.0)
    assert b.contact == "sip:a@10.0.0.5" and b.expires_at == 205.0  # wall 1_000_400
    assert b.remaining(5.0) == 200
    assert b.flow_id is None and b.target == Target("TCP", "203.0.113.7", 40000, None)
    assert [d["contact"] for d in json.loads(path.read_text())["bindings"]] == ["sip:a@10.0.0.5"]


def test_corrupt_store_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text("{not json")
    with pytest.raises(LocationStoreError):
        JsonFileLocationStore(path).load_all()
    path.write_text(json.dumps({"version": 99, "bindings": []}))
    with pytest.raises(LocationStoreError):
        JsonFileLocationStore(path).load_all()


class FailingStore(InMemoryLocationStore):
    """Fails to save one contact, as a database rejecting one row would."""

    def __init__(self) -> None:
        super().__init__()
        self.fail: str | None = None

    def save(self, binding: Binding) -> None:
        if binding.contact == self.fail:
            raise OSError("disk full")
        super().save(binding)


def test_store_failure_gives_500_and_changes_nothing() -> None:
    store = FailingStore()
    r = registrar(store)
    aor = "sip:100@pbx.example.com"
    r.handle_register(register(["<sip:a@h>"], expires=100), SRC, "UDP", None, 0)
    store.fail = "sip:b@h"
    resp = r.handle_register(
        register(["<sip:a@h>;expires=0", "<sip:b@h>"], cseq=2), SRC, "UDP", None, 1
    )
    assert resp.status == 500
    assert [b.contact for b in r.lookup(aor, 1)] == ["sip:a@h"]
    assert set(store.bindings) == {(aor, "sip:a@h")}  # the delete was rolled back


# -- qualify -------------------------------------------------------------------------------


def binding(contact: str = "sip:a@h") -> Binding:
    return Binding("sip:100@x", contact, 1000.0, source=("198.51.100.1", 5060))


def test_qualifier_schedule_timeout_and_recovery() -> None:
    q = OptionsQualifier(interval=60.0, timeout=5.0)
    b = binding()
    q.track(b, now=0.0)
    assert q.next_deadline() == 0.0
    (probe,) = q.handle_timer(0.0)
    assert probe.key == b.key and probe.target == Target("UDP", "198.51.100.1", 5060)
    assert q.next_deadline() == 5.0 and q.is_reachable(b.key) is None
    assert q.handle_timer(4.999) == [] and q.events() == []
    assert q.handle_timer(5.0) == []
    assert q.events() == [ContactUnreachable(b.key, 5.0, 0.0)]
    assert q.usable([b]) == [] and q.next_deadline() == 60.0
    assert len(q.handle_timer(60.0)) == 1
    q.handle_response(b.key, 60.25)
    assert q.events() == [ContactReachable(b.key, 60.25, 0.25)]
    assert q.usable([b]) == [b] and q.next_deadline() == 120.0
    q.handle_timer(120.0)
    q.handle_response(b.key, 120.5)
    assert q.events() == []  # still reachable: no event


def test_qualifier_sync_and_late_answer() -> None:
    q = OptionsQualifier(interval=30.0, timeout=2.0)
    a, c = binding("sip:a@h"), binding("sip:c@h")
    q.sync([a, c], 0.0)
    assert len(q.handle_timer(0.0)) == 2
    q.handle_timer(2.0)
    assert {type(e) for e in q.events()} == {ContactUnreachable}
    q.handle_response(a.key, 3.0)  # after the timeout: reachable again, no RTT
    assert q.events() == [ContactReachable(a.key, 3.0, None)]
    q.sync([a], 3.0)
    assert q.is_reachable(c.key) is None and q.is_reachable(a.key) is True
    assert q.next_deadline() == 30.0


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d", "*"]),
            st.sampled_from([0, 30, 60, 61, 300, 5000]),
            st.floats(min_value=0.0, max_value=200.0),
            st.booleans(),
        ),
        max_size=25,
    )
)
def test_registrar_invariants(ops: list[tuple[str, int, float, bool]]) -> None:
    r = registrar(max_contacts=3, min_expires=60, max_expires=3600)
    aor, now = "sip:100@pbx.example.com", 0.0
    model: dict[str, float] = {}  # contact -> expiry, for the simple cases we can predict
    for cseq, (user, expires, gap, new_call) in enumerate(ops, start=1):
        now += gap
        contact = "*" if user == "*" else f"<sip:{user}@h>"
        call_id = f"call-{cseq}" if new_call else "same"
        resp = r.handle_register(
            register([contact], expires=expires, call_id=call_id, cseq=cseq), SRC, "UDP", None, now
        )
        live = r.lookup(aor, now)
        assert len(live) <= 3
        assert all(b.is_live(now) and 0 < b.expires_at - now <= 3600 + 1e-6 for b in live)
        if resp.status == 200:
            listed = contact_expires(resp)
            assert listed == {b.contact: str(b.remaining(now)) for b in live}
            model = {k: v for k, v in model.items() if v > now}
            if user == "*":
                model.clear()
            elif expires == 0:
                model.pop(f"sip:{user}@h", None)
            else:
                model[f"sip:{user}@h"] = now + min(expires, 3600)
            assert {b.contact for b in live} <= set(model)
            if user != "*" and expires:
                assert model[f"sip:{user}@h"] == next(
                    b.expires_at for b in live if b.contact == f"sip:{user}@h"
                )
        else:
            assert resp.status in (400, 423)
            assert resp.status != 423 or 0 < expires < 60


def test_json_store_writes_once_per_register_and_once_per_load(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    store = JsonFileLocationStore(path)
    r = registrar(store)
    r.handle_register(
        register(["<sip:a@h>", "<sip:b@h>", "<sip:c@h>"], expires=60), SRC, "UDP", None, 0
    )
    assert store.writes == 1
    r.handle_register(register(["<sip:d@h>"], expires=600, call_id="z"), SRC, "UDP", None, 0)
    assert store.writes == 2
    store2 = JsonFileLocationStore(path)
    assert registrar(store2).load(now=100.0) == 1  # a, b, c expired: purged in one write
    assert store2.writes == 1
    assert len(JsonFileLocationStore(path).load_all()) == 1
