"""End to end: forwarding schemes through the real PBX, SIPp phones and a SIPp carrier.

One PBX and one account for the module (see ``schemes_kit``): every employee has a SIPp phone
registered with digest; each test dials a number whose scheme exercises one feature, tells the
phones how to behave (answer, busy, ring until cancelled) and checks who rang in which wave, who
answered, and the journal row. Ring timeouts are 1-2 s so the whole file stays short (the
per-target timeouts' test measures 4 s and 8 s, by the phones' own clocks).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.e2e.schemes_kit import Caller, Device, Phone, Result, Rig, carrier_talk, exts, sipp_cmd
from tests.sip.peers.harness import SIPP, finish_sipp, free_port, start_sipp, wait_bound
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.calls.events import CallAnswered, Disposition, HangupSide, LegEndReason
from zvonar.configfile import apply_config
from zvonar.contacts.schemas import ContactIn
from zvonar.directory.models import GroupStrategy
from zvonar.directory.schemas import EmployeeIn, GroupIn, MemberIn, NumberIn
from zvonar.media.goertzel import goertzel_power
from zvonar.media.wav import parse_wav
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
    pytest.mark.asyncio(loop_scope="module"),
]

PASSWORD = "schemes-pass-42"
SLUG = "schemes"
ZONE = "Europe/Moscow"
WORKING = datetime(2024, 3, 6, 7, 0, tzinfo=UTC)  # Wednesday 10:00 in Moscow
OFF_HOURS = datetime(2024, 3, 6, 19, 0, tzinfo=UTC)  # Wednesday 22:00 in Moscow
SUPPLIER = "+79161110001"
STRANGER = "+79161110002"
EXTS = (
    *("101", "102", "103", "104", "111", "112", "113", "121", "122", "123", "131"),
    *("201", "211", "212", "221", "231", "301", "311", "401", "402"),
)
GROUPS: dict[str, tuple[GroupStrategy, list[tuple[str, int]]]] = {
    "All": (GroupStrategy.all_at_once, [("101", 1), ("102", 1), ("103", 1)]),
    "Turn": (GroupStrategy.in_turn, [("101", 1), ("102", 1), ("103", 1)]),
    "Robin": (GroupStrategy.round_robin, [("101", 1), ("102", 1), ("103", 1)]),
    "Recent": (GroupStrategy.least_recent, [("111", 1), ("112", 1), ("113", 1)]),
    "Fewest": (GroupStrategy.fewest_calls, [("121", 1), ("122", 1), ("123", 1)]),
    "Dice": (GroupStrategy.random, [("101", 1), ("102", 1), ("103", 1)]),
    "Weighted": (GroupStrategy.weighted_random, [("101", 1), ("102", 1), ("103", 100)]),
    "Managers": (GroupStrategy.all_at_once, [("211", 1), ("212", 1)]),
    "Production": (GroupStrategy.all_at_once, [("301", 1)]),
    "Sales": (GroupStrategy.all_at_once, [("311", 1)]),
    "Support": (GroupStrategy.all_at_once, [("401", 1)]),
}


def _group(name: str, **step: Any) -> list[dict[str, Any]]:
    # Two seconds a member: on a loaded machine a SIPp phone once took over one to send its
    # 486, and the member "rang out" instead of being busy.
    return [{"type": "ring", "targets": [{"group": name}], "target_timeout": 2, **step}]


def _emp(ext: str, timeout: int = 1, label: str | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"type": "ring", "targets": [{"employee": ext}], "timeout": timeout}
    return {**step, "label": label} if label else step


class RouteServer:
    """A tiny HTTP/1.1 back office on 127.0.0.1: replies per ``mode`` to every POST."""

    def __init__(self) -> None:
        self.mode = "group"
        self.group_id = ""
        self.requests: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            self.requests.append(json.loads(await reader.readexactly(length)))
            if self.mode == "slow":
                await asyncio.sleep(5)  # well past the route's 1 s timeout
            body = (
                json.dumps({"group": self.group_id}).encode()
                if self.mode == "group"
                else b"<html>surely not a route</html>"
            )
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self.server is not None:
            self.server.close()


class Env:
    def __init__(self, rig: Rig, numbers: dict[str, str], route: RouteServer) -> None:
        self.rig, self.numbers, self.route = rig, numbers, route


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("schemes")
    container = await sqlite_container(tmp)
    route = RouteServer()
    await route.start()
    account = await container.accounts.create_account("Schemes", SLUG, time_zone=ZONE)
    p = Principal(account_id=account.id, role=Role.admin)
    # The back office below listens on loopback: the account allows private route targets
    # (a self-hosted install's own network), as an admin would in the config file.
    doc = {"version": 1, "account": {"http_route_private": True}}
    await apply_config(container, account.id, doc, dry_run=False)
    ids = {}
    for ext in EXTS:
        made = await container.directory.create_employee(
            p, EmployeeIn(name=f"Emp {ext}", extension=ext, sip_password=PASSWORD)
        )
        ids[ext] = made.view.employee.id
    group_ids = {}
    for name, (strategy, members) in GROUPS.items():
        view = await container.directory.create_group(
            p,
            GroupIn(
                name=name,
                strategy=strategy,
                members=[MemberIn(employee_id=ids[e], weight=w) for e, w in members],
            ),
        )
        group_ids[name] = view.group.id
    route.group_id = str(group_ids["Support"])
    await container.contacts.create_contact(
        p, ContactIn(name="Bolts Ltd", tags=["supplier"], numbers=[SUPPLIER])
    )
    url = f"http://127.0.0.1:{route.port}/route"
    schemes: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = {
        "all": (_group("All", timeout=2), None),
        "turn": (_group("Turn"), None),
        "robin": (_group("Robin"), None),
        "recent": (_group("Recent"), None),
        "fewest": (_group("Fewest"), None),
        "dice": (_group("Dice"), None),
        "weighted": (_group("Weighted"), None),
        "schedule": ([_emp("131", 2)], [{"type": "voicemail"}]),
        "chain": (
            [
                _emp("201", label="Office"),
                {"type": "ring", "targets": [{"group": "Managers"}], "timeout": 1},
                _emp("221", label="Head of sales"),
                _emp("231", 2, label="Shop"),
            ],
            None,
        ),
        "rule": (
            [
                {
                    "type": "caller_rule",
                    "rules": [{"tags": ["supplier"], "steps": _group("Production")}],
                    "default": _group("Sales"),
                }
            ],
            None,
        ),
        "http": (
            [{"type": "http_route", "url": url, "timeout": 1, "fallback": [_emp("402", 2)]}],
            None,
        ),
        "own_timeouts": (
            [
                {
                    "type": "ring",
                    "targets": [
                        {"employee": "101", "timeout": 4},
                        {"employee": "104", "timeout": 12},
                    ],
                    "timeout": 8,
                }
            ],
            None,
        ),
    }
    numbers = {}
    for i, (name, (working, off)) in enumerate(schemes.items()):
        branches = {"working": working, **({"off": off} if off else {})}
        row = await container.routing.create_scheme(
            p, name, {"branches": branches, "final": {"type": "hangup"}}
        )
        number = f"+749512345{i:02d}"
        num = await container.directory.add_number(p, NumberIn(number=number, label=name))
        await container.routing.assign(p, num.id, row.id)
        numbers[name] = number
    # SIPp 3.6 answers only the first challenge and knows only MD5 of the digest algorithms.
    config = PbxConfig(sip_port=free_port(), media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(container, config)
    rt.resolver.clock = lambda: WORKING
    devices = {ext: Device(ext, ids[ext]) for ext in EXTS}
    rig = Rig(container, rt, f"{SLUG}.zvonar", PASSWORD, devices, tmp)
    try:
        await rig.register_all()
        yield Env(rig, numbers, route)
    finally:
        await rt.stop()
        await route.close()
        await container.aclose()  # the journal's writes land before the db goes


@pytest.fixture
def rig(env: Env) -> Rig:
    env.rig.rt.resolver.clock = lambda: WORKING
    return env.rig


def _answered(r: Result, ext: str) -> None:
    assert r.caller_ok, r.caller_log
    assert r.answered == ext, (r.rings, r.phones_log)
    assert r.ended.disposition is Disposition.answered
    assert r.row.disposition is Disposition.answered
    assert r.row.answered_by == r.employee_id(ext)


# --- strategies ---------------------------------------------------------------------------------


async def _all_at_once(env: Env, tmp: Path) -> Result:
    a440, b1000 = tmp / "a440.pcap", tmp / "b1000.pcap"
    sippkit.write_tone_pcap(a440, 440, 1.0, ssrc=0x1111)
    sippkit.write_tone_pcap(b1000, 1000, 1.0, ssrc=0x2222)
    phones = {"101": Phone.ring, "102": Phone.answer, "103": Phone.ring}
    return await env.rig.call(
        env.numbers["all"], phones, talk_ms=1500, caller_pcap=a440, phone_pcap=b1000
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def all_at_once(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Result:
    return await _all_at_once(env, tmp_path_factory.mktemp("tones"))


async def test_all_at_once_rings_everybody_in_one_wave(all_at_once: Result) -> None:
    r = all_at_once
    _answered(r, "102")
    assert r.waves == [["101", "102", "103"]]
    assert sorted(exts(r.rings, LegEndReason.cancelled)) == ["101", "103"]


def _power(samples: list[float], freq: float) -> float:
    return goertzel_power(samples, 2 * math.cos(2 * math.pi * freq / 8000))


async def test_recording_holds_both_parties_on_two_channels(env: Env, all_at_once: Result) -> None:
    stored = all_at_once.row.recording_path
    assert stored is not None
    wav = parse_wav((env.rig.container.settings.data_dir / stored).read_bytes())
    assert (wav.channels, wav.sample_rate) == (2, 8000)
    samples = list(wav.samples())
    left, right = samples[0::2], samples[1::2]
    # The caller's 440 Hz on one channel, the answering phone's 1000 Hz on the other.
    for channel, want, other in ((left, 440.0, 1000.0), (right, 1000.0, 440.0)):
        assert sum(abs(v) > 0.05 for v in channel) > 4000, "a channel holds < 0.5 s of audio"
        assert _power(channel, want) > 20 * _power(channel, other)


async def test_in_turn_rings_members_one_after_another(rig: Rig, env: Env) -> None:
    phones = {"101": Phone.ring, "102": Phone.busy, "103": Phone.answer}
    r = await rig.call(env.numbers["turn"], phones)
    _answered(r, "103")
    assert r.waves == [["101"], ["102"], ["103"]]
    assert [(x.ext, x.end) for x in r.rings] == [
        ("101", LegEndReason.no_answer),
        ("102", LegEndReason.busy),
        ("103", LegEndReason.completed),
    ]


async def test_in_turn_passes_over_a_member_on_a_call(rig: Rig, env: Env) -> None:
    """101 is talking (a first call it answered): the next call's in-turn ring starts with
    102 instead of ringing 101 into its conversation for a member timeout (calls/talking.py)."""
    workdir = rig.workdir
    (workdir / "busy101.xml").write_text(sippkit.uas_answer())
    phone_cmd = sipp_cmd("", workdir / "busy101.xml", port=rig.devices["101"].port,
                         workdir=workdir, name="busy101")  # fmt: skip
    phone = await start_sipp(phone_cmd, workdir=workdir)
    await wait_bound(rig.devices["101"].port)
    first_xml = workdir / "first.xml"
    first_xml.write_text(carrier_talk(env.numbers["turn"], "+79160000009", talk_ms=4000))
    first_cmd = sipp_cmd(rig.remote, first_xml, port=free_port(), workdir=workdir, name="first")
    mark = len(rig.bus.events)
    first = await start_sipp(first_cmd, workdir=workdir)
    try:
        for _ in range(100):  # 101 answers the first call
            if any(isinstance(e, CallAnswered) for e in rig.bus.events[mark:]):
                break
            await asyncio.sleep(0.05)
        second = await rig.call(env.numbers["turn"], {"102": Phone.answer})
    finally:
        done = await finish_sipp(first, first_cmd, workdir=workdir, name="first", wait=15)
        await finish_sipp(phone, phone_cmd, workdir=workdir, name="busy101", wait=15)
    assert done.stats.successful == 1, done.describe()
    _answered(second, "102")
    assert second.order == ["102"]  # 101 was never rung


async def test_round_robin_remembers_across_calls(rig: Rig, env: Env) -> None:
    everyone = {"101": Phone.answer, "102": Phone.answer, "103": Phone.answer}
    first = await rig.call(env.numbers["robin"], everyone)
    second = await rig.call(env.numbers["robin"], everyone)
    _answered(first, "101")
    _answered(second, "102")  # the next call starts one member further on
    assert first.order == ["101"] and second.order == ["102"]


async def test_least_recent_rings_the_longest_idle_first(rig: Rig, env: Env) -> None:
    first = await rig.call(env.numbers["recent"], {"111": Phone.answer})
    _answered(first, "111")  # nobody has taken a call yet: the listed order
    phones = {"111": Phone.answer, "112": Phone.ring, "113": Phone.answer}
    second = await rig.call(env.numbers["recent"], phones)
    _answered(second, "113")
    assert second.order == ["112", "113"]  # 111 just had a call: last in line


async def test_fewest_calls_rings_who_took_fewest_today(rig: Rig, env: Env) -> None:
    phones = {"121": Phone.ring, "122": Phone.answer, "123": Phone.answer}
    first = await rig.call(env.numbers["fewest"], phones)
    _answered(first, "122")
    assert first.order == ["121", "122"]  # all at zero: the listed order
    second = await rig.call(env.numbers["fewest"], phones)
    _answered(second, "123")
    # 121 (rang, never answered) and 123 have no call today, 122 has one: last in line.
    assert second.order == ["121", "123"]


async def test_random_order_follows_the_seed(rig: Rig, env: Env) -> None:
    seed = 7
    expected = ["101", "102", "103"]
    random.Random(seed).shuffle(expected)
    assert expected != ["101", "102", "103"]  # a seed that does not look like "in turn"
    rig.rt.resolver.rng = random.Random(seed)
    phones = dict.fromkeys(("101", "102", "103"), Phone.ring)
    r = await rig.call(env.numbers["dice"], phones, expect=Caller.rejected)
    assert r.caller_ok, r.caller_log
    assert r.order == expected and r.answered is None
    assert exts(r.rings, LegEndReason.no_answer) == expected
    assert r.row.disposition is Disposition.missed


async def test_weighted_random_prefers_the_heavy_member(rig: Rig, env: Env) -> None:
    rig.rt.resolver.rng = random.Random(11)
    phones = {"101": Phone.answer, "102": Phone.answer, "103": Phone.answer}
    r = await rig.call(env.numbers["weighted"], phones)
    _answered(r, "103")  # weight 100 of 102
    assert r.order == ["103"]


def _rang(workdir: Path, ext: str) -> float:
    """Seconds from the INVITE to the CANCEL that reached ``ext``'s SIPp phone in its latest
    ringing run, by the phone's own message log (SIPp stamps every message it receives)."""
    log = sorted(workdir.glob(f"*-ring{ext}_messages.log"))[-1].read_text()
    seen: dict[str, datetime] = {}
    for block in log.split("-" * 47 + " ")[1:]:
        stamp, how, _, first = [*block.split("\n"), "", "", ""][:4]
        method = first.split(" ", 1)[0]
        if "received" in how and method in ("INVITE", "CANCEL"):
            seen.setdefault(method, datetime.fromisoformat(stamp.strip()))
    return (seen["CANCEL"] - seen["INVITE"]).total_seconds()


