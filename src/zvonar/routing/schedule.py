"""Working hours and production calendars: which schedule branch a scheme takes at an instant.

Everything here is pure: the instant is passed in (UTC, aware), the zone is an IANA name, and the
only outside data are the public holidays of the ``holidays`` package, which are a deterministic
function of ``(country, year)``.

Rules, in order, for the local date ``d`` and local time ``t`` of the instant:

1. ``working`` when ``t`` falls in one of ``d``'s working ranges, or in the after-midnight tail of
   a range of the day before that crosses midnight ("22:00-02:00").
2. ``holiday`` when ``d`` is a public holiday of the country (unless the account made it a
   working day) or one of the account's extra days off.
3. ``off`` otherwise.

``d``'s working ranges are: the account's custom hours for that date when set (a shortened
pre-holiday day); none on a holiday; on a *transferred working day* (a weekend day the
government or the account turned into a working day, e.g. Saturday 2 November 2024 in Russia)
the hours of the weekday the schedule calls standard (its first weekday with hours), even when
the week has hours of its own for that day: by decree it is a full weekday, and a shop with a
short Saturday is open as on a weekday then; otherwise the weekly hours of ``d``'s weekday (a
worked public holiday on a weekday keeps that weekday's hours).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from zvonar.routing.errors import CalendarInvalid

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKEND = frozenset({5, 6})  # Saturday, Sunday
_DAY_SECONDS = 24 * 3600
# "HH:MM-HH:MM"; an hour may have one digit ("9:00-18:00"), as people write it.
_RANGE = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)\s*-\s*([01]?\d|2[0-4]):([0-5]\d)$")
MAX_RANGES_PER_DAY = 8
MAX_DATES = 400


class Branch(enum.StrEnum):
    working = "working"
    off = "off"
    holiday = "holiday"


@dataclass(frozen=True)
class TimeRange:
    """``[start, end)`` in minutes after local midnight; ``end <= start`` crosses midnight."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start < 1440 and 0 < self.end <= 1440) or self.start == self.end:
            raise ValueError(f"bad time range {self.start}-{self.end}")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def covers_same_day(self, second: int) -> bool:
        end = 1440 if self.crosses_midnight else self.end
        return self.start * 60 <= second < end * 60

    def covers_next_day(self, second: int) -> bool:
        return self.crosses_midnight and second < self.end * 60

    @classmethod
    def parse(cls, text: str, path: str) -> TimeRange:
        """``"HH:MM-HH:MM"`` (``H:MM`` too). An end of 00:00 is midnight, as 24:00 is
        ("22:00-00:00" is "22:00-24:00"); an end before the start crosses midnight."""
        m = _RANGE.match(text.strip()) if isinstance(text, str) else None
        if m is None:
            raise CalendarInvalid("expected a range like '09:00-18:00'", path=path)
        sh, sm, eh, em = (int(g) for g in m.groups())
        start, end = sh * 60 + sm, eh * 60 + em
        if start >= 1440:
            raise CalendarInvalid(
                f"{text!r}: a range must start before 24:00 (midnight is 00:00)", path=path
            )
        if end > 1440:
            raise CalendarInvalid(f"{text!r}: a range must end by 24:00", path=path)
        if end == 0:
            end = 1440  # midnight at the end of the day
        if start == end:
            raise CalendarInvalid(
                f"{text!r}: start and end are the same time (a whole day is 00:00-24:00)",
                path=path,
            )
        return cls(start, end)

    def __str__(self) -> str:
        return (
            f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"
        )


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


Hours = tuple[TimeRange, ...]


@dataclass(frozen=True)
class Schedule:
    """Weekly working hours: ``week[0]`` is Monday; several ranges a day are allowed."""

    week: tuple[Hours, Hours, Hours, Hours, Hours, Hours, Hours]

    @classmethod
    def office(cls, start: str = "09:00", end: str = "18:00") -> Schedule:
        """Monday to Friday, one range a day: the default of a new account."""
        day = (TimeRange.parse(f"{start}-{end}", "hours"),)
        return cls((day, day, day, day, day, (), ()))

    @property
    def standard_day(self) -> Hours:
        for hours in self.week:
            if hours:
                return hours
        return ()


