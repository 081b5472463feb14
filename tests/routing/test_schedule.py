"""Schedule branches at injected instants: working hours edges, holidays, transfers, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from zvonar.core.errors import InvalidInput
from zvonar.routing.schedule import (
    Branch,
    HolidayCalendar,
    Schedule,
    TimeRange,
    WorkCalendar,
    calendar_from_dict,
    calendar_to_dict,
)

MSK = "Europe/Moscow"  # UTC+3 all year
RU = WorkCalendar(tz=MSK, schedule=Schedule.office(), holidays=HolidayCalendar(country="RU"))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_friday_evening_edge_in_moscow() -> None:
    # Friday 2024-03-15: 17:59 Moscow is 14:59 UTC, 18:00 Moscow is 15:00 UTC.
    assert RU.branch_at(utc(2024, 3, 15, 14, 59)) is Branch.working
    assert RU.branch_at(utc(2024, 3, 15, 15, 0)) is Branch.off
    assert RU.branch_at(utc(2024, 3, 15, 5, 59)) is Branch.off  # 08:59 Moscow
    assert RU.branch_at(utc(2024, 3, 15, 6, 0)) is Branch.working
    assert RU.branch_at(utc(2024, 3, 16, 10, 0)) is Branch.off  # Saturday


def test_russian_public_holiday_and_overrides() -> None:
    # Tuesday 12 June 2024 is Russia Day; Wednesday 13 June is an ordinary day.
    assert RU.branch_at(utc(2024, 6, 12, 9, 0)) is Branch.holiday
    assert RU.branch_at(utc(2024, 6, 13, 9, 0)) is Branch.working
    # The account works on Russia Day but closes on 13 June.
    cal = WorkCalendar(
        tz=MSK,
        holidays=HolidayCalendar(
            country="RU",
            working_days=frozenset({date(2024, 6, 12)}),
            extra_days_off=frozenset({date(2024, 6, 13)}),
        ),
    )
    assert cal.branch_at(utc(2024, 6, 12, 9, 0)) is Branch.working
    assert cal.branch_at(utc(2024, 6, 13, 9, 0)) is Branch.holiday


def test_transferred_working_saturday() -> None:
    # Saturday 2 November 2024 was a working day in Russia (moved to 30 December).
    assert RU.branch_at(utc(2024, 11, 2, 9, 0)) is Branch.working  # 12:00 Moscow
    assert RU.branch_at(utc(2024, 11, 2, 16, 0)) is Branch.off  # 19:00 Moscow
    assert RU.branch_at(utc(2024, 11, 9, 9, 0)) is Branch.off  # the next Saturday
    assert RU.branch_at(utc(2024, 12, 30, 9, 0)) is Branch.holiday  # the day it moved to
    # Without a country no calendar applies.
    plain = WorkCalendar(tz=MSK)
    assert plain.branch_at(utc(2024, 11, 2, 9, 0)) is Branch.off
    assert plain.branch_at(utc(2024, 6, 12, 9, 0)) is Branch.working


def test_a_decree_working_saturday_takes_weekday_hours_over_the_shops_own() -> None:
    """A shop open 10:00-14:00 on Saturdays: Saturday 1 November 2025 is a working day by
    decree in Russia (Monday 3 November's), a full weekday, so it is open 09:00-18:00 then;
    the next Saturday has its own short hours again. The account's own working day on a
    Saturday is the same; custom hours are how a date says otherwise."""
    hours = {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    shop = {"hours": {**hours, "sat": ["10:00-14:00"]}}
    cal = calendar_from_dict(shop, tz=MSK, default_country="RU")
    assert cal.branch_at(utc(2025, 11, 1, 6, 30)) is Branch.working  # 09:30
    assert cal.branch_at(utc(2025, 11, 1, 12, 0)) is Branch.working  # 15:00
    assert cal.branch_at(utc(2025, 11, 1, 15, 0)) is Branch.off  # 18:00
    assert cal.branch_at(utc(2025, 11, 8, 6, 30)) is Branch.off  # an ordinary Saturday, 09:30
    assert cal.branch_at(utc(2025, 11, 8, 7, 0)) is Branch.working  # 10:00
    assert cal.branch_at(utc(2025, 11, 8, 11, 0)) is Branch.off  # 14:00
    own = calendar_from_dict(
        {**shop, "country": None, "working_days": ["2025-11-08"]}, tz=MSK, default_country="RU"
    )
    assert own.branch_at(utc(2025, 11, 8, 12, 0)) is Branch.working  # 15:00
    short = calendar_from_dict(
        {**shop, "custom_hours": {"2025-11-01": ["10:00-14:00"]}}, tz=MSK, default_country="RU"
    )
    assert short.branch_at(utc(2025, 11, 1, 12, 0)) is Branch.off  # 15:00


def test_a_worked_public_holiday_keeps_its_weekdays_hours() -> None:
    """Russia Day (Thursday 12 June 2025) in working_days is that Thursday as usual: the
    shop's own Thursday hours, not the standard day's."""
    week = {"mon": ["09:00-18:00"], "thu": ["12:00-16:00"]}
    cal = calendar_from_dict(
        {"hours": week, "working_days": ["2025-06-12"]}, tz=MSK, default_country="RU"
    )
    assert cal.branch_at(utc(2025, 6, 12, 7, 0)) is Branch.off  # 10:00
    assert cal.branch_at(utc(2025, 6, 12, 10, 0)) is Branch.working  # 13:00


def test_custom_hours_for_a_shortened_day() -> None:
    cal = calendar_from_dict(
        {"custom_hours": {"2024-03-07": ["09:00-17:00"]}}, tz=MSK, default_country="RU"
    )
    assert cal.branch_at(utc(2024, 3, 7, 13, 30)) is Branch.working  # 16:30
    assert cal.branch_at(utc(2024, 3, 7, 14, 30)) is Branch.off  # 17:30
    assert cal.branch_at(utc(2024, 3, 8, 9, 0)) is Branch.holiday  # Women's Day


def test_dst_in_kyiv() -> None:
    # Kyiv leaves UTC+2 for UTC+3 on Sunday 31 March 2024. 06:30 UTC is 08:30 local on Friday
    # the 29th (closed) and 09:30 local on Monday 1 April (open).
    kyiv = WorkCalendar(tz="Europe/Kyiv", holidays=HolidayCalendar(country="UA"))
    assert kyiv.branch_at(utc(2024, 3, 29, 6, 30)) is Branch.off
    assert kyiv.branch_at(utc(2024, 4, 1, 6, 30)) is Branch.working
    # And back on Sunday 27 October: 15:30 UTC is 18:30 local on Friday 25th, 17:30 on Monday 28th.
    assert kyiv.branch_at(utc(2024, 10, 25, 15, 30)) is Branch.off
    assert kyiv.branch_at(utc(2024, 10, 28, 15, 30)) is Branch.working


def test_several_ranges_and_across_midnight() -> None:
    cal = calendar_from_dict(
        {"hours": {"mon": ["08:00-12:00", "13:00-17:00"], "fri": ["22:00-02:00"]}},
        tz="UTC",
        default_country=None,
    )
    assert cal.branch_at(utc(2024, 3, 11, 11, 59)) is Branch.working  # Monday
    assert cal.branch_at(utc(2024, 3, 11, 12, 30)) is Branch.off  # lunch
    assert cal.branch_at(utc(2024, 3, 11, 13, 0)) is Branch.working
    assert cal.branch_at(utc(2024, 3, 15, 21, 59)) is Branch.off  # Friday before the shift
    assert cal.branch_at(utc(2024, 3, 15, 23, 0)) is Branch.working
    assert cal.branch_at(utc(2024, 3, 16, 1, 59)) is Branch.working  # Saturday, still Friday's
    assert cal.branch_at(utc(2024, 3, 16, 2, 0)) is Branch.off


def test_round_trip_and_errors() -> None:
    data = {
        "hours": {"mon": ["09:00-18:00"], "sat": ["10:00-24:00"]},
        "country": "KZ",
        "extra_days_off": ["2025-01-10"],
        "working_days": ["2025-01-11"],
        "custom_hours": {"2025-12-31": ["09:00-15:00"]},
    }
    cal = calendar_from_dict(data, tz="Asia/Almaty", default_country="RU")
    out = calendar_to_dict(cal)
    assert out["hours"]["mon"] == ["09:00-18:00"] and out["hours"]["sat"] == ["10:00-24:00"]
    assert out["hours"]["tue"] == []
    assert calendar_from_dict(out, tz="Asia/Almaty", default_country=None) == cal

    cases = [
        ({"hours": {"mon": ["9-18"]}}, "hours.mon[0]"),
        ({"hours": {"monday": []}}, "hours.monday"),
        ({"country": "XX"}, "country"),
        ({"extra_days_off": ["2025-13-01"]}, "extra_days_off[0]"),
        ({"colour": 1}, "colour"),
        ({"extra_days_off": ["2025-01-01"], "working_days": ["2025-01-01"]}, "working_days"),
    ]
    for bad, path in cases:
        with pytest.raises(InvalidInput) as err:
            calendar_from_dict(bad, tz="UTC", default_country=None)
        assert err.value.details["path"] == path, bad


def test_a_calendar_without_a_country_takes_the_accounts_and_stays_without() -> None:
    """``country`` left out is the account's country at the time the calendar is read, and
    is written back left out (the account may move); null is no holidays at all."""
    data = {"hours": {"mon": ["09:00-18:00"]}}
    ru = calendar_from_dict(data, tz=MSK, default_country="RU")
    kz = calendar_from_dict(calendar_to_dict(ru), tz="Asia/Almaty", default_country="KZ")
    assert ru.follows_account and ru.holidays.country == "RU"
    assert kz.follows_account and kz.holidays.country == "KZ"
    assert "country" not in calendar_to_dict(ru)
    for own in ("RU", None):
        pinned = calendar_from_dict({**data, "country": own}, tz=MSK, default_country="KZ")
        assert not pinned.follows_account and pinned.holidays.country == own
        assert calendar_to_dict(pinned)["country"] == own


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("22:00-00:00", "22:00-24:00"),  # 00:00 as an end is midnight, as 24:00 is
        ("22:00-24:00", "22:00-24:00"),
        ("00:00-00:00", "00:00-24:00"),
        ("9:00-18:00", "09:00-18:00"),  # a one-digit hour, as people write it
        ("9:30 - 13:00", "09:30-13:00"),
        ("22:00-2:00", "22:00-02:00"),  # across midnight
    ],
)
def test_time_ranges_as_people_write_them(text: str, canonical: str) -> None:
    assert str(TimeRange.parse(text, "hours.mon[0]")) == canonical


def test_midnight_as_an_end_keeps_the_evening_open() -> None:
    cal = calendar_from_dict({"hours": {"fri": ["22:00-00:00"]}}, tz="UTC", default_country=None)
    assert cal.branch_at(utc(2024, 3, 15, 23, 59)) is Branch.working  # Friday 23:59
    assert cal.branch_at(utc(2024, 3, 16, 0, 0)) is Branch.off  # Saturday 00:00


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("24:00-02:00", "must start before 24:00 (midnight is 00:00)"),
        ("10:00-24:30", "must end by 24:00"),
        ("09:00-09:00", "start and end are the same time"),
        ("25:00-26:00", "expected a range like '09:00-18:00'"),
        ("9-18", "expected a range like '09:00-18:00'"),
        ("09:0-18:00", "expected a range like '09:00-18:00'"),
    ],
)
def test_a_time_range_refused_says_why(text: str, why: str) -> None:
    with pytest.raises(InvalidInput) as err:
        TimeRange.parse(text, "hours.mon[0]")
    assert why in str(err.value) and err.value.details["path"] == "hours.mon[0]"


def test_naive_instant_refused() -> None:
    with pytest.raises(ValueError):
        RU.branch_at(datetime(2024, 3, 15, 12, 0))