async def test_a_target_rung_with_others_stops_at_its_own_timeout(rig: Rig, env: Env) -> None:
    """101 for 4 s and 104 for 12 s, all at once, in a step of 8 s: 101's phone gets its
    CANCEL at 4 s while 104 rings on, and 104's at 8 s (the step caps its own 12 s): the
    step is over at 8 s, both legs unanswered."""
    phones = {"101": Phone.ring, "104": Phone.ring}
    r = await rig.call(env.numbers["own_timeouts"], phones, expect=Caller.rejected)
    assert r.caller_ok, r.caller_log
    assert r.waves == [["101", "104"]]
    assert sorted(exts(r.rings, LegEndReason.no_answer)) == ["101", "104"], r.rings
    assert r.row.disposition is Disposition.missed
    cancelled = {ext: _rang(rig.workdir, ext) for ext in ("101", "104")}
    assert 3.8 <= cancelled["101"] < 5.0, cancelled
    assert 7.8 <= cancelled["104"] < 9.0, cancelled


# --- schedule, step chain, caller rule --------------------------------------------------------


async def test_schedule_working_hours_rings_the_office(rig: Rig, env: Env) -> None:
    r = await rig.call(env.numbers["schedule"], {"131": Phone.answer})
    _answered(r, "131")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def off_hours(env: Env) -> Result:
    env.rig.rt.resolver.clock = lambda: OFF_HOURS
    try:
        return await env.rig.call(
            env.numbers["schedule"], {"131": Phone.answer}, expect=Caller.prompt
        )
    finally:
        env.rig.rt.resolver.clock = lambda: WORKING


