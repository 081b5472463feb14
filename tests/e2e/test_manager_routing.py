"""End to end: a customer reaches their own employee (ring targets ``{manager: contact}`` and
``{manager: last}``).

The account's scheme rings the caller's manager first, then employee 101. Contact "Bolts
Ltd" names 101 as its manager through the contacts API's model (``manager_id``); the
customer's call from Bolts' number rings 101's SIPp phone from the first step, and the
journal's path says so. A stranger's call finds no manager: the first step rings nobody and
the second one rings 101 — the path shows the first step passed over.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.pbxkit import call_101
from tests.e2e.schemes_kit import carrier_talk
from tests.e2e.test_early_media import app as app  # the fixture
from tests.pbx.conftest import NUMBER, Seeded, seed_account
from tests.sip.peers.harness import SIPP
from zvonar.calls.events import Disposition
from zvonar.contacts.schemas import ContactIn
from zvonar.container import Container
from zvonar.journal.service import CallFilter

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

BOLTS = "+79161234567"


async def _seed(app: Container) -> Seeded:
    alpha = await seed_account(app, "alpha")
    await app.contacts.create_contact(
        alpha.principal, ContactIn(name="Bolts Ltd", numbers=[BOLTS], manager_id=alpha.employee_id)
    )
    scheme = await app.routing.create_scheme(
        alpha.principal,
        "Own manager first",
        {
            "branches": {
                "working": [
                    {"type": "ring", "targets": [{"manager": "contact"}], "timeout": 10},
                    {"type": "ring", "targets": [{"employee": "101"}], "timeout": 10},
                ]
            },
            "final": {"type": "hangup"},
        },
    )
    await app.routing.assign(alpha.principal, alpha.number_id, scheme.id)
    return alpha


@pytest.mark.parametrize(
    ("caller", "first_step"),
    [(BOLTS, "[answered"), ("+79160000001", "[nobody available]")],
)
async def test_the_callers_manager_is_rung_first(
    app: Container, tmp_path: Path, caller: str, first_step: str
) -> None:
    alpha = await _seed(app)
    _rt, runs = await call_101(
        app,
        tmp_path,
        alpha,
        phone=sippkit.uas_answer(),
        carrier=carrier_talk(NUMBER.lstrip("+"), caller, talk_ms=300),
    )
    for name in ("carrier", "phone"):
        assert runs[name].stats.successful == 1, runs[name].describe()
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.disposition is Disposition.answered and call.answered_by == alpha.employee_id
    hops = call.scheme_path
    manager_hop = next(h for h in hops if h.startswith("ring contact manager"))
    assert first_step in manager_hop, hops
    # the stranger's call went on to the second step; Bolts' never needed it
    assert any(h.startswith("ring 101") for h in hops) is (caller != BOLTS), hops


async def test_a_customer_calling_again_reaches_who_answered_them(
    app: Container, tmp_path: Path
) -> None:
    """``{manager: last}`` through the real journal: the first call finds nobody and goes on
    to 101, who answers; the same number's next call reaches 101 from the first step."""
    alpha = await seed_account(app, "alpha")
    scheme = await app.routing.create_scheme(
        alpha.principal,
        "Last one first",
        {
            "branches": {
                "working": [
                    {"type": "ring", "targets": [{"manager": "last"}], "timeout": 10},
                    {"type": "ring", "targets": [{"employee": "101"}], "timeout": 10},
                ]
            },
            "final": {"type": "hangup"},
        },
    )
    await app.routing.assign(alpha.principal, alpha.number_id, scheme.id)
    paths = []
    for attempt in ("first", "again"):
        workdir = tmp_path / attempt
        workdir.mkdir()
        _rt, runs = await call_101(
            app,
            workdir,
            alpha,
            phone=sippkit.uas_answer(),
            carrier=carrier_talk(NUMBER.lstrip("+"), "+79160000005", talk_ms=300),
        )
        for name in ("carrier", "phone"):
            assert runs[name].stats.successful == 1, runs[name].describe()
        calls = (await app.journal.list_calls(alpha.principal, CallFilter())).items
        paths.append(calls[0].scheme_path)  # newest first
    first, again = (next(h for h in p if h.startswith("ring last manager")) for p in paths)
    assert "[nobody available]" in first and "[answered" in again, paths
