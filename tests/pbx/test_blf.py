"""Busy lamp fields (pbx/blf.py): the subscription rules and the NOTIFY flow, over the real UA
core and the real credential store; datagrams are read where the runner would send them.
Digest itself is the UA's (a challenger that accepts the From user stands in here); the
407 round and the whole flow with a call are proven with SIPp in tests/e2e/test_blf.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    CallTransferred,
    Disposition,
    HangupSide,
    Target,
    TargetKind,
    TransferKind,
)
from zvonar.calls.talking import Talking
from zvonar.container import Container
from zvonar.directory.schemas import EmployeeIn
from zvonar.pbx import blf as blf_module
from zvonar.pbx.blf import Blf
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.sip.auth import Authorized
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.message import SipRequest, SipResponse, parse_message
from zvonar.sip.ua import Flow, UaEvent, UserAgent

from .conftest import Seeded, seed_account

PHONE = Flow("UDP", "127.0.0.1", 40102)
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class _FromUser:
    """Digest stand-in: every request is authorized as its From user."""

    def check(self, request: SipRequest, now: float) -> Authorized:
        return Authorized(request.from_.uri.user or "", request.from_.uri.host, "MD5")  # type: ignore[union-attr]


class _Calls:
    def handle_event(self, event: UaEvent, now: float) -> None:
        raise AssertionError(f"the B2BUA got {event!r}")


@dataclass
class Rig:
    blf: Blf
    runner: SipRunner
    talking: Talking
    alpha: Seeded
    anna: uuid.UUID  # 101, watched
    sent: list[bytes] = field(default_factory=list)
    seq: int = 0

    def receive(self, text: str) -> None:
        self.runner.ua.receive(text.replace("\n", "\r\n").encode(), PHONE, self.runner.loop.time())
        self.runner.pump()

    def subscribe(self, *extra: str, to: str = "101", user: str = "102", realm: str = "") -> None:
        self.seq += 1
        realm = realm or self.alpha.realm
        lines = [
            f"SUBSCRIBE sip:{to}@{self.alpha.realm} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:40102;branch=z9hG4bK-s{self.seq}",
            f"From: <sip:{user}@{realm}>;tag=w{self.seq}",
            f"To: <sip:{to}@{self.alpha.realm}>",
            f"Call-ID: sub{self.seq}@127.0.0.1",
            "CSeq: 1 SUBSCRIBE",
            "Contact: <sip:102@127.0.0.1:40102>",
            "Max-Forwards: 70",
            *extra,
            "Content-Length: 0",
        ]
        if not any(h.startswith("Event:") for h in extra):
            lines.insert(6, "Event: dialog")
        self.receive("\n".join(lines) + "\n\n")

    def take(self) -> list[SipRequest | SipResponse]:
        out = [parse_message(data) for data in self.sent]
        self.sent.clear()
        return out  # type: ignore[return-value]

    def answer(self, notify: SipRequest, status: int = 200) -> None:
        via = notify.header("Via")
        self.receive(
            f"SIP/2.0 {status} X\nVia: {via}\nFrom: {notify.header('From')}\n"
            f"To: {notify.header('To')}\nCall-ID: {notify.call_id}\n"
            f"CSeq: {notify.cseq.seq} NOTIFY\nContent-Length: 0\n\n"
        )


@pytest.fixture
async def rig(container: Container) -> AsyncIterator[Rig]:
    alpha = await seed_account(container)
    await container.directory.create_employee(
        alpha.principal, EmployeeIn(name="Boris", extension="102", sip_password="boris-pass-1")
    )
    beta = await seed_account(container, "beta", number="+74951230002")
    await container.directory.create_employee(
        beta.principal, EmployeeIn(name="Vera", extension="103", sip_password="vera-pass-103")
    )
    credentials = DirectoryCredentialStore(container.db)
    await credentials.load()
    ua = UserAgent(challenger=_FromUser(), allow=("INVITE", "ACK", "BYE", "SUBSCRIBE"))  # type: ignore[arg-type]
    ua.set_local_address("UDP", "127.0.0.1", 5060)
    runner = SipRunner(ua)
    talking = Talking()
    blf = Blf(runner, credentials, talking, max_per_account=3)
    runner.app = blf.front(_Calls())
    made = Rig(blf, runner, talking, alpha, alpha.employee_id)

    def send(data: bytes, flow: Flow) -> bool:
        made.sent.append(data)
        return True

    runner.send = send  # type: ignore[method-assign]
    yield made
    blf.close()


def _status(messages: list[SipRequest | SipResponse]) -> list[int]:
    return [m.status for m in messages if isinstance(m, SipResponse)]


def _notifies(messages: list[SipRequest | SipResponse]) -> list[SipRequest]:
    return [m for m in messages if isinstance(m, SipRequest) and m.method == "NOTIFY"]


@pytest.mark.parametrize(
    ("kwargs", "extra", "status", "header"),
    [
        ({}, ("Event: message-summary",), 489, ("Allow-Events", "dialog, presence")),
        (
            {},
            ("Event: presence", "Accept: application/dialog-info+xml"),
            406,
            ("Accept", "application/pidf+xml"),
        ),
        ({"realm": "elsewhere.example"}, (), 403, None),  # not one of our phones
        ({"to": "555"}, (), 404, None),  # no such extension
        ({"to": "103"}, (), 404, None),  # beta's extension: not alpha's to watch
        ({"to": "*50"}, (), 404, None),  # no park slot
        ({"to": "*51"}, ("Event: presence",), 404, None),  # a slot has dialogs, no presence
        ({}, ("Accept: application/pidf+xml",), 406, ("Accept", "application/dialog-info+xml")),
        ({}, ("Expires: 30",), 423, ("Min-Expires", "60")),
        ({}, ("Expires: soon",), 400, None),
    ],
    ids=[
        "mwi",
        "presence-accept",
        "stranger",
        "no-extension",
        "other-tenant",
        "no-slot",
        "slot-presence",
        "accept",
        "brief",
        "bad",
    ],
)
async def test_what_is_refused(
    rig: Rig,
    kwargs: dict[str, str],
    extra: tuple[str, ...],
    status: int,
    header: tuple[str, str] | None,
) -> None:
    rig.subscribe(*extra, **kwargs)
    (response,) = rig.take()
    assert isinstance(response, SipResponse) and response.status == status
    if header is not None:
        assert response.header(header[0]) == header[1]
    assert rig.blf.count == 0


async def test_a_subscription_follows_the_extension(rig: Rig) -> None:
    rig.subscribe("Expires: 7200")
    ok, idle = rig.take()
    assert isinstance(ok, SipResponse) and ok.status == 200
    assert ok.header("Expires") == "3600"  # capped
    assert isinstance(idle, SipRequest) and idle.method == "NOTIFY"
    assert idle.header("Event") == "dialog"
    assert idle.header("Subscription-State") == "active;expires=3600"
    assert idle.content_type == "application/dialog-info+xml"
    assert b'version="0"' in idle.body and b"<dialog " not in idle.body
    rig.answer(idle)
    assert rig.blf.count == 1

    # Ringing: one NOTIFY, the caller shown; while it is unanswered, changes wait.
    account = rig.alpha.account_id
    anna = Target(TargetKind.employee, "Anna", rig.anna)
    rig.blf.lines.apply(
        CallRinging(account_id=account, call_id="c1", leg_id="c1.b1", target=anna, at=NOW)
    )
    await _turn()
    (ringing,) = _notifies(rig.take())
    assert b"<state>early</state>" in ringing.body and b'direction="recipient"' in ringing.body
    answered = CallAnswered(account_id=account, call_id="c1", leg_id="c1.b1", at=NOW, by=rig.anna)
    rig.talking.apply(answered)
    rig.blf.lines.apply(answered)
    await _turn()
    assert not rig.take()  # the ringing NOTIFY is not answered yet
    rig.answer(ringing)
    (talking,) = _notifies(rig.take())
    assert b"<state>confirmed</state>" in talking.body and b"early" not in talking.body
    assert b'version="2"' in talking.body
    rig.answer(talking)
    ended = _ended(account, "c1")
    rig.talking.apply(ended)
    rig.blf.lines.apply(ended)
    await _turn()
    (again,) = _notifies(rig.take())
    assert b"<dialog " not in again.body
    # A NOTIFY the phone refuses ends the subscription (RFC 6665 §4.2.2).
    rig.answer(again, 481)
    assert rig.blf.count == 0


async def test_a_fetch_and_an_unsubscribe(rig: Rig) -> None:
    rig.subscribe("Expires: 0")
    ok, notify = rig.take()
    assert isinstance(ok, SipResponse) and ok.status == 200
    assert isinstance(notify, SipRequest)
    assert notify.header("Subscription-State") == "terminated;reason=timeout"
    rig.answer(notify)
    assert rig.blf.count == 0

    rig.subscribe()
    ok, first = rig.take()
    assert isinstance(ok, SipResponse) and isinstance(first, SipRequest)
    rig.answer(first)
    to = ok.header("To")
    rig.receive(
        f"SUBSCRIBE sip:101@{rig.alpha.realm} SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.1:40102;branch=z9hG4bK-unsub\n"
        f"From: {first.header('To')}\nTo: {to}\nCall-ID: {ok.call_id}\nCSeq: 2 SUBSCRIBE\n"
        "Event: dialog\nExpires: 0\nMax-Forwards: 70\nContent-Length: 0\n\n"
    )
    ok2, last = rig.take()
    assert isinstance(ok2, SipResponse) and ok2.status == 200
    assert isinstance(last, SipRequest)
    assert last.header("Subscription-State") == "terminated;reason=timeout"
    assert rig.blf.count == 0


async def test_subscriptions_per_account_are_bounded(rig: Rig) -> None:
    for _ in range(3):
        rig.subscribe()
    assert rig.blf.count == 3
    rig.take()
    rig.subscribe()
    assert _status(rig.take()) == [503]


async def _watched_anna_rings(rig: Rig, call_id: str, *, watchers: int = 1) -> None:
    """``watchers`` subscriptions to 101 (their first NOTIFYs answered), then a fork of
    ``call_id`` rings Anna, and the BLF has its loop turn."""
    for _ in range(watchers):
        rig.subscribe()
    for notify in _notifies(rig.take()):
        rig.answer(notify)
    anna = Target(TargetKind.employee, "Anna", rig.anna)
    rig.blf.lines.apply(
        CallRinging(
            account_id=rig.alpha.account_id,
            call_id=call_id,
            leg_id=f"{call_id}.b1",
            target=anna,
            at=NOW,
        )
    )
    await _turn()


async def _anna_answers(rig: Rig, call_id: str) -> None:
    """Anna answers ``call_id``'s fork: the Talking index and the BLF learn it, one turn."""
    answered = CallAnswered(
        account_id=rig.alpha.account_id,
        call_id=call_id,
        leg_id=f"{call_id}.b1",
        at=NOW,
        by=rig.anna,
    )
    rig.talking.apply(answered)
    rig.blf.lines.apply(answered)
    await _turn()


