"""The transition tables themselves against RFC 3261 Figures 5–8 (and RFC 6026)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from zvonar.sip.transaction_client import (
    INVITE_CLIENT_TABLE,
    NON_INVITE_CLIENT_TABLE,
    ClientEffect,
    ClientInput,
    ClientState,
)
from zvonar.sip.transaction_server import (
    INVITE_SERVER_TABLE,
    NON_INVITE_SERVER_TABLE,
    ServerEffect,
    ServerInput,
    ServerState,
)

CS, CI, CE = ClientState, ClientInput, ClientEffect
SS, SI, SE = ServerState, ServerInput, ServerEffect

TABLES = {
    "invite client": (INVITE_CLIENT_TABLE, CS.CALLING, CS.TERMINATED),
    "non-invite client": (NON_INVITE_CLIENT_TABLE, CS.TRYING, CS.TERMINATED),
    "invite server": (INVITE_SERVER_TABLE, SS.PROCEEDING, SS.TERMINATED),
    "non-invite server": (NON_INVITE_SERVER_TABLE, SS.TRYING, SS.TERMINATED),
}


@pytest.mark.parametrize("name", TABLES)
def test_terminated_is_final_and_every_state_reaches_it(name: str) -> None:
    table, initial, terminated = TABLES[name]
    assert not [k for k in table if k[0] is terminated]
    states = {initial} | {k[0] for k in table} | {v[1] for v in table.values()}
    # Reachability from the initial state over the table's edges.
    reached, frontier = {initial}, [initial]
    while frontier:
        s = frontier.pop()
        for (src, _), (_, dst) in table.items():
            if src is s and dst not in reached:
                reached.add(dst)
                frontier.append(dst)
    assert reached == states
    # And from every state there is a path to Terminated (no trap states).
    for s in states - {terminated}:
        seen, todo = {s}, [s]
        while todo:
            cur = todo.pop()
            for (src, _), (_, dst) in table.items():
                if src is cur and dst not in seen:
                    seen.add(dst)
                    todo.append(dst)
        assert terminated in seen, f"{name}: {s} never terminates"


def test_state_sets_match_the_figures() -> None:
    def states(table: Mapping[tuple[Any, Any], tuple[Any, Any]]) -> set[Any]:
        return {k[0] for k in table} | {v[1] for v in table.values()}

    assert states(INVITE_CLIENT_TABLE) == {
        CS.CALLING, CS.PROCEEDING, CS.COMPLETED, CS.ACCEPTED, CS.TERMINATED,
    }  # fmt: skip
    assert states(NON_INVITE_CLIENT_TABLE) == {
        CS.TRYING, CS.PROCEEDING, CS.COMPLETED, CS.TERMINATED,
    }  # fmt: skip
    assert states(INVITE_SERVER_TABLE) == {
        SS.PROCEEDING, SS.COMPLETED, SS.CONFIRMED, SS.ACCEPTED, SS.TERMINATED,
    }  # fmt: skip
    assert states(NON_INVITE_SERVER_TABLE) == {
        SS.TRYING, SS.PROCEEDING, SS.COMPLETED, SS.TERMINATED,
    }  # fmt: skip


def test_key_rfc_transitions() -> None:
    # Figure 5: 300-699 in Calling → ACK sent, Completed; retransmission re-ACKs.
    effects, nxt = INVITE_CLIENT_TABLE[(CS.CALLING, CI.FAILURE)]
    assert CE.SEND_ACK in effects and CE.PASS_TO_TU in effects and nxt is CS.COMPLETED
    assert INVITE_CLIENT_TABLE[(CS.COMPLETED, CI.FAILURE)] == ((CE.SEND_ACK,), CS.COMPLETED)
    # The 2xx is never ACKed by the transaction.
    for state in (CS.CALLING, CS.PROCEEDING, CS.ACCEPTED):
        assert CE.SEND_ACK not in INVITE_CLIENT_TABLE[(state, CI.SUCCESS)][0]
    # Figure 6: Completed absorbs response retransmissions.
    assert (CS.COMPLETED, CI.SUCCESS) not in NON_INVITE_CLIENT_TABLE
    assert (CS.COMPLETED, CI.FAILURE) not in NON_INVITE_CLIENT_TABLE
    # Figure 7: ACK in Completed → Confirmed; retransmitted INVITE re-sends the response.
    assert INVITE_SERVER_TABLE[(SS.COMPLETED, SI.ACK)][1] is SS.CONFIRMED
    assert SE.RESEND_LAST in INVITE_SERVER_TABLE[(SS.COMPLETED, SI.REQUEST)][0]
    assert (SS.CONFIRMED, SI.REQUEST) not in INVITE_SERVER_TABLE
    # RFC 6026: INVITE retransmissions are absorbed in Accepted.
    assert (SS.ACCEPTED, SI.REQUEST) not in INVITE_SERVER_TABLE
    # Figure 8: Trying discards retransmissions; Completed discards further finals.
    assert (SS.TRYING, SI.REQUEST) not in NON_INVITE_SERVER_TABLE
    assert (SS.COMPLETED, SI.TU_SUCCESS) not in NON_INVITE_SERVER_TABLE
    assert (SS.COMPLETED, SI.TU_FAILURE) not in NON_INVITE_SERVER_TABLE
