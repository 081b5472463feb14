"""The account's outbound settings in ``zvonar config``: exported with their safe defaults,
applied and validated, and an export applies onto itself with no changes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Tenant
from zvonar.configfile import apply_config, dump_yaml, export_config, load_yaml
from zvonar.container import Container
from zvonar.core.errors import InvalidInput

FIELDS = ("international_calls", "outbound_max_concurrent", "outbound_max_per_hour")


async def _round_trip(container: Container, tenant: Tenant) -> dict[str, Any]:
    doc = load_yaml(dump_yaml(await export_config(container, tenant.account_id)))
    assert await apply_config(container, tenant.account_id, doc, dry_run=False) == []
    return doc


async def test_export_apply_round_trips(container: Container, tenant_a: Tenant) -> None:
    doc = await _round_trip(container, tenant_a)
    assert {f: doc["account"][f] for f in FIELDS} == {
        "international_calls": False,
        "outbound_max_concurrent": 10,
        "outbound_max_per_hour": 200,
    }
    doc["account"].update(
        international_calls=True, outbound_max_concurrent=3, outbound_max_per_hour=50
    )
    changes = await apply_config(container, tenant_a.account_id, doc, dry_run=False)
    assert [c.describe() for c in changes] == [
        "~ account.international_calls: False -> True",
        "~ account.outbound_max_concurrent: 10 -> 3",
        "~ account.outbound_max_per_hour: 200 -> 50",
    ]
    again = await _round_trip(container, tenant_a)
    assert [again["account"][f] for f in FIELDS] == [True, 3, 50]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("international_calls", 1),
        ("international_calls", "yes"),
        ("outbound_max_concurrent", 0),
        ("outbound_max_concurrent", 1001),
        ("outbound_max_concurrent", True),
        ("outbound_max_concurrent", "5"),
        ("outbound_max_per_hour", 0),
        ("outbound_max_per_hour", 100_001),
        ("outbound_max_per_hour", 2.5),
    ],
)
async def test_bad_values_are_refused(
    container: Container, tenant_a: Tenant, field: str, value: object
) -> None:
    doc = {"version": 1, "account": {field: value}}
    with pytest.raises(InvalidInput) as err:
        await apply_config(container, tenant_a.account_id, doc, dry_run=False)
    assert err.value.code == "invalid_config" and f"account.{field}" in str(err.value)


async def test_the_limits_themselves_are_accepted(container: Container, tenant_a: Tenant) -> None:
    for concurrent, hourly in ((1, 1), (1000, 100_000)):
        doc = {
            "version": 1,
            "account": {"outbound_max_concurrent": concurrent, "outbound_max_per_hour": hourly},
        }
        assert await apply_config(container, tenant_a.account_id, doc, dry_run=False)