def _ended(account_id: uuid.UUID, call_id: str) -> CallEnded:
    """``call_id`` ended, answered, the caller hanging up."""
    return CallEnded(
        account_id=account_id,
        call_id=call_id,
        disposition=Disposition.answered,
        ended_at=NOW,
        hangup=HangupSide.caller,
    )


async def _turn() -> None:
    """One loop turn: the BLF gathers a turn's changes before it notifies."""
    await asyncio.sleep(0)


async def test_presence_follows_registration_and_calls(rig: Rig) -> None:
    """``Event: presence`` (a softphone's buddy list): PIDF, closed while no phone of 101 is
    registered, open once one is, ``on-the-phone`` while they talk."""
    rig.subscribe("Event: presence", "Accept: application/pidf+xml")
    ok, first = rig.take()
    assert isinstance(ok, SipResponse) and ok.status == 200
    assert isinstance(first, SipRequest) and first.header("Event") == "presence"
    assert first.content_type == "application/pidf+xml"
    assert b"<basic>closed</basic>" in first.body and b"on-the-phone" not in first.body
    rig.answer(first)
    # 101's phone registers: this rig's UA has no registrar, so its lookup stands in.
    aor = f"sip:101@{rig.alpha.realm}"
    bound = [object()]
    rig.runner.ua.lookup = lambda key, at: bound if str(key) == aor else []  # type: ignore[method-assign,assignment,return-value]
    rig.blf.devices_changed(rig.alpha.account_id)
    await _turn()
    (online,) = _notifies(rig.take())
    assert b"<basic>open</basic>" in online.body and b"on-the-phone" not in online.body
    rig.answer(online)
    await _anna_answers(rig, "c9")
    (busy,) = _notifies(rig.take())
    assert b"<basic>open</basic>" in busy.body and b"<rpid:on-the-phone/>" in busy.body
    rig.answer(busy)
    # The phone's registration lapses without a word from the registrar: the next sweep
    # closes 101's presence.
    bound.clear()
    rig.blf._look_again()
    await _turn()
    (gone,) = _notifies(rig.take())
    assert b"<basic>closed</basic>" in gone.body


