"""An attended transfer made by Linphone (a real softphone): the PBX, linphonec and SIPp peers
in one network namespace (linphonec, like baresip, opens sockets beyond loopback)::

    unshare -n sh -c 'ip link set lo up && \
        exec python -m tests.e2e.transfer_linphone_driver OUT DIR'

A customer (SIPp) calls the number, whose scheme rings agent 101 — linphonec, registered
with digest, answering at once. The agent calls colleague 102 (a SIPp phone that answers),
which puts the customer on hold, and then transfers the customer to 102 with
``transfer 1 --to-call 2``: Linphone's REFER with Replaces (RFC 5589 §7). The customer must
end up talking to 102 (its SIPp hangs up later and 102's SIPp gets our BYE), the agent's
phone must be left with no call, and the journal must say what happened. The report (JSON
at OUT) carries what the test checks.

With a third argument ``outbound`` the agent places both calls: it dials the customer
through the carrier's trunk (a SIPp UAS that answers and hangs up later), then consults 102
and transfers the same way. With ``answered`` the agent answers both: a first customer,
held, then a second one, and ``transfer 1 --to-call 2`` joins the two customers (the first
hangs up later, the second gets our BYE).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.e2e.linphone_kit import start_linphone, until, write_linphonerc
from tests.e2e.schemes_kit import Device, Rig, carrier_talk, carrier_until_bye, sipp_cmd
from tests.sip.peers.harness import finish_sipp, free_port, start_sipp, wait_bound
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    CallStarted,
    CallTransferred,
)
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import EmployeeIn, NumberIn, TrunkIn
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

PBX_PORT = 5060
LINPHONE_PORT = 5091
CARRIER_PORT = 5070
PASSWORD = "linphone-pass-101"
NUMBER = "+74951234577"
CUSTOMER = "+79160000077"
SECOND = "+79160000088"  # the second customer (mode "answered")
SLUG = "att"
REALM = f"{SLUG}.zvonar"


def write_config(path: Path) -> None:
    """linphonec's configuration: 101@att.zvonar through the PBX, UDP only, no sound card."""
    write_linphonerc(
        path,
        sip=(f"sip_port={LINPHONE_PORT}", "sip_tcp_port=0", "sip_tls_port=0"),
        proxy=f"sip:127.0.0.1:{PBX_PORT};transport=udp",
        identity=f'"Agent" <sip:101@{REALM}>',
        username="101",
        password=PASSWORD,
        realm=REALM,
    )


