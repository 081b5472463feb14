"""An attended transfer made by Linphone (linphonec, a real softphone): the agent consults a
colleague and joins the customer to them (REFER with Replaces, RFC 5589 §7). Linphone opens
sockets beyond loopback, so the PBX, linphonec and the SIPp peers run together in
`unshare -n` (see transfer_linphone_driver.py), which writes a report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.linphone_kit import NETNS_PEERS
from tests.sip.peers.harness import run_in_netns

pytestmark = NETNS_PEERS


@pytest.mark.parametrize("first", ["inbound", "outbound"])
async def test_linphone_transfers_the_customer_to_the_colleague_it_consulted(
    tmp_path: Path, first: str
) -> None:
    """``first``: the customer called in (the agent answered), or the agent called the
    customer (both calls placed by the agent: the customer's call hands the customer on)."""
    args = ("outbound",) if first == "outbound" else ()
    out, context = await run_in_netns(
        "tests.e2e.transfer_linphone_driver", tmp_path, wait=90, args=args
    )
    assert out.exists(), context[-4000:]
    report = json.loads(out.read_text())
    assert report["ok"], (report, context[-4000:])
    assert report["registered"], report  # linphonec registered with digest as 101
    # The customer talked to 102 after the transfer, both ways, until it hung up; 102 got
    # our BYE then; Linphone was left with no call (it showed "No active call").
    assert report["customer_ok"] and report["b_ok"], report
    assert min(report["relayed_after_transfer"].values()) >= 30, report
    assert any("No active call" in line for line in report["linphone"][-8:]), report["linphone"]
    customer, consult = report["customer_call"], report["consult_call"]
    assert report["directions"] == {customer: first, consult: "internal"}, report
    assert report["dispositions"] == {customer: "answered", consult: "answered"}, report
    (moved,) = report["customer_transfers"]
    assert moved["kind"] == "attended" and moved["to_id"] == report["employee_102"], moved
    assert report["transfers"][consult]["to"] == "+79160000077", report
    legs = report["customer_legs"]
    assert [(leg["answered"], leg["end"]) for leg in legs] == [
        (True, "completed"),  # the agent who answered (inbound) or the customer (outbound)
        (True, "completed"),  # 102, who took the customer over
    ], legs
    assert report["answered_by"][consult] == report["employee_102"], report


async def test_linphone_joins_two_customers_it_answered(tmp_path: Path) -> None:
    """A receptionist's transfer: linphonec answers a customer, holds them, answers a second
    customer and transfers one to the other — the two customers talk, the agent is free."""
    out, context = await run_in_netns(
        "tests.e2e.transfer_linphone_driver", tmp_path, wait=90, args=("answered",)
    )
    assert out.exists(), context[-4000:]
    report = json.loads(out.read_text())
    assert report["ok"], (report, context[-4000:])
    # Both customers talked to each other after the transfer until the first hung up; the
    # second got our BYE then; Linphone was left with no call.
    assert report["customer_ok"] and report["b_ok"], report
    assert min(report["relayed_after_transfer"].values()) >= 30, report
    assert any("No active call" in line for line in report["linphone"][-8:]), report["linphone"]
    first, second = report["customer_call"], report["consult_call"]
    assert report["directions"] == {first: "inbound", second: "inbound"}, report
    assert report["dispositions"] == {first: "answered", second: "answered"}, report
    (moved,) = report["customer_transfers"]
    assert moved["kind"] == "attended" and moved["to_display"] == "+79160000088", moved
    assert report["transfers"][second]["to"] == "+79160000077", report
    legs = report["customer_legs"]
    assert [(leg["display"], leg["answered"], leg["end"]) for leg in legs][1:] == [
        ("+79160000088", True, "completed"),  # the second customer, adopted
    ], legs
    assert (legs[0]["answered"], legs[0]["end"]) == (True, "completed"), legs  # the agent
