"""The routing section of ``zvonar config``: export, apply, idempotence, dry run, error paths."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import Tenant
from zvonar.configfile import load_yaml
from zvonar.container import Container
from zvonar.core.errors import InvalidInput, ZvonarError
from zvonar.directory.config import apply_directory
from zvonar.routing.config import apply_routing, export_routing

DIRECTORY = {
    "employees": {"100": {"name": "Office"}, "105": {"name": "Head of sales"}},
    "groups": {"Managers": {"members": ["100"]}},
    "numbers": {"+74951234567": {}, "+74957654321": {}},
}
ROUTING: dict[str, Any] = {
    "calendar": {"hours": {"mon": ["09:00-18:00"], "fri": ["09:00-17:00"]}, "country": "RU"},
    "schemes": {
        "Main": {
            "branches": {
                "working": [
                    {"type": "ring", "targets": [{"employee": 100}], "timeout": 20},
                    {"type": "ring", "targets": [{"group": "Managers"}]},
                    {"type": "ring", "targets": [{"employee": "105"}]},
                    {"type": "goto", "scheme": "Shop"},
                ],
                "off": [{"type": "voicemail", "notify": ["boss@example.com"]}],
            }
        },
        "Shop": {
            "branches": {"working": [{"type": "ring", "targets": [{"number": "+74951112233"}]}]},
            "final": {"type": "hangup"},
        },
    },
    "numbers": {"8 495 123-45-67": "Main", "+74957654321": "Shop"},
}


async def test_apply_export_idempotent(container: Container, tenant_a: Tenant) -> None:
    db, acc = container.db, tenant_a.account_id
    await apply_directory(db, acc, DIRECTORY, dry_run=False)
    dry = await apply_routing(db, acc, copy.deepcopy(ROUTING), dry_run=True)
    assert (await export_routing(db, acc))["schemes"] == {}  # the dry run wrote nothing
    changes = await apply_routing(db, acc, copy.deepcopy(ROUTING), dry_run=False)
    assert [c.describe() for c in changes] == [c.describe() for c in dry]
    assert {(c.kind.value, c.object_type, c.key) for c in changes} >= {
        ("create", "scheme", "Main"),
        ("create", "scheme", "Shop"),
        ("update", "number", "+74951234567"),
    }
    assert await apply_routing(db, acc, copy.deepcopy(ROUTING), dry_run=False) == []
    exported = await export_routing(db, acc)
    assert exported["numbers"] == {"+74951234567": "Main", "+74957654321": "Shop"}
    assert exported["calendar"]["hours"]["fri"] == ["09:00-17:00"]
    assert exported["schemes"]["Main"]["branches"]["working"][0]["targets"] == [{"employee": "100"}]
    assert await apply_routing(db, acc, exported, dry_run=False) == []  # export round-trips

    # Dropping Shop and its number: the number is unassigned before the scheme goes.
    smaller = copy.deepcopy(exported)
    del smaller["schemes"]["Shop"]
    smaller["schemes"]["Main"]["branches"]["working"].pop()
    del smaller["numbers"]["+74957654321"]
    changes = await apply_routing(db, acc, smaller, dry_run=False)
    assert [(c.kind.value, c.key) for c in changes] == [
        ("update", "Main"),
        ("update", "+74957654321"),
        ("delete", "Shop"),
    ]
    assert await apply_routing(db, acc, smaller, dry_run=False) == []


async def test_an_untouched_accounts_own_export_applies_as_no_change(
    container: Container, tenant_a: Tenant
) -> None:
    """No calendar was ever set: the export shows the default one, and applying it back
    changes nothing (nor announces a change to the running PBX)."""
    db, acc = container.db, tenant_a.account_id
    await apply_directory(db, acc, DIRECTORY, dry_run=False)
    exported = await export_routing(db, acc)
    assert exported["calendar"]["hours"]["mon"] == ["09:00-18:00"]
    assert await apply_routing(db, acc, exported, dry_run=False) == []
    # A calendar that differs from the default is written, and then round-trips.
    exported["calendar"]["hours"]["sat"] = ["10:00-14:00"]
    (change,) = await apply_routing(db, acc, exported, dry_run=False)
    assert change.object_type == "calendar"
    assert await apply_routing(db, acc, await export_routing(db, acc), dry_run=False) == []


async def test_a_calendar_without_a_country_exports_without_one(
    container: Container, tenant_a: Tenant
) -> None:
    """A calendar that leaves the country to the account is exported so (no ``country``)
    and applies back as no change; naming the account's country is a change (it no longer
    follows the account), and leaving it out again another."""
    db, acc = container.db, tenant_a.account_id
    section = {"calendar": {"hours": {"mon": ["09:00-18:00"], "sat": ["10:00-14:00"]}}}
    (change,) = await apply_routing(db, acc, copy.deepcopy(section), dry_run=False)
    exported = await export_routing(db, acc)
    assert "country" not in exported["calendar"]
    assert await apply_routing(db, acc, exported, dry_run=False) == []
    pinned = copy.deepcopy(exported)
    pinned["calendar"]["country"] = "RU"
    (change,) = await apply_routing(db, acc, pinned, dry_run=False)
    assert [(f.field, f.old, f.new) for f in change.fields] == [("country", None, "RU")]
    assert (await export_routing(db, acc))["calendar"]["country"] == "RU"
    (change,) = await apply_routing(db, acc, exported, dry_run=False)
    assert [f.field for f in change.fields] == ["country"]


@pytest.mark.parametrize(
    ("mutate", "code", "path"),
    [
        (
            lambda r: r["schemes"]["Main"]["branches"]["working"][1]["targets"][0].update(
                group="Nope"
            ),
            "unknown_reference",
            "routing.schemes.Main.branches.working[1].targets[0].group",
        ),
        (
            lambda r: r["schemes"]["Shop"]["branches"]["working"].append(
                {
                    "type": "ivr",
                    "prompt": "greeting",
                    "options": [
                        {"digit": "1", "scheme": "Main"},
                        {"digit": "2", "steps": [{"type": "ring", "targets": [{"group": "No"}]}]},
                    ],
                }
            ),
            "unknown_reference",
            "routing.schemes.Shop.branches.working[1].options[1].steps[0].targets[0].group",
        ),
        (
            lambda r: r["schemes"].pop("Shop") and r["numbers"].pop("+74957654321"),
            "unknown_scheme",
            "routing.schemes.Main.branches.working[3]",
        ),
        (lambda r: r["numbers"].update({"+74950000000": "Main"}), "not_found", None),
        (lambda r: r["numbers"].update({"+74957654321": "Nope"}), "unknown_reference", None),
        (lambda r: r["calendar"].update(hours={"mon": ["x"]}), "invalid_calendar", None),
        (
            lambda r: r["schemes"]["Shop"].update(colour=1),
            "invalid_scheme",
            "routing.schemes.Shop.colour",
        ),
    ],
)
async def test_apply_errors_write_nothing(
    container: Container, tenant_a: Tenant, mutate: Any, code: str, path: str | None
) -> None:
    db, acc = container.db, tenant_a.account_id
    await apply_directory(db, acc, DIRECTORY, dry_run=False)
    bad = copy.deepcopy(ROUTING)
    mutate(bad)
    with pytest.raises(ZvonarError) as err:
        await apply_routing(db, acc, bad, dry_run=False)
    assert err.value.code == code
    if path is not None:
        assert err.value.details["path"] == path
    after = await export_routing(db, acc)
    assert after["schemes"] == {} and after["numbers"] == {}


async def test_unknown_keys_refused(container: Container, tenant_a: Tenant) -> None:
    with pytest.raises(InvalidInput):
        await apply_routing(container.db, tenant_a.account_id, {"flows": {}}, dry_run=False)


async def test_a_directory_section_cannot_take_what_a_scheme_rings(
    container: Container, tenant_a: Tenant
) -> None:
    from zvonar.configfile import apply_config
    from zvonar.directory.config import export_directory

    db, acc = container.db, tenant_a.account_id
    await apply_directory(db, acc, DIRECTORY, dry_run=False)
    await apply_routing(db, acc, copy.deepcopy(ROUTING), dry_run=False)
    renamed = copy.deepcopy(DIRECTORY)
    renamed["groups"] = {"Sales managers": {"members": ["100"]}}
    with pytest.raises(ZvonarError) as err:
        await apply_config(container, acc, {"version": 1, "directory": renamed}, dry_run=False)
    assert err.value.code == "group_in_use" and err.value.details["scheme"] == "Main"
    assert set((await export_directory(db, acc))["groups"]) == {"Managers"}
    # The same rename with the scheme following it in the same document is fine.
    routing = copy.deepcopy(ROUTING)
    routing["schemes"]["Main"]["branches"]["working"][1]["targets"] = [{"group": "Sales managers"}]
    doc = {"version": 1, "directory": renamed, "routing": routing}
    await apply_config(container, acc, doc, dry_run=False)
    assert set((await export_directory(db, acc))["groups"]) == {"Sales managers"}


def test_a_document_nested_past_the_parsers_stack_is_invalid_config() -> None:
    """An audit fed `a: [[[[...` 100,000 deep: the YAML parser's recursion escaped as a
    traceback; it is a refused document like any other."""
    with pytest.raises(InvalidInput) as refused:
        load_yaml("a: " + "[" * 100_000)
    assert refused.value.code == "invalid_config"