async def main(workdir: Path, mode: str = "inbound") -> dict[str, Any]:
    outbound = mode == "outbound"
    report: dict[str, Any] = {"ok": False}
    container = await sqlite_container(workdir)
    account = await container.accounts.create_account("Att", SLUG)
    p = Principal(account_id=account.id, role=Role.admin)
    ids = {}
    for ext in ("101", "102"):
        made = await container.directory.create_employee(
            p, EmployeeIn(name=f"Emp {ext}", extension=ext, sip_password=PASSWORD)
        )
        ids[ext] = made.view.employee.id
    steps = [{"type": "ring", "targets": [{"employee": "101"}], "timeout": 15}]
    scheme = await container.routing.create_scheme(
        p, "Agent", {"branches": {"working": steps, "off": steps}, "final": {"type": "hangup"}}
    )
    trunk_id = None
    if outbound:
        trunk = await container.directory.create_trunk(
            p,
            TrunkIn(
                name="carrier",
                host="127.0.0.1",
                port=CARRIER_PORT,
                auth_mode=TrunkAuth.ip,
                allowed_sources=["192.0.2.1"],  # calls from it are not tested here
            ),
        )
        trunk_id = trunk.id
    number = await container.directory.add_number(
        p, NumberIn(number=NUMBER, label="Sales", trunk_id=trunk_id)
    )
    await container.routing.assign(p, number.id, scheme.id)
    config = PbxConfig(sip_port=PBX_PORT, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(container, config)
    rc = workdir / "linphonerc"
    write_config(rc)
    log = workdir / "linphone.log"
    phone = await start_linphone(workdir, rc, log)
    devices = {"102": Device("102", ids["102"])}
    rig = Rig(container, rt, REALM, PASSWORD, devices, workdir)
    bus = rig.bus
    sipps: list[tuple[asyncio.subprocess.Process, list[str], str]] = []
    try:
        # In a namespace with only lo, linphonec 5.1 opens no SIP socket at start-up (it
        # finds no network): IPv4 only and the port set at run time make it listen; then
        # the account registers again.
        await asyncio.sleep(0.5)
        phone.send("ipv6 disable")
        await asyncio.sleep(0.5)
        phone.send(f"ports sip {LINPHONE_PORT}")
        await asyncio.sleep(1.5)
        phone.send(f"register sip:101@{REALM} sip:127.0.0.1:{PBX_PORT} {PASSWORD}")
        await until(lambda: rt.lookup(f"sip:101@{REALM}"), 15, "linphonec to register")
        report["registered"] = True
        await rig.register_all()  # 102: a SIPp phone that answers and talks until our BYE
        b_xml = workdir / "b102.xml"
        b_pcap, c_pcap = workdir / "b880.pcap", workdir / "c440.pcap"
        sippkit.write_tone_pcap(b_pcap, 880, 6.0, ssrc=0x880)
        sippkit.write_tone_pcap(c_pcap, 440, 6.0, ssrc=0x440)
        if mode == "answered":  # the second customer calls in after the first, until our BYE
            b_xml.write_text(carrier_until_bye(NUMBER.lstrip("+"), SECOND, pcap=b_pcap))
            b_cmd = sipp_cmd(rig.remote, b_xml, port=free_port(), workdir=workdir, name="b102")
        else:
            b_xml.write_text(sippkit.uas_answer(pcap=b_pcap))
            b_cmd = sipp_cmd("", b_xml, port=devices["102"].port, workdir=workdir, name="b102")
        second_sipp = (b_cmd, "b102")
        if mode != "answered":
            sipps.append((await start_sipp(b_cmd, workdir=workdir), b_cmd, "b102"))
            await wait_bound(devices["102"].port)

        c_xml = workdir / "customer.xml"
        if outbound:  # the customer answers the agent's call, and hangs up later
            c_xml.write_text(sippkit.uas_talk(9000, pcap=c_pcap))
            c_cmd = sipp_cmd("", c_xml, port=CARRIER_PORT, workdir=workdir, name="customer")
            sipps.append((await start_sipp(c_cmd, workdir=workdir), c_cmd, "customer"))
            await wait_bound(CARRIER_PORT)
            phone.send(f"call sip:8{CUSTOMER[2:]}@{REALM}")  # dialled the national way
        else:
            c_xml.write_text(carrier_talk(NUMBER.lstrip("+"), CUSTOMER, talk_ms=9000, pcap=c_pcap))
            c_cmd = sipp_cmd(rig.remote, c_xml, port=free_port(), workdir=workdir, name="customer")
            sipps.append((await start_sipp(c_cmd, workdir=workdir), c_cmd, "customer"))

        def answered() -> list[str]:
            return [e.call_id for e in bus.events if isinstance(e, CallAnswered)]

        what = "the customer to answer" if outbound else "linphonec to answer the customer"
        await until(lambda: len(answered()) == 1, 10, what)
        customer_call = answered()[0]
        # linphonec acts on a command only for a call it sees established: on a loaded
        # machine it may see our 200 after the bus has the answer (then "pause" is ignored).
        await phone.saw("Call 1 with", "connected", what="linphonec to see call 1 connected")
        phone.send("pause 1")  # the customer on hold (a re-INVITE, answered by us)
        await phone.saw("Call 1 with", "paused", what="linphonec to hold call 1")
        if mode == "answered":  # a second customer calls; linphonec answers it too
            b_cmd, name = second_sipp
            sipps.append((await start_sipp(b_cmd, workdir=workdir), b_cmd, name))
            # linphonec's auto-answer takes no second call while one is paused: answer it.
            await until(
                lambda: sum(isinstance(e, CallRinging) for e in bus.events) == 2,
                10,
                "the second customer's call to ring the agent",
            )
            await asyncio.sleep(0.3)
            phone.send("answer 2")
            await until(lambda: len(answered()) == 2, 10, "linphonec to answer the second")
        else:
            phone.send(f"call sip:102@{REALM}")  # the consultation
            await until(lambda: len(answered()) == 2, 10, "102 to answer the agent")
        consult_call = answered()[1]
        await phone.saw("Call 2 with", "connected", what="linphonec to see call 2 connected")
        await asyncio.sleep(0.3)
        phone.send("calls")
        await asyncio.sleep(0.3)
        phone.send("transfer 1 --to-call 2")

        def transferred() -> list[CallTransferred]:
            return [e for e in bus.events if isinstance(e, CallTransferred)]

        await until(lambda: len(transferred()) == 2, 10, "the attended transfer")
        # Audio after the transfer, from the engine's counters over one second: what it sent
        # to 102 (relayed from the customer) and to the customer (relayed from 102).
        call = rt.b2bua.calls[customer_call]
        assert call.winner is not None and call.caller.media_id is not None
        legs = {"to_102": call.winner.media_id, "to_customer": call.caller.media_id}
        before = {k: (await rt.engine.stats(v)).tx_packets for k, v in legs.items()}
        await asyncio.sleep(1.0)
        after = {k: (await rt.engine.stats(v)).tx_packets for k, v in legs.items()}
        report["relayed_after_transfer"] = {k: after[k] - before[k] for k in legs}
        await until(
            lambda: any(isinstance(e, CallEnded) and e.call_id == consult_call for e in bus.events),
            10,
            "the consultation call to end",
        )
        phone.send("calls")
        runs = {name: await finish_sipp(pr, cmd, workdir=workdir, name=name, wait=20)
                for pr, cmd, name in sipps}  # fmt: skip
        sipps.clear()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
        phone.send("calls")
        await asyncio.sleep(0.5)
        rows = {cid: await rig.journal_row(cid) for cid in (customer_call, consult_call)}
        started = {e.call_id: e for e in bus.events if isinstance(e, CallStarted)}
        report.update(
            customer_ok=runs["customer"].stats.successful == 1,
            customer_log=runs["customer"].describe()[-1500:],
            b_ok=runs["b102"].stats.successful == 1,
            b_log=runs["b102"].describe()[-1500:],
            transfers={
                e.call_id: {"kind": e.kind.value, "to": e.to.display, "to_id": str(e.to.target_id)}
                for e in transferred()
            },
            customer_call=customer_call,
            consult_call=consult_call,
            directions={cid: started[cid].direction.value for cid in rows},
            dispositions={
                cid: r.disposition.value if r.disposition else None for cid, r in rows.items()
            },
            customer_transfers=rows[customer_call].transfers,
            ended={e.call_id: e.hangup.value for e in bus.events if isinstance(e, CallEnded)},
            employee_102=str(ids["102"]),
            customer_legs=[
                {
                    "display": leg.target_display,
                    "answered": leg.answered_at is not None,
                    "end": leg.end_reason.value if leg.end_reason else None,
                }
                for leg in (await container.journal.get_call(p, rows[customer_call].id)).legs
            ],
            answered_by={cid: str(r.answered_by) for cid, r in rows.items()},
        )
        report["ok"] = True
    except Exception as exc:  # reported, not raised: the test shows the JSON
        report["error"] = repr(exc)
    finally:
        for pr, _, _ in sipps:
            with contextlib.suppress(ProcessLookupError):
                pr.kill()
            await pr.wait()
        await phone.stop()
        report["linphone"] = phone.lines[-80:]
        await rt.stop()
        await container.aclose()  # the journal's writes land before the db goes
    return report


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[2]), mode=(sys.argv[3:] or ["inbound"])[0]))
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
