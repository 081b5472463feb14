"""Caller-ID selection by the callee's region, the last number called, the contact's city, and
trunk selection."""

from __future__ import annotations

import uuid

import pytest

from zvonar.outbound.callerid import CallerIdChoice, CallerIdRule, OwnNumber, select_caller_id
from zvonar.outbound.errors import NoTrunk
from zvonar.outbound.trunks import TrunkOption, select_trunk

MOSCOW = "+74951112233"
MOSCOW_499 = "+74992223344"
NOVOSIBIRSK = "+73832001122"
SPB = "+78123334455"
OURS = [OwnNumber(MOSCOW), OwnNumber(NOVOSIBIRSK), OwnNumber(SPB)]


def test_callee_area_code_picks_our_number_in_that_area() -> None:
    choice = select_caller_id("+73839998877", OURS, trunk_default=MOSCOW)
    assert choice == CallerIdChoice(NOVOSIBIRSK, CallerIdRule.callee_region)
    assert select_caller_id("+78125556677", OURS).e164 == SPB


def test_same_place_with_another_area_code_matches_by_geocoded_name() -> None:
    # 499 and 495 are both Moscow.
    choice = select_caller_id("+74995556677", [OwnNumber(NOVOSIBIRSK), OwnNumber(MOSCOW)])
    assert choice == CallerIdChoice(MOSCOW, CallerIdRule.callee_region)


def test_inactive_numbers_are_never_presented() -> None:
    ours = [OwnNumber(NOVOSIBIRSK, active=False), OwnNumber(MOSCOW)]
    assert select_caller_id("+73839998877", ours, trunk_default=MOSCOW) == CallerIdChoice(
        MOSCOW, None
    )


def test_mobile_callee_falls_through_to_last_called_then_city_then_default() -> None:
    mobile = "+79161234567"  # geocodes only to "Russia": no region signal
    assert select_caller_id(mobile, OURS, last_called=SPB) == CallerIdChoice(
        SPB, CallerIdRule.last_called
    )
    # A number that is not ours (anymore) is ignored.
    assert select_caller_id(mobile, OURS, last_called="+74950000000").rule is None
    assert select_caller_id(mobile, OURS, contact_city="Новосибирск") == CallerIdChoice(
        NOVOSIBIRSK, CallerIdRule.contact_city
    )
    assert select_caller_id(mobile, OURS, contact_city="Москва").e164 == MOSCOW
    assert select_caller_id(mobile, OURS, contact_city="novosibirsk").e164 == NOVOSIBIRSK
    assert select_caller_id(mobile, OURS, contact_city="Омск").rule is None
    assert select_caller_id(mobile, OURS, trunk_default=MOSCOW_499) == CallerIdChoice(
        MOSCOW_499, None
    )


def test_rule_order_is_the_accounts() -> None:
    rules = [CallerIdRule.last_called, CallerIdRule.callee_region]
    choice = select_caller_id("+73839998877", OURS, rules=rules, last_called=SPB)
    assert choice == CallerIdChoice(SPB, CallerIdRule.last_called)
    only_city = select_caller_id("+73839998877", OURS, rules=[CallerIdRule.contact_city])
    assert only_city.rule is None


HOTLINE = "+78001234567"  # toll-free 8-800: calls in only
PREMIUM = "+78091234567"
SHARED_COST_DE = "+4918012345"


def test_a_toll_free_premium_or_shared_cost_number_is_never_chosen() -> None:
    """The client called our 8-800 hotline last: presenting it on a call to them is refused
    by carriers (a toll-free number takes calls in only), and premium-rate or shared-cost
    numbers would charge them for calling back. No rule picks one."""
    mobile = "+79161112233"
    ours = [OwnNumber(HOTLINE), OwnNumber(PREMIUM), OwnNumber(SHARED_COST_DE), *OURS]
    for number in (HOTLINE, PREMIUM, SHARED_COST_DE):
        choice = select_caller_id(mobile, ours, last_called=number, trunk_default=MOSCOW)
        assert choice == CallerIdChoice(MOSCOW, None), number
    assert select_caller_id("+78005553535", [OwnNumber(HOTLINE)]).e164 is None  # region
    assert select_caller_id("+4918055555", [OwnNumber(SHARED_COST_DE)]).e164 is None
    # the account's own choice of the trunk's default still stands
    assert select_caller_id(mobile, ours, trunk_default=HOTLINE) == CallerIdChoice(HOTLINE, None)


def _trunk(name: str, **kw: object) -> TrunkOption:
    return TrunkOption(id=uuid.uuid4(), name=name, **kw)  # type: ignore[arg-type]


def test_trunk_hosting_the_caller_id_wins() -> None:
    a = _trunk("a", priority=1)
    b = _trunk("b", priority=5, numbers=frozenset({NOVOSIBIRSK}))
    assert select_trunk("+73839998877", [a, b], caller_id=NOVOSIBIRSK) is b
    assert select_trunk("+73839998877", [a, b]) is a


def test_longest_prefix_then_priority_and_inactive_skipped() -> None:
    anywhere = _trunk("any", priority=1)
    russia = _trunk("ru", priority=9, prefixes=("+7",))
    sib = _trunk("sib", priority=9, prefixes=("+7383",), active=False)
    assert select_trunk("+73839998877", [anywhere, russia, sib]) is russia
    assert select_trunk("+12125551234", [anywhere, russia]) is anywhere
    with pytest.raises(NoTrunk):
        select_trunk("+12125551234", [russia, sib])
