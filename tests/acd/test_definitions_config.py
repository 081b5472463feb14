"""The ``queues`` section of ``zvonar config``: round trip, idempotence, dry run, one unit of
work with the other sections, references from schemes, error paths."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import Tenant
from zvonar.acd.config import apply_queues, export_queues
from zvonar.acd.queues import QueueDefined, QueueDeleted
from zvonar.configfile import apply_config, dump_yaml, export_config, load_yaml
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.core.errors import ZvonarError

DOC: dict[str, Any] = {
    "version": 1,
    "directory": {
        "employees": {"101": {"name": "Ann"}, "102": {"name": "Boris"}, "201": {"name": "Vera"}},
    },
    "queues": [
        {
            "name": "sales",
            "title": "Sales",
            "strategy": "in_turn",
            "members": [101, "102", {"extension": "201", "level": 2}],
            "escalation": {2: 30},
            "max_wait": 240,
            "announce_prompt": "queue_announce",
            "announce_interval": 60,
            "announce_position": True,
            "callback_digit": "5",
        },
        {"name": "care", "members": ["201"], "vip_tags": ["VIP", "gold"]},
    ],
    "routing": {
        "schemes": {
            "Main": {
                "branches": {
                    "working": [
                        {
                            "type": "queue",
                            "queue": "sales",
                            "timeout": 300,
                            "overflow": [{"type": "queue", "queue": "care"}],
                        }
                    ]
                }
            }
        }
    },
}


def _doc(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    doc.update(changes)
    return doc


async def test_apply_export_round_trip(
    container: Container, tenant_a: Tenant, bus: RecordingBus
) -> None:
    acc = tenant_a.account_id
    dry = await apply_config(container, acc, _doc(), dry_run=True)
    assert await export_queues(container.db, acc) == []  # the dry run wrote nothing
    assert bus.of_type(QueueDefined) == []  # ... and told nobody
    changes = await apply_config(container, acc, _doc(), dry_run=False)
    assert [c.describe() for c in changes] == [c.describe() for c in dry]
    described = [c.describe() for c in changes]
    assert "+ queue sales" in described and "+ queue care" in described
    assert {e.name for e in bus.of_type(QueueDefined)} == {"sales", "care"}
    assert await apply_config(container, acc, _doc(), dry_run=False) == []

    exported = await export_config(container, acc)
    assert [q["name"] for q in exported["queues"]] == ["care", "sales"]
    sales = exported["queues"][1]
    assert sales["members"][0] == {"extension": "101", "level": 1}
    assert sales["escalation"] == {"2": 30}
    assert exported["queues"][0]["vip_tags"] == ["vip", "gold"]
    # Through YAML text and back: nothing to do for queues (the first apply of an exported
    # default calendar stores it, a routing matter).
    again = load_yaml(dump_yaml(exported))
    changes = await apply_config(container, acc, again, dry_run=False)
    assert [c for c in changes if c.object_type != "calendar"] == []
    assert await apply_config(container, acc, again, dry_run=False) == []

    # An update reports the fields; a queue left out of the list is deleted.
    smaller = copy.deepcopy(again)
    smaller["queues"] = [q for q in smaller["queues"] if q["name"] == "sales"]
    smaller["queues"][0]["max_wait"] = 120
    smaller["routing"]["schemes"]["Main"]["branches"]["working"][0].pop("overflow")
    changes = await apply_config(container, acc, smaller, dry_run=False)
    assert [c.describe() for c in changes if c.object_type == "queue"] == [
        "~ queue sales: max_wait: 240 -> 120",
        "- queue care",
    ]
    assert bus.of_type(QueueDeleted)[-1].name == "care"
    assert await apply_config(container, acc, smaller, dry_run=False) == []


async def test_documents_without_queues_leave_them_alone(
    container: Container, tenant_a: Tenant
) -> None:
    acc = tenant_a.account_id
    await apply_config(container, acc, _doc(), dry_run=False)
    doc = _doc()
    del doc["queues"]
    assert await apply_config(container, acc, doc, dry_run=False) == []
    assert len(await export_queues(container.db, acc)) == 2
    # An empty section is the complete (empty) set — refused while a scheme still uses them.
    with pytest.raises(ZvonarError) as info:
        await apply_config(container, acc, _doc(queues=[]), dry_run=False)
    assert info.value.code == "unknown_reference"
    assert info.value.details["path"] == "routing.schemes.Main.branches.working[0].queue"
    assert len(await export_queues(container.db, acc)) == 2  # rolled back whole


def _bad_member(doc: dict[str, Any]) -> None:
    doc["queues"][1]["members"] = ["201", "999"]


def _bad_field(doc: dict[str, Any]) -> None:
    doc["queues"][0]["ring_timeout"] = -5


def _twice(doc: dict[str, Any]) -> None:
    doc["queues"].append({"name": "sales"})


def _not_a_list(doc: dict[str, Any]) -> None:
    doc["queues"] = {"sales": {}}


def _unknown_queue(doc: dict[str, Any]) -> None:
    doc["routing"]["schemes"]["Main"]["branches"]["working"][0]["overflow"][0]["queue"] = "x"


def _member_left_directory(doc: dict[str, Any]) -> None:
    del doc["directory"]["employees"]["201"]


@pytest.mark.parametrize(
    ("mutate", "code", "path"),
    [
        (_bad_member, "unknown_reference", "queues[1].members[1].extension"),
        (_bad_field, "invalid_queue", "queues[0].ring_timeout"),
        (_twice, "queue_name_taken", "queues[2].name"),
        (_not_a_list, "invalid_config", "queues"),
        (
            _unknown_queue,
            "unknown_reference",
            "routing.schemes.Main.branches.working[0].overflow[0].queue",
        ),
        (_member_left_directory, "unknown_reference", "queues[0].members[2].extension"),
    ],
)
async def test_bad_documents_change_nothing(
    container: Container, tenant_a: Tenant, mutate: Any, code: str, path: str
) -> None:
    acc = tenant_a.account_id
    doc = _doc()
    mutate(doc)
    with pytest.raises(ZvonarError) as info:
        await apply_config(container, acc, doc, dry_run=False)
    assert (info.value.code, info.value.details.get("path")) == (code, path)
    exported = await export_config(container, acc)
    assert exported["queues"] == [] and exported["directory"]["employees"] == {}


async def test_section_alone(container: Container, tenant_a: Tenant) -> None:
    acc = tenant_a.account_id
    employees = {"employees": {"101": {"name": "Ann"}}}
    await apply_config(container, acc, {"directory": employees}, dry_run=False)
    section = [{"name": "solo", "members": ["101"]}]
    assert [c.key for c in await apply_queues(container.db, acc, section, dry_run=True)] == ["solo"]
    assert await export_queues(container.db, acc) == []
    await apply_queues(container.db, acc, section, dry_run=False)
    assert await apply_queues(container.db, acc, section, dry_run=False) == []
    assert await export_queues(container.db, acc) == [
        {"name": "solo", "strategy": "round_robin", "members": [{"extension": "101", "level": 1}]}
    ]
