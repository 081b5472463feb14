"""Attended transfer (calls/attended.py) over loopback: the Replaces header read out of a
Refer-To URI; a REFER sent in the *consultation* (the agent is its caller) naming the
customer's call — the orientation Linphone does not use (tests/e2e/test_transfer_linphone.py
covers the other one with a real phone); a Replaces naming no dialog of ours."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from tests.calls.conftest import Phone
from tests.calls.rig import ACCOUNT, Pbx
from tests.calls.test_transfer import ANNA, BORIS, CUSTOMER, Spy, dials_out, ring, until
from tests.calls.test_transfer import agent as agent  # the fixture
from tests.media.engine.phone import tone_pcm
from zvonar.calls.attended import Replaces, replaces_of
from zvonar.calls.call import Call
from zvonar.calls.events import (
    CallEnded,
    CallTransferred,
    Disposition,
    HangupSide,
    TransferKind,
)
from zvonar.calls.plan import Plan, Wave
from zvonar.media.wav import encode_wav
from zvonar.sip.dialog import Dialog
from zvonar.sip.io.testserver import CallLeg
from zvonar.sip.uri import parse_uri

from .test_b2bua import dial, final_status, hang_up


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "sip:102@pbx?Replaces=abc%40host%3Bto-tag%3D7553452%3Bfrom-tag%3D31431",
            Replaces("abc@host", "7553452", "31431"),
        ),
        (  # parameter order and case are free (RFC 3891 §6.1)
            "sip:102@pbx;transport=udp?Replaces=x1%3BFrom-Tag%3Da%3Bto-tag%3Db&Priority=urgent",
            Replaces("x1", "b", "a"),
        ),
        ("sip:102@pbx", None),
        ("sip:102@pbx?Replaces=x1%3Bto-tag%3Db", None),  # no from-tag
        ("tel:+74951234567", None),
    ],
)
def test_replaces_is_read_from_the_refer_to_uri(uri: str, expected: Replaces | None) -> None:
    assert replaces_of(parse_uri(uri)) == expected


def _dialog(phone: Phone, sip_call_id: str) -> Dialog:
    return next(d for d in phone.runner.ua.dialogs if d.id.call_id == sip_call_id)


def _refer(phone: Phone, pbx: Pbx, dialog: Dialog, refer_to: str) -> None:
    """``phone`` sends REFER in ``dialog`` (with the PBX) to the PBX."""
    ua = phone.runner.ua
    flow = pbx.flow
    req = ua.create_request(dialog, "REFER", flow, headers=(("Refer-To", f"<{refer_to}>"),))
    ua.send_request(req, flow, phone.runner.loop.time())
    phone.runner.pump()


def _call_of(pbx: Pbx, sip_call_id: str) -> Call:
    return next(c for c in pbx.b2bua.calls.values() if c.caller.sip_call_id == sip_call_id)


async def _consulting(
    pbx: Pbx, caller: Phone, anna_phone: Phone, boris_phone: Phone
) -> tuple[CallLeg, CallLeg, Call, Call]:
    """The customer calls 100 and Anna answers; Anna calls Boris (102), who answers: the
    customer's call and the consultation, as an agent's phone has them before "transfer"."""
    pbx.resolver.plans["100"] = Plan(
        ACCOUNT, (Wave((ring(anna_phone, "answer", ANNA, "Anna"),), 5),)
    )
    pbx.resolver.plans["102"] = Plan(
        ACCOUNT, (Wave((ring(boris_phone, "answer", BORIS, "Boris"),), 5),)
    )
    customer = dial(caller, pbx, "100")
    assert await final_status(customer) == 200
    consult = dial(anna_phone, pbx, "102")  # Anna calls Boris: she is that call's caller
    assert await final_status(consult) == 200
    x, y = _call_of(pbx, customer.call_id), _call_of(pbx, consult.call_id)
    return customer, consult, x, y


async def test_a_refer_in_the_consultation_joins_the_customer_to_the_colleague(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy], tmp_path: Path
) -> None:
    caller, boris_phone = phones
    anna_phone, spy = agent
    customer, consult, x, y = await _consulting(pbx, caller, anna_phone, boris_phone)
    assert x.winner is not None and y.winner is not None
    boris_leg = y.winner
    # Anna holds the customer to consult, as phones do: the customer hears hold music.
    music = tmp_path / "music.wav"
    music.write_bytes(encode_wav(tone_pcm(600.0, 1.0)))
    pbx.b2bua.hold_music = lambda _account: music
    engine = pbx.b2bua.engine
    assert x.caller.media_id is not None
    anna_in_x = _dialog(anna_phone, x.winner.sip_call_id)
    held = next(g for g in anna_phone.app._legs.values() if g.local_tag == anna_in_x.id.local_tag)
    held.dialog = anna_in_x  # EchoPbx keeps no Dialog on its answering legs
    held.local_sdp = held.local_sdp.replace(b"a=sendrecv", b"a=sendonly")
    assert anna_phone.app.reinvite(held, anna_phone.runner.loop.time()) is not None
    anna_phone.runner.pump()
    await until(lambda: x.holding)
    assert engine._legs[x.caller.media_id].player is not None  # type: ignore[attr-defined]
    # Replaces names Anna's dialog in the customer's call as we (the recipient) see it.
    replaces = quote(
        f"{x.winner.sip_call_id};to-tag={x.winner.local_tag};from-tag={anna_in_x.id.local_tag}",
        safe="",
    )  # an escaped URI header value: '@', ';' and '=' as %40, %3B, %3D (§19.1.1)
    _refer(
        anna_phone,
        pbx,
        _dialog(anna_phone, consult.call_id),
        f"sip:102@{pbx.address}?Replaces={replaces}",
    )

    await until(lambda: len(pbx.bus.of_type(CallTransferred)) == 2)
    assert spy.statuses("REFER") == [202]
    await until(lambda: len(spy.notifies()) == 2)
    assert spy.notifies() == [b"SIP/2.0 100 Trying\r\n", b"SIP/2.0 200 OK\r\n"]
    await until(lambda: anna_phone.app.calls_ended == 2)  # our BYE in both of her dialogs
    assert x.winner is boris_leg and not x.done and y.done
    assert not x.holding and engine._legs[x.caller.media_id].player is None  # type: ignore[attr-defined]
    assert engine._legs[x.caller.media_id].peer is engine._legs[boris_leg.media_id]  # type: ignore[attr-defined]
    moved = {e.call_id: e for e in pbx.bus.of_type(CallTransferred)}
    assert moved[x.call_id].kind is TransferKind.attended and moved[x.call_id].to.target_id == BORIS
    assert moved[y.call_id].to.display == x.facts.caller
    (y_end,) = [e for e in pbx.bus.of_type(CallEnded) if e.call_id == y.call_id]
    assert y_end.disposition is Disposition.answered and y_end.hangup is HangupSide.caller

    hang_up(caller, customer)  # the customer ends the call: Boris gets our BYE
    await until(lambda: boris_phone.app.calls_ended == 1)
    (x_end,) = [e for e in await pbx.wait_ended(2) if e.call_id == x.call_id]
    assert x_end.disposition is Disposition.answered and x_end.hangup is HangupSide.caller
    await until(lambda: not pbx.b2bua.calls)
    assert pbx.b2bua.engine.leg_count == 0  # type: ignore[attr-defined]


async def test_a_replaces_naming_no_dialog_of_ours_is_refused_and_nothing_changes(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy]
) -> None:
    caller, _ = phones
    anna_phone, spy = agent
    pbx.resolver.plans["100"] = Plan(
        ACCOUNT, (Wave((ring(anna_phone, "answer", ANNA, "Anna"),), 5),)
    )
    customer = dial(caller, pbx, "100")
    assert await final_status(customer) == 200
    x = _call_of(pbx, customer.call_id)
    assert x.winner is not None
    anna = x.winner
    target = f"sip:102@{pbx.address}?Replaces=nosuch%3Bto-tag%3Da%3Bfrom-tag%3Db"
    _refer(anna_phone, pbx, _dialog(anna_phone, anna.sip_call_id), target)
    await until(lambda: spy.statuses("REFER"))
    assert spy.statuses("REFER") == [481]  # Call/Transaction Does Not Exist (RFC 3891 §3)
    assert x.winner is anna and anna_phone.app.calls_ended == 0
    hang_up(caller, customer)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered


async def test_a_replaces_naming_someone_elses_dialog_is_refused(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy]
) -> None:
    caller, boris_phone = phones
    anna_phone, _ = agent
    customer, consult, x, y = await _consulting(pbx, caller, anna_phone, boris_phone)
    assert x.winner is not None and y.winner is not None
    anna, boris = x.winner, y.winner
    # The customer's phone names Boris's dialog (as if it had learnt its tags): not its own.
    seen: list[int] = []
    caller.runner.add_event_hook(
        lambda ev: (
            seen.append(ev.response.status)  # type: ignore[union-attr]
            if getattr(ev, "response", None) is not None and ev.response.cseq.method == "REFER"  # type: ignore[union-attr]
            else None
        )
    )
    replaces = quote(f"{boris.sip_call_id};to-tag={boris.local_tag};from-tag=x", safe="")
    target = f"sip:102@{pbx.address}?Replaces={replaces}"
    _refer(caller, pbx, _dialog(caller, customer.call_id), target)
    await until(lambda: seen)
    assert seen == [403]
    assert x.winner is anna and y.winner is boris and not x.done and not y.done
    hang_up(caller, customer)
    hang_up(anna_phone, consult)
    await pbx.wait_ended(2)


@pytest.mark.parametrize("refer_in", ["customer", "consultation"])
async def test_an_agent_who_placed_both_calls_joins_the_customer_to_the_colleague(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy], refer_in: str
) -> None:
    """Anna (101) calls a customer, then Boris to consult, and transfers: the customer's
    call survives — Anna's leg leaves it, the customer becomes its caller, Boris's leg is
    adopted and bridged to the customer — whichever of her dialogs the REFER came in."""
    customer_phone, boris_phone = phones
    anna_phone, spy = agent
    first = await dials_out(pbx, anna_phone, customer_phone, boris_phone)
    consult = dial(anna_phone, pbx, "102")
    assert await final_status(consult) == 200
    x, y = _call_of(pbx, first.call_id), _call_of(pbx, consult.call_id)
    assert y.winner is not None
    boris_leg = y.winner
    named, via = (y, consult) if refer_in == "customer" else (x, first)
    replaces = quote(
        f"{named.caller.sip_call_id};to-tag={named.caller.local_tag}"
        f";from-tag={named.caller.remote_tag}",
        safe="",
    )
    other = first if via is consult else consult
    _refer(
        anna_phone,
        pbx,
        _dialog(anna_phone, other.call_id),
        f"sip:102@{pbx.address}?Replaces={replaces}",
    )

    await until(lambda: len(pbx.bus.of_type(CallTransferred)) == 2)
    assert spy.statuses("REFER") == [202]
    await until(lambda: len(spy.notifies()) == 2)
    assert spy.notifies() == [b"SIP/2.0 100 Trying\r\n", b"SIP/2.0 200 OK\r\n"]
    await until(lambda: anna_phone.app.calls_ended == 2)  # our BYE in both of her dialogs
    assert x.winner is boris_leg and x.caller.was_fork and not x.done and y.done
    engine = pbx.b2bua.engine
    assert x.caller.media_id is not None
    assert engine._legs[x.caller.media_id].peer is engine._legs[boris_leg.media_id]  # type: ignore[attr-defined]
    moved = {e.call_id: e for e in pbx.bus.of_type(CallTransferred)}
    assert moved[x.call_id].kind is TransferKind.attended and moved[x.call_id].to.target_id == BORIS
    assert moved[y.call_id].to.display == CUSTOMER  # whom Boris talks to now
    assert customer_phone.app.calls_ended == 0 and boris_phone.app.calls_ended == 0
    (customer_leg,) = list(customer_phone.app._legs.values())
    (customer_leg.dialog,) = list(customer_phone.runner.ua.dialogs)  # its UAS legs keep none
    customer_phone.app.hangup(customer_leg, customer_phone.runner.loop.time())
    customer_phone.runner.pump()
    await until(lambda: boris_phone.app.calls_ended == 1)  # our BYE at the end
    await until(lambda: x.done)
    ends = {e.call_id: e for e in pbx.bus.of_type(CallEnded)}
    assert ends[x.call_id].disposition is Disposition.answered
    assert ends[x.call_id].hangup is HangupSide.caller


@pytest.mark.parametrize("refer_in", ["older", "younger"])
async def test_an_agent_who_answered_both_calls_joins_the_two_callers(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy], refer_in: str
) -> None:
    """A receptionist: Anna answers a customer, holds them, answers a second caller and
    transfers one to the other. The older call survives and adopts the younger call's
    caller as its answered leg; Anna is hung up in both; the callers talk to each other."""
    first_phone, second_phone = phones
    anna_phone, spy = agent
    pbx.resolver.plans["100"] = Plan(
        ACCOUNT, (Wave((ring(anna_phone, "answer", ANNA, "Anna"),), 5),)
    )
    first = dial(first_phone, pbx, "100")
    assert await final_status(first) == 200
    second = dial(second_phone, pbx, "100")
    assert await final_status(second) == 200
    x, y = _call_of(pbx, first.call_id), _call_of(pbx, second.call_id)
    assert x.winner is not None and y.winner is not None and y.caller.media_id is not None
    second_media = y.caller.media_id
    via, named = (x, y) if refer_in == "older" else (y, x)
    assert named.winner is not None and via.winner is not None
    anna_named = _dialog(anna_phone, named.winner.sip_call_id)
    replaces = quote(
        f"{named.winner.sip_call_id};to-tag={named.winner.local_tag}"
        f";from-tag={anna_named.id.local_tag}",
        safe="",
    )
    _refer(
        anna_phone,
        pbx,
        _dialog(anna_phone, via.winner.sip_call_id),
        f"sip:100@{pbx.address}?Replaces={replaces}",
    )

    await until(lambda: len(pbx.bus.of_type(CallTransferred)) == 2)
    assert spy.statuses("REFER") == [202]
    await until(lambda: len(spy.notifies()) == 2)
    assert spy.notifies() == [b"SIP/2.0 100 Trying\r\n", b"SIP/2.0 200 OK\r\n"]
    await until(lambda: anna_phone.app.calls_ended == 2)  # our BYE in both of her dialogs
    assert not x.done and y.done and x.winner is not None
    assert x.winner.media_id == second_media and x.winner.sip_call_id == second.call_id
    engine = pbx.b2bua.engine
    assert x.caller.media_id is not None
    assert engine._legs[x.caller.media_id].peer is engine._legs[second_media]  # type: ignore[attr-defined]
    assert first_phone.app.calls_ended == 0 and second_phone.app.calls_ended == 0
    moved = {e.call_id: e for e in pbx.bus.of_type(CallTransferred)}
    assert moved[x.call_id].kind is TransferKind.attended
    assert moved[x.call_id].to.display == y.facts.caller  # whom the first caller talks to
    assert moved[y.call_id].to.display == x.facts.caller
    (y_end,) = [e for e in pbx.bus.of_type(CallEnded) if e.call_id == y.call_id]
    assert y_end.disposition is Disposition.answered

    hang_up(second_phone, second)  # the second caller leaves: the first gets our BYE
    await until(lambda: first_phone.app.calls_ended == 1)
    await until(lambda: x.done)
    ends = {e.call_id: e for e in pbx.bus.of_type(CallEnded)}
    assert ends[x.call_id].disposition is Disposition.answered
    assert ends[x.call_id].hangup is HangupSide.callee
    await until(lambda: not pbx.b2bua.calls)
    assert pbx.b2bua.engine.leg_count == 0  # type: ignore[attr-defined]
