"""Who the simulator's callers are: distinct numbers valid in the account's country, a few of
them calling again and again; and the options that say how many and from which hour."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import phonenumbers
import pytest

from tests.platform.test_cli import cli_env as cli_env  # the same isolated environment
from tests.platform.test_cli_errors import one_error
from zvonar.sim import SimConfig
from zvonar.sim.numbers import CallerPool, caller_numbers


@pytest.mark.parametrize("country", ["RU", "UA", "KZ", "BY", "DE", "GB", "US"])
def test_the_pool_is_distinct_numbers_of_the_country(country: str) -> None:
    pool = caller_numbers(country, 50, random.Random(1))
    assert len(pool) == len(set(pool)) == 50
    for number in pool:
        parsed = phonenumbers.parse(number)
        assert phonenumbers.is_valid_number_for_region(parsed, country), number
        assert number == phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    # The same seed, the same people.
    assert caller_numbers(country, 50, random.Random(1)) == pool
    assert caller_numbers(country.lower(), 5, random.Random(2)) != pool[:5]


def test_a_country_without_a_plan_or_a_pool_of_nobody_is_refused() -> None:
    with pytest.raises(ValueError, match="number plan"):
        caller_numbers("XX", 5, random.Random(1))
    with pytest.raises(ValueError):
        caller_numbers("RU", 0, random.Random(1))
    with pytest.raises(ValueError):
        CallerPool(())


def test_a_few_callers_call_often_most_rarely() -> None:
    pool = CallerPool(caller_numbers("RU", 50, random.Random(3)))
    rng = random.Random(4)
    counts = collections.Counter(pool.draw(rng) for _ in range(5000))
    ranked = [n for n, _ in counts.most_common()]
    # Zipf: the pool's first number about 1/H(50) = 22 % of calls, the tenth a tenth of that.
    assert 0.19 < counts[pool.numbers[0]] / 5000 < 0.26
    assert ranked[0] == pool.numbers[0]
    assert counts[pool.numbers[0]] > 5 * counts[pool.numbers[9]]
    assert len(counts) == 50  # nobody left out over many calls
    # Over a short run: repeat callers and one-off ones alike.
    short = collections.Counter(pool.draw(rng) for _ in range(60))
    assert max(short.values()) >= 5 and list(short.values()).count(1) >= 5
    # An explicit list is drawn from as given.
    only = CallerPool(("+79160000001",))
    assert {only.draw(rng) for _ in range(10)} == {"+79160000001"}


def test_the_config_refuses_what_the_options_refuse() -> None:
    assert SimConfig().callers == 50 and SimConfig().caller_ids == ()
    SimConfig(start_hour=0)
    SimConfig(start_hour=23.99)
    for bad in (24, 24.5, -0.5):
        with pytest.raises(ValueError, match="below 24"):
            SimConfig(start_hour=bad)
    for count in (0, 100_001):
        with pytest.raises(ValueError, match="callers"):
            SimConfig(callers=count)


def test_start_hour_24_is_refused_as_the_message_says(cli_env: dict[str, str]) -> None:
    line = one_error(["simulate", "--start-hour", "24"], "invalid_option")
    # The text and the check agree: an hour of the day is below 24 (24 is the next day's 0).
    assert "--start-hour must be at least 0 and below 24, not 24.0" in line


def test_the_options_in_range_are_taken(cli_env: dict[str, str], tmp_path: Path) -> None:
    # Past the options' checks: the next thing it looks at is the credentials file.
    missing = tmp_path / "none.json"
    for args in (["--start-hour", "23.5"], ["--start-hour", "0"], ["--callers", "1"]):
        one_error(["simulate", *args, "--credentials", str(missing)], "invalid_credentials_file")
    for count in ("0", "100001"):
        line = one_error(["simulate", "--callers", count], "invalid_option")
        assert "--callers must be 1 to 100000" in line