async def test_a_crowd_of_watchers_is_notified_a_few_per_loop_turn(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hundreds of phones watching one extension must not hold the loop for the whole round:
    the NOTIFYs of one change go out ``NOTIFY_PER_TURN`` per loop turn."""
    monkeypatch.setattr(blf_module, "NOTIFY_PER_TURN", 2)
    await _watched_anna_rings(rig, "c5", watchers=3)
    assert len(_notifies(rig.take())) == 2 and not rig.blf.settled
    await _turn()
    (last,) = _notifies(rig.take())
    assert b"<state>early</state>" in last.body and rig.blf.settled


async def test_a_ringing_dialog_names_its_sip_dialog_for_replaces(rig: Rig) -> None:
    """The ringing fork's Call-ID and tags (B2bua.fork_ids) go in the dialog element, from
    the watched phone's side: what a BLF key copies into Replaces to pick the call up."""
    rig.blf.lines.forks = lambda call_id, leg_id: ("fork7@zvonar", "ours7", "phone7")
    await _watched_anna_rings(rig, "c7")
    (ringing,) = _notifies(rig.take())
    assert b'<dialog id="c7" call-id="fork7@zvonar" local-tag="phone7" remote-tag="ours7"' in (
        ringing.body
    )
    # Answered, the leg names its dialog too: a BLF key on Anna's own line pulls the call to
    # that phone with Replaces (calls/pull.py).
    rig.answer(ringing)
    await _anna_answers(rig, "c7")
    (talking,) = _notifies(rig.take())
    assert b'<dialog id="c7.b1" call-id="fork7@zvonar" local-tag="phone7"' in talking.body
    assert b"<state>confirmed</state>" in talking.body


async def test_presence_shows_do_not_disturb(rig: Rig, container: Container) -> None:
    """An employee in do not disturb (``*78``, an admin, the agent status) is ``busy`` to
    their colleagues' buddy lists, with a note saying why, until they turn it off."""
    offs = [rig.blf.credentials.attach(container.bus), rig.blf.attach(container.bus)]
    try:
        rig.subscribe("Event: presence", "Accept: application/pidf+xml")
        _ok, first = rig.take()
        assert isinstance(first, SipRequest) and b"rpid:busy" not in first.body
        rig.answer(first)
        await container.directory.set_dnd(rig.alpha.account_id, True, employee_id=rig.anna)
        await _turn()
        (dnd,) = _notifies(rig.take())
        assert b"<rpid:busy/>" in dnd.body and b"<dm:note>Do not disturb</dm:note>" in dnd.body
        rig.answer(dnd)
        await container.directory.set_dnd(rig.alpha.account_id, False, employee_id=rig.anna)
        await _turn()
        (back,) = _notifies(rig.take())
        assert b"rpid:busy" not in back.body and b"Do not disturb" not in back.body
    finally:
        for off in offs:
            off()


def _parked(rig: Rig, call_id: str, slot: int) -> CallTransferred:
    return CallTransferred(
        account_id=rig.alpha.account_id,
        call_id=call_id,
        from_leg_id=f"{call_id}.b1",
        to=Target(TargetKind.park, f"*5{slot}"),
        kind=TransferKind.blind,
        at=NOW,
    )


async def test_a_park_key_is_lit_while_a_call_waits_in_its_slot(rig: Rig) -> None:
    """A park key subscribes to ``*51``: dark while the slot is free, lit (one confirmed
    dialog with the parked caller, no SIP dialog ids: the key takes the call by dialling
    the slot) while a call waits there, dark again once it is taken. What is in the slot is
    read from the B2BUA (``parked_in``, a dict here); a park into another slot tells it
    nothing. A key that subscribes while a call waits is lit at once and told when the
    call leaves."""
    slots: dict[tuple[uuid.UUID, int], tuple[str, str]] = {}
    rig.blf.lines.parked = lambda account, slot: slots.get((account, slot))
    rig.subscribe(to="*51")
    ok, idle = rig.take()
    assert isinstance(ok, SipResponse) and ok.status == 200
    assert isinstance(idle, SipRequest) and b"<dialog " not in idle.body
    assert f'entity="sip:*51@{rig.alpha.realm}"'.encode() in idle.body
    rig.answer(idle)

    account = rig.alpha.account_id
    slots[(account, 2)] = ("c8", "+79160000008")
    rig.blf.lines.apply(_parked(rig, "c8", 2))
    await _turn()
    assert not rig.take()  # *52 is not watched

    slots[(account, 1)] = ("c9", "+79161234567")
    rig.blf.lines.apply(_parked(rig, "c9", 1))
    await _turn()
    (lit,) = _notifies(rig.take())
    assert b'<dialog id="c9" direction="recipient">' in lit.body
    assert b"<state>confirmed</state>" in lit.body
    assert b"<identity>tel:+79161234567</identity>" in lit.body
    rig.answer(lit)

    # A second key subscribes now: lit from its first NOTIFY.
    rig.subscribe(to="*51")
    _ok, late = rig.take()
    assert isinstance(late, SipRequest) and b"<state>confirmed</state>" in late.body
    rig.answer(late)

    # Taken: the taker's leg rings (calls/park.py), the slot is free.
    del slots[(account, 1)]
    taker = Target(TargetKind.employee, "Anna", rig.anna)
    rig.blf.lines.apply(
        CallRinging(account_id=account, call_id="c9", leg_id="c9.pk1", target=taker, at=NOW)
    )
    await _turn()
    dark = _notifies(rig.take())
    assert len(dark) == 2 and all(b"<dialog " not in n.body for n in dark)
    for n in dark:
        rig.answer(n)
    ended = _ended(account, "c9")
    rig.blf.lines.apply(ended)
    await _turn()
    assert not rig.take()  # nothing changed for the keys
    assert "c9" not in rig.blf.lines._in_slot  # the call is forgotten with its end