async def test_schedule_off_hours_goes_to_voicemail(off_hours: Result) -> None:
    r = off_hours
    assert r.caller_ok, r.caller_log  # answered by the greeting, then hung up on (BYE)
    assert r.rings == []  # nobody's phone rang, though 131 would have answered
    assert r.ended.hangup is HangupSide.system
    assert r.row.answered_by is None and r.row.disposition is not Disposition.answered


async def test_schedule_off_hours_caller_leaving_no_message_is_missed(off_hours: Result) -> None:
    """The caller heard the greeting and sent no audio: voicemail took nothing, so nobody
    took the call (a message left makes it `voicemail`: tests/calls/test_voicemail.py)."""
    assert off_hours.row.disposition is Disposition.missed
    assert off_hours.row.voicemail_path is None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chain(env: Env) -> Result:
    env.rig.rt.resolver.clock = lambda: WORKING
    phones = {
        "201": Phone.ring,
        "211": Phone.busy,
        "212": Phone.ring,
        "221": Phone.ring,
        "231": Phone.answer,
    }
    return await env.rig.call(env.numbers["chain"], phones)


async def test_step_chain_office_managers_head_shop(chain: Result) -> None:
    _answered(chain, "231")
    assert chain.waves == [["201"], ["211", "212"], ["221"], ["231"]]
    assert exts(chain.rings, LegEndReason.busy) == ["211"]
    assert exts(chain.rings, LegEndReason.no_answer) == ["201", "212", "221"]


