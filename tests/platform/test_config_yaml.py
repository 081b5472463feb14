"""The configuration file as YAML: a key given twice is refused (PyYAML lets the last win,
which silently dropped a scheme or a day's hours), merge keys still work."""

from __future__ import annotations

import pytest

from zvonar.configfile import load_yaml
from zvonar.core.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("routing:\n  schemes:\n    Main: {}\n    Main: {}\n", 4, "'Main'"),
        (
            "routing:\n  calendar: {hours: {mon: ['09:00-18:00'], mon: ['10:00-11:00']}}\n",
            2,
            "'mon'",
        ),
        ("version: 1\nversion: 1\n", 2, "'version'"),
    ],
)
def test_a_key_given_twice_is_refused_with_its_line(text: str, line: int, key: str) -> None:
    with pytest.raises(InvalidInput) as err:
        load_yaml(text)
    assert err.value.code == "invalid_config"
    assert str(err.value) == f"line {line}: {key} is given twice"


def test_merge_keys_and_repeated_keys_in_different_mappings_are_fine() -> None:
    doc = load_yaml(
        "routing:\n"
        "  defaults: &ring {type: ring, timeout: 20}\n"
        "  a: {<<: *ring, timeout: 10}\n"
        "  b: {<<: *ring}\n"
    )
    assert doc["routing"]["a"] == {"type": "ring", "timeout": 10}
    assert doc["routing"]["b"] == {"type": "ring", "timeout": 20}
