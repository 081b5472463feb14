"""A SIPp run of N callers over M agents through one ACD queue: answer waits and outcomes.

The PBX (``start_pbx``: SIP, B2BUA, embedded media, journal, ACD runtime) runs in this
process with SQLite. One number's scheme is ``{type: queue}``; the queue has M members, all
registered with digest. Each agent's phone is a SIPp UAS serving calls in a row: ring for
``--answer-ms``, answer, talk ``--talk-ms``, hang up. Callers are one SIPp UAC placing N calls
at ``--rate`` calls/s; the PBX answers each at once with hold music; a caller waits for the
PBX's BYE (the agent hung up) but hangs up itself ``--patience`` seconds after the PBX
answered (the caller cannot tell when an agent joins: the audio just changes), so a caller
still waiting then is abandoned and one talking then cuts the talk short. Waits come from
the queue facts the ACD stores (entered → answered or abandoned), so they are the ACD's own
figures, not SIPp's; an answered wait includes the agent's ring time.

    .venv/bin/python bench/bench_queue_sipp.py
    .venv/bin/python bench/bench_queue_sipp.py --callers 40 --agents 4 --rate 4 --talk-ms 2000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # the SIPp helpers and scenario blocks of the test suite

from tests.e2e import sippkit  # noqa: E402
from tests.e2e.appkit import sqlite_container  # noqa: E402
from tests.e2e.queues_kit import QueueRig, agent_scenario  # noqa: E402
from tests.e2e.schemes_kit import _INVITE, Device  # noqa: E402
from tests.sip.peers.harness import (  # noqa: E402
    finish_sipp,
    free_port,
    sipp_command,
    sipp_media_port,
    start_sipp,
)

from zvonar.accounts.access import Principal  # noqa: E402
from zvonar.accounts.models import Role  # noqa: E402
from zvonar.acd.facts import FactKind  # noqa: E402
from zvonar.directory.schemas import EmployeeIn, NumberIn  # noqa: E402
from zvonar.pbx.config import PbxConfig  # noqa: E402
from zvonar.pbx.runtime import start_pbx  # noqa: E402

PASSWORD = "bench-queue-42"
NUMBER = "+74957770900"


def patient_caller(dialed: str, patience_ms: int) -> str:
    """Call, be answered by the queue, wait for the PBX's BYE; after ``patience_ms`` in the
    call hang up instead."""
    ok = sippkit.OK_IN_DIALOG.replace("<send>", '<send next="2">', 1)
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="patient queue caller">
  <send retrans="500"><![CDATA[
{_INVITE.format(dialed=dialed, caller="+79160009999")}
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  {sippkit.ack(dialed)}
  <recv request="BYE" timeout="{patience_ms}" ontimeout="1"/>
  {ok}
  <label id="1"/>
  {sippkit.bye(dialed)}
  <recv response="200" crlf="true"/>
  <label id="2"/>
</scenario>
"""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(args: argparse.Namespace, tmp: Path) -> None:
    container = await sqlite_container(tmp)
    account = await container.accounts.create_account("Bench queue", "benchq", time_zone="UTC")
    p = Principal(account_id=account.id, role=Role.admin)
    exts = [str(600 + i) for i in range(args.agents)]
    ids: dict[str, uuid.UUID] = {}
    for ext in exts:
        made = await container.directory.create_employee(
            p, EmployeeIn(name=f"Agent {ext}", extension=ext, sip_password=PASSWORD)
        )
        ids[ext] = made.view.employee.id
    await container.acd_queues.create_queue(
        p,
        {
            "name": "bench",
            "strategy": args.strategy,
            "members": exts,
            "wrapup_seconds": args.wrapup,
            "ring_timeout": 15,
            "max_no_answer": 0,
        },
    )
    scheme = {"branches": {"working": [{"type": "queue", "queue": "bench"}]}}
    row = await container.routing.create_scheme(p, "bench", {**scheme, "final": {"type": "hangup"}})
    num = await container.directory.add_number(p, NumberIn(number=NUMBER, label="bench"))
    await container.routing.assign(p, num.id, row.id)
    config = PbxConfig(sip_port=free_port(), media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(container, config)
    devices = {ext: Device(ext, ids[ext]) for ext in exts}
    rig = QueueRig(container, rt, "benchq.zvonar", PASSWORD, devices, tmp)
    bound = args.callers / args.rate + args.patience + 30
    phones: list[asyncio.subprocess.Process] = []
    try:
        await rig.register_all()
        scenario = agent_scenario("600", answer_ms=args.answer_ms, talk_ms=args.talk_ms)
        phones = await rig.start_phones(
            {e: scenario.replace("sip:600@", f"sip:{e}@") for e in exts},
            calls=args.callers,
            bound=bound,
        )
        xml = tmp / "callers.xml"
        xml.write_text(patient_caller(NUMBER, int(args.patience * 1000)))
        cmd = sipp_command(
            rig.remote,
            workdir=tmp,
            local_port=free_port(),
            calls=args.callers,
            timeout=bound,
            scenario_file=xml,
            name="callers",
            extra=("-r", f"{args.rate:g}", "-l", str(args.callers), "-mp", str(sipp_media_port())),
        )
        since = datetime.now(UTC) - timedelta(seconds=1)
        began = time.perf_counter()
        proc = await start_sipp(cmd, workdir=tmp)
        sipp = await finish_sipp(proc, cmd, workdir=tmp, name="callers", wait=bound + 10)
        await asyncio.wait_for(rt.b2bua.wait_idle(), 30)
        elapsed = time.perf_counter() - began
        await asyncio.sleep(0.5)  # the ACD's history writer is behind the calls
        facts = await container.acd.queue_facts(p, "bench", since, datetime.now(UTC))
        if args.verbose:
            for f in facts:
                print(f"  fact {f.kind.value} {f.call_id} wait={f.wait} agent={f.agent_id}")
    finally:
        await rig.stop_phones(phones)
        await rt.stop()
        await container.db.dispose()
    waits = [f.wait for f in facts if f.kind is FactKind.answered and f.wait is not None]
    gave_up = [f.wait for f in facts if f.kind is FactKind.abandoned and f.wait is not None]
    entered = sum(f.kind is FactKind.entered for f in facts)
    per_agent: dict[str, int] = {}
    for f in facts:
        if f.kind is FactKind.answered and f.agent_id:
            per_agent[f.agent_id] = per_agent.get(f.agent_id, 0) + 1
    by_ext = {str(v): k for k, v in ids.items()}
    print(
        f"{args.callers} callers at {args.rate:g}/s over {args.agents} agents "
        f"({args.strategy}, ring {args.answer_ms} ms, talk {args.talk_ms} ms, "
        f"wrap-up {args.wrapup:g} s, patience {args.patience:g} s): {elapsed:.1f} s"
    )
    print(
        f"  SIPp: {sipp.stats.successful} calls ok, {sipp.stats.failed} failed; "
        f"queue: {entered} entered, {len(waits)} answered, {len(gave_up)} abandoned"
    )
    if waits:
        print(
            f"  answer wait: p50 {pct(waits, 0.5):.2f} s, p95 {pct(waits, 0.95):.2f} s, "
            f"max {max(waits):.2f} s, mean {statistics.fmean(waits):.2f} s"
        )
    if gave_up:
        print(f"  abandoned after: p50 {pct(gave_up, 0.5):.2f} s, max {max(gave_up):.2f} s")
    spread = ", ".join(f"{by_ext.get(a, a)}: {n}" for a, n in sorted(per_agent.items()))
    print(f"  answered per agent: {spread}")
    if sipp.stats.failed:
        print(sipp.describe()[-2000:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--callers", type=int, default=30)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--rate", type=float, default=3.0, help="new callers per second")
    ap.add_argument("--answer-ms", type=int, default=500)
    ap.add_argument("--talk-ms", type=int, default=3000)
    ap.add_argument("--wrapup", type=float, default=0.0)
    ap.add_argument("--patience", type=float, default=20.0, help="seconds before a caller quits")
    ap.add_argument("--strategy", default="round_robin")
    ap.add_argument("--verbose", action="store_true", help="print every queue fact")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as d:
        asyncio.run(run(args, Path(d)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
