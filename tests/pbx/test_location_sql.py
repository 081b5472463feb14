"""The SQL location store under the registrar: registrations survive a restart."""

from __future__ import annotations

from zvonar.container import Container
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.pbx.location_sql import SqlLocationStore
from zvonar.pbx.models import SipBinding
from zvonar.sip.location import LocationService
from zvonar.sip.message import SipRequest, parse_message
from zvonar.sip.registrar import Registrar

from .conftest import seed_account

AOR = "sip:101@alpha.zvonar"


def register(contact: str, *, expires: int, cseq: int = 1, call_id: str = "c1@t") -> SipRequest:
    raw = (
        "REGISTER sip:alpha.zvonar SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK" + str(cseq) + "x;rport\r\n"
        "From: <sip:101@alpha.zvonar>;tag=f1\r\n"
        "To: <sip:101@alpha.zvonar>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f'Contact: <{contact}>;+sip.instance="<urn:uuid:1>"\r\n'
        f"Expires: {expires}\r\n"
        "User-Agent: test-phone\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(raw)
    assert isinstance(msg, SipRequest)
    return msg


async def _registrar(
    container: Container, wall_offset: float
) -> tuple[Registrar, SqlLocationStore]:
    creds = DirectoryCredentialStore(container.db)
    await creds.load()
    store = SqlLocationStore(
        container.db, wall_offset=wall_offset, account_of=creds.account_for_aor, flush_interval=0
    )
    await store.preload()
    return Registrar(LocationService(store)), store


async def test_binding_survives_a_new_registrar(container: Container) -> None:
    alpha = await seed_account(container)
    # First process: monotonic clock at 100 s, wall clock 1_700_000_000 + that.
    registrar, store = await _registrar(container, wall_offset=1_700_000_000.0)
    resp = registrar.handle_register(
        register("sip:101@127.0.0.1:5099", expires=600), ("127.0.0.1", 5099), "UDP", None, 100.0
    )
    assert resp.status == 200
    assert store.pending == 1
    await store.close()
    assert store.pending == 0 and store.flushes == 1

    async with container.db.read() as s:
        rows = (await s.execute(SipBinding.__table__.select())).all()
    assert len(rows) == 1 and rows[0].account_id == alpha.account_id

    # Second process: another monotonic origin (now = 5 s at wall 1_700_000_195).
    again, store2 = await _registrar(container, wall_offset=1_700_000_190.0)
    assert again.load(5.0) == 1
    (b,) = again.lookup(AOR, 5.0)
    assert b.contact == "sip:101@127.0.0.1:5099"
    assert b.source == ("127.0.0.1", 5099) and b.transport == "UDP"
    assert b.remaining(5.0) == 505  # 600 s from wall ...100, now wall ...195
    assert b.params == (("+sip.instance", '"<urn:uuid:1>"'),)
    assert b.user_agent == "test-phone" and b.call_id == "c1@t" and b.cseq == 1
    await store2.close()


async def test_unregister_and_expiry_delete_rows(container: Container) -> None:
    await seed_account(container)
    registrar, store = await _registrar(container, wall_offset=0.0)
    src = ("127.0.0.1", 5099)
    registrar.handle_register(
        register("sip:101@127.0.0.1:5099", expires=600), src, "UDP", None, 10.0
    )
    registrar.handle_register(
        register("sip:101@127.0.0.1:5098", expires=60, call_id="c2@t"), src, "UDP", None, 10.0
    )
    await store.flush()
    resp = registrar.handle_register(
        register("sip:101@127.0.0.1:5099", expires=0, cseq=2), src, "UDP", None, 20.0
    )
    assert resp.status == 200
    await store.flush()
    async with container.db.read() as s:
        contacts = [r.contact for r in (await s.execute(SipBinding.__table__.select())).all()]
    assert contacts == ["sip:101@127.0.0.1:5098"]

    # Restarted after the remaining binding expired: nothing restored, the row is purged.
    again, store2 = await _registrar(container, wall_offset=0.0)
    assert again.load(100.0) == 0
    await store2.close()
    async with container.db.read() as s:
        assert (await s.execute(SipBinding.__table__.select())).all() == []
    await store.close()


async def test_changes_before_a_flush_coalesce(container: Container) -> None:
    await seed_account(container)
    registrar, store = await _registrar(container, wall_offset=0.0)
    src = ("127.0.0.1", 5099)
    for seq in range(1, 6):  # five refreshes of one binding: one row write
        registrar.handle_register(
            register("sip:101@127.0.0.1:5099", expires=600, cseq=seq), src, "UDP", None, 10.0 + seq
        )
    assert store.pending == 1
    await store.close()
    async with container.db.read() as s:
        rows = (await s.execute(SipBinding.__table__.select())).all()
    assert [r.cseq for r in rows] == [5]