@dataclass(frozen=True)
class HolidayCalendar:
    """Public holidays of ``country`` (none when ``None``) with the account's overrides."""

    country: str | None = None
    extra_days_off: frozenset[date] = frozenset()
    working_days: frozenset[date] = frozenset()
    custom_hours: Mapping[date, Hours] = field(default_factory=dict)

    def is_public_holiday(self, d: date) -> bool:
        return self.country is not None and d in _public(self.country, d.year)

    def is_holiday(self, d: date) -> bool:
        if d in self.extra_days_off:
            return True
        return d not in self.working_days and self.is_public_holiday(d)

    def is_transferred_working_day(self, d: date) -> bool:
        if d in self.extra_days_off:
            return False
        if d in self.working_days:
            return True
        return self.country is not None and d in _weekend_workdays(self.country, d.year)

    def is_weekend(self, d: date) -> bool:
        """The country's weekend (Saturday and Sunday without a country, or by default)."""
        weekend = _holidays(self.country, d.year).weekend if self.country else _WEEKEND
        return d.weekday() in weekend

    def hours_on(self, d: date, schedule: Schedule) -> Hours:
        if d in self.custom_hours:
            return self.custom_hours[d]
        if self.is_holiday(d):
            return ()
        hours = schedule.week[d.weekday()]
        if (not hours or self.is_weekend(d)) and self.is_transferred_working_day(d):
            # A weekend day worked as a weekday is one: its weekday hours, not the week's
            # own (shorter) hours for that day. Custom hours are how to say otherwise.
            return schedule.standard_day
        return hours


@functools.lru_cache(maxsize=256)
def _holidays(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year)


_LANGUAGES = {"en": "en_US", "ru": "ru", "uk": "uk"}


@functools.lru_cache(maxsize=64)
def _named(country: str, year: int, language: str | None) -> holidays.HolidayBase:
    """The public holidays with their names in ``language`` when the country's calendar
    speaks it (its own language otherwise): the same days as :func:`_public`."""
    wanted = _LANGUAGES.get(language or "")
    base = _holidays(country, year)
    if wanted is None or wanted not in getattr(base, "supported_languages", ()):
        return base
    return holidays.country_holidays(country, years=year, language=wanted)


def _public(country: str, year: int) -> holidays.HolidayBase:
    return _holidays(country, year)


@functools.lru_cache(maxsize=256)
def _weekend_workdays(country: str, year: int) -> frozenset[date]:
    # Newer ``holidays`` releases list the weekend days moved to working days (RU, KZ, …).
    days = getattr(_holidays(country, year), "weekend_workdays", ())
    return frozenset(d for d in days if d.year == year)


def supported_country(country: str) -> bool:
    return country in holidays.list_supported_countries()


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarInvalid(
            f"unknown time zone {name!r}", path="time_zone", code="invalid_time_zone"
        ) from exc


def branch_at(
    instant_utc: datetime, tz: str, schedule: Schedule, calendar: HolidayCalendar
) -> Branch:
    """The branch in force at ``instant_utc`` for an account in zone ``tz`` (see module doc)."""
    if instant_utc.tzinfo is None:
        raise ValueError("branch_at needs an aware instant")
    # zoneinfo applies the zone's offset for that very instant, so DST changes need no care.
    local = instant_utc.astimezone(zone(tz))
    d = local.date()
    second = local.hour * 3600 + local.minute * 60 + local.second
    if any(r.covers_same_day(second) for r in calendar.hours_on(d, schedule)):
        return Branch.working
    before = d - timedelta(days=1)
    if any(r.covers_next_day(second) for r in calendar.hours_on(before, schedule)):
        return Branch.working
    return Branch.holiday if calendar.is_holiday(d) else Branch.off


@dataclass(frozen=True)
class WorkCalendar:
    """An account's whole calendar: zone, weekly hours and holidays.

    ``follows_account``: the calendar names no country of its own (``country`` left out), so
    ``holidays.country`` is the account's as it was when the calendar was read; written back
    (``calendar_to_dict``) the country stays left out, and an account that moves country takes
    its new country's holidays with it."""

    tz: str = "UTC"
    schedule: Schedule = field(default_factory=Schedule.office)
    holidays: HolidayCalendar = field(default_factory=HolidayCalendar)
    follows_account: bool = False

    def branch_at(self, instant_utc: datetime) -> Branch:
        return branch_at(instant_utc, self.tz, self.schedule, self.holidays)


class DayKind(enum.StrEnum):
    holiday = "holiday"  # no hours: a public holiday, or a day off the account added
    working = "working"  # worked although a weekend day or a holiday
    custom = "custom"  # hours of its own that day


@dataclass(frozen=True)
class SpecialDay:
    """A day of a year that the plain week does not describe, and why: what an admin checks
    before a holiday season (``source``: ``country`` for the public calendar, ``account`` for
    the calendar's own overrides)."""

    day: date
    kind: DayKind
    source: str
    name: str | None
    hours: Hours


def special_days(cal: WorkCalendar, year: int, language: str | None = None) -> list[SpecialDay]:
    """Every day of ``year`` the calendar treats other than its week does, by date; public
    holidays named in ``language`` (ours: en, ru, uk) where the country's calendar has it."""
    h = cal.holidays
    out: dict[date, SpecialDay] = {}
    if h.country is not None:
        public = _named(h.country, year, language)
        for d in sorted(d for d in public if d.year == year):
            out[d] = SpecialDay(d, DayKind.holiday, "country", str(public.get(d)), ())
        for d in sorted(_weekend_workdays(h.country, year)):
            out[d] = SpecialDay(d, DayKind.working, "country", None, ())
    overrides = (
        (h.working_days, DayKind.working),
        (h.extra_days_off, DayKind.holiday),
        (frozenset(h.custom_hours), DayKind.custom),
    )
    for days, kind in overrides:  # the later wins, as in hours_on
        for d in days:
            if d.year == year:
                known = out.get(d)
                out[d] = SpecialDay(d, kind, "account", known.name if known else None, ())
    return [replace(found, hours=h.hours_on(d, cal.schedule)) for d, found in sorted(out.items())]