async def test_step_chain_journal_has_the_scheme_path(chain: Result) -> None:
    path = " → ".join(chain.row.scheme_path)
    for step in ("chain: working", "Office", "Head of sales", "Shop"):
        assert step in path


@pytest.mark.parametrize(
    "as_sent",
    [SUPPLIER, f"tel:{SUPPLIER}", SUPPLIER.removeprefix("+")],
    ids=["e164", "tel-uri", "without-plus"],
)
async def test_caller_rule_sends_suppliers_to_production(rig: Rig, env: Env, as_sent: str) -> None:
    phones = {"301": Phone.answer, "311": Phone.answer}
    supplier = await rig.call(env.numbers["rule"], phones, caller=as_sent)
    stranger = await rig.call(env.numbers["rule"], phones, caller=STRANGER)
    _answered(supplier, "301")
    _answered(stranger, "311")
    assert supplier.order == ["301"] and stranger.order == ["311"]


# --- HTTP route ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "who", "order"),
    [("group", "401", ["401"]), ("slow", "402", ["402"]), ("garbage", "402", ["402"])],
)
async def test_http_route_reply_or_fallback(
    rig: Rig, env: Env, mode: str, who: str, order: list[str]
) -> None:
    env.route.mode = mode
    asked = len(env.route.requests)
    started = asyncio.get_running_loop().time()
    phones = {"401": Phone.answer, "402": Phone.answer}
    r = await rig.call(env.numbers["http"], phones)
    _answered(r, who)
    assert r.order == order
    assert len(env.route.requests) == asked + 1
    body = env.route.requests[-1]
    assert body["event"] == "call.route" and body["dialed"]["number"] == env.numbers["http"]
    if mode == "slow":  # the route's 1 s timeout was waited out, not more
        assert 1.0 <= asyncio.get_running_loop().time() - started < 5.0
    # The journal's path says why the fallback ran (the integrator's first question).
    why = {"group": "[reply: group Support]", "slow": "[timeout]", "garbage": "[bad_reply]"}
    path = " → ".join(r.row.scheme_path)
    assert f"ask back office {why[mode]}" in path, path