# --- plain data -----------------------------------------------------------------------------------
# {"hours": {"mon": ["09:00-18:00"], ...}, "country": "RU" | null, "extra_days_off": [iso dates],
#  "working_days": [iso dates], "custom_hours": {iso date: [ranges]}}; the zone is the account's,
# and so is the country when "country" is left out (null: no public holidays at all).

_CAL_KEYS = {"hours", "country", "extra_days_off", "working_days", "custom_hours"}


def _hours(value: Any, path: str) -> Hours:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise CalendarInvalid("expected a list of ranges", path=path)
    if len(value) > MAX_RANGES_PER_DAY:
        raise CalendarInvalid(f"at most {MAX_RANGES_PER_DAY} ranges", path=path)
    return tuple(TimeRange.parse(v, f"{path}[{i}]") for i, v in enumerate(value))


def _date(value: Any, path: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # YAML reads an unquoted 2025-01-10 as a date
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise CalendarInvalid("expected a date like 2025-01-10", path=path) from exc


def _dates(value: Any, path: str) -> frozenset[date]:
    if not isinstance(value, list) or len(value) > MAX_DATES:
        raise CalendarInvalid(f"expected a list of at most {MAX_DATES} dates", path=path)
    return frozenset(_date(v, f"{path}[{i}]") for i, v in enumerate(value))


def calendar_from_dict(
    data: Mapping[str, Any], *, tz: str, default_country: str | None
) -> WorkCalendar:
    """Parse the plain-data calendar; ``country`` absent means the account's country,
    ``default_country`` (and the calendar ``follows_account``)."""
    if not isinstance(data, Mapping):
        raise CalendarInvalid("expected a mapping", path="")
    unknown = sorted(set(data) - _CAL_KEYS)
    if unknown:
        raise CalendarInvalid(f"unknown key {unknown[0]!r}", path=str(unknown[0]))
    schedule = Schedule.office()
    if "hours" in data:
        hours = data["hours"]
        if not isinstance(hours, Mapping):
            raise CalendarInvalid("expected a mapping of weekdays", path="hours")
        bad = sorted(set(map(str, hours)) - set(DAY_NAMES))
        if bad:
            raise CalendarInvalid("weekdays are mon..sun", path=f"hours.{bad[0]}")
        week = [_hours(hours.get(name, []), f"hours.{name}") for name in DAY_NAMES]
        schedule = Schedule((week[0], week[1], week[2], week[3], week[4], week[5], week[6]))
    country = data.get("country", default_country)
    if country is not None and (not isinstance(country, str) or not supported_country(country)):
        raise CalendarInvalid(
            f"no public holiday calendar for {country!r}", path="country", code="invalid_country"
        )
    custom: dict[date, Hours] = {}
    raw_custom = data.get("custom_hours", {})
    if not isinstance(raw_custom, Mapping) or len(raw_custom) > MAX_DATES:
        raise CalendarInvalid("expected a mapping of date to ranges", path="custom_hours")
    for key, value in raw_custom.items():
        custom[_date(key, f"custom_hours.{key}")] = _hours(value, f"custom_hours.{key}")
    extra = _dates(data.get("extra_days_off", []), "extra_days_off")
    working = _dates(data.get("working_days", []), "working_days")
    both = sorted(extra & working)
    if both:
        raise CalendarInvalid(f"{both[0]} is both a day off and a working day", path="working_days")
    zone(tz)
    return WorkCalendar(
        tz=tz,
        schedule=schedule,
        holidays=HolidayCalendar(
            country=country, extra_days_off=extra, working_days=working, custom_hours=custom
        ),
        follows_account="country" not in data,
    )


def calendar_to_dict(cal: WorkCalendar) -> dict[str, Any]:
    """The plain-data calendar, as stored and exported: ``country`` only when the calendar
    names its own (a calendar that follows the account's country leaves it out)."""
    h = cal.holidays
    out: dict[str, Any] = {
        "hours": {
            name: [str(r) for r in hours]
            for name, hours in zip(DAY_NAMES, cal.schedule.week, strict=True)
        }
    }
    if not cal.follows_account:
        out["country"] = h.country
    out["extra_days_off"] = [d.isoformat() for d in sorted(h.extra_days_off)]
    out["working_days"] = [d.isoformat() for d in sorted(h.working_days)]
    out["custom_hours"] = {
        d.isoformat(): [str(r) for r in h.custom_hours[d]] for d in sorted(h.custom_hours)
    }
    return out
