"""``zvonar simulate``: real SIP callers and answering devices against a running PBX."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zvonar.accounts.models import Role
from zvonar.cli.common import (
    AccountOpt,
    app,
    cli_error,
    load_settings,
    run_with_container,
)

if TYPE_CHECKING:
    from zvonar.sim import Dist


def _duration(option: str, text: str) -> Dist:
    from zvonar.sim import Dist

    try:
        dist = Dist.parse(text)
    except ValueError as exc:
        why = f"{exc}; durations: N, A..B, exp:MEAN or lognormal:MEDIAN:SHAPE (seconds)"
    else:
        if math.isfinite(dist.a) and math.isfinite(dist.b):
            return dist
        why = "not a finite number of seconds"
    raise cli_error("invalid_option", f"{option} {text!r}: {why}")


def _sip_passwords(path: Path) -> dict[str, str]:
    """{extension: SIP password}: a JSON object of them, or the demo's file (under "sip")."""
    if not path.exists():
        raise cli_error(
            "invalid_credentials_file",
            f"no credentials file {path}: run `zvonar demo` first, or pass --credentials",
        )
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise cli_error("invalid_credentials_file", f"{path}: {exc.strerror or exc}") from None
    except ValueError:  # not JSON, or not in any encoding JSON may be in
        raise cli_error("invalid_credentials_file", f"{path}: not JSON") from None
    passwords = data.get("sip", data) if isinstance(data, dict) else None
    if not isinstance(passwords, dict) or not all(
        isinstance(ext, str) and isinstance(pw, str) for ext, pw in passwords.items()
    ):
        raise cli_error(
            "invalid_credentials_file",
            f'{path}: expected {{"extension": "SIP password", ...}} (the demo\'s: under "sip")',
        )
    return passwords


def _pbx_listens(host: str, port: int) -> None:
    """Exit code 1 unless something takes TCP connections where the PBX should be (`serve`
    listens on UDP and TCP): without it the devices would wait out their REGISTERs first."""
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as exc:
        raise cli_error(
            "pbx_unreachable",
            f"no PBX at {host}:{port} ({exc.strerror or exc}): start `zvonar serve`"
            " (or `make demo`) first, with the same settings",
            exit_code=1,
        ) from None


@app.command()
def simulate(
    account: AccountOpt = "demo",
    minutes: Annotated[float, typer.Option(help="How long to place calls (real minutes).")] = 2.0,
    rate: Annotated[float, typer.Option(help="Calls per minute at the busiest hour.")] = 30.0,
    day_seconds: Annotated[
        float, typer.Option(help="Real seconds per simulated day (0: a flat rate).")
    ] = 0.0,
    start_hour: Annotated[
        float,
        typer.Option(help="Simulated hour of day to start at: 0 (midnight) up to, not incl., 24."),
    ] = 9.0,
    max_calls: Annotated[int, typer.Option(help="At most this many calls (1..100000).")] = 1000,
    callers: Annotated[
        int,
        typer.Option(
            help="Distinct caller numbers (1..100000), of the account's country; a few call"
            " often, most once or twice."
        ),
    ] = 50,
    answer_delay: Annotated[str, typer.Option(help="Seconds: 2 | 1..4 | exp:3 | ...")] = "0.5..3",
    talk_time: Annotated[
        str,
        typer.Option(
            help="Seconds a device talks before it hangs up; a caller the PBX answers itself"
            " (voicemail, a menu) hangs up after a draw of its own."
        ),
    ] = "lognormal:10:0.6",
    patience: Annotated[str, typer.Option(help="Caller hangs up after (while unanswered).")] = (
        "5..20"
    ),
    busy: Annotated[float, typer.Option(help="Probability a device answers busy.")] = 0.1,
    rtp: Annotated[bool, typer.Option(help="Devices send G.711 while talking.")] = True,
    seed: Annotated[int | None, typer.Option()] = None,
    credentials: Annotated[
        Path | None,
        typer.Option(help="JSON {extension: SIP password}; default: the demo's credentials."),
    ] = None,
) -> None:
    """Place real SIP calls from simulated callers to the account's numbers, answered by
    simulated employee phones, against the running ``zvonar serve`` (loopback only)."""
    from zvonar.accounts.access import Principal
    from zvonar.sim import SimConfig, SimError, SimTarget
    from zvonar.sim import simulate as place_calls

    s = load_settings()
    # What SimConfig would refuse with a ValueError, said with the option's name.
    for option, value, within, allowed in (
        ("--minutes", minutes, minutes > 0, "above 0"),
        ("--rate", rate, rate > 0, "above 0"),
        ("--day-seconds", day_seconds, day_seconds >= 0, "0 or more"),
        # An hour of the day: 24 is the next day's 0, as the profile reads it.
        ("--start-hour", start_hour, 0 <= start_hour < 24, "at least 0 and below 24"),
        ("--busy", busy, 0 <= busy <= 1, "0 to 1"),
    ):
        if not (within and math.isfinite(value)):
            raise cli_error("invalid_option", f"{option} must be {allowed}, not {value}")
    for option, count in (("--max-calls", max_calls), ("--callers", callers)):
        if not 1 <= count <= 100_000:
            raise cli_error("invalid_option", f"{option} must be 1 to 100000, not {count}")
    config = SimConfig(
        duration=minutes * 60,
        rate_per_minute=rate,
        day_seconds=day_seconds,
        start_hour=start_hour,
        max_calls=max_calls,
        callers=callers,
        answer_delay=_duration("--answer-delay", answer_delay),
        talk_time=_duration("--talk-time", talk_time),
        patience=_duration("--patience", patience),
        busy_probability=busy,
        rtp=rtp,
        seed=seed,
    )
    passwords = _sip_passwords(credentials or s.data_dir / "demo-credentials.json")

    async def numbers_of(c: Any) -> tuple[list[str], str]:
        """The account's numbers to call, and its country (the callers' numbers are of it)."""
        acc = await c.accounts.account_by_slug(account)
        admin = Principal(account_id=acc.id, role=Role.admin)
        listing = await c.directory.list_numbers(admin, active=True, limit=200)
        return [n.e164 for n in listing.items], acc.country

    numbers, country = run_with_container(numbers_of)
    config = replace(config, country=country)
    if not numbers:
        raise cli_error("no_numbers", f"the account {account!r} has no active numbers to call")
    try:
        target = SimTarget(
            s.sip_advertise or s.sip_host,
            s.sip_port,
            account,
            tuple(sorted(passwords.items())),
            tuple(numbers),
        )
        _pbx_listens(target.host, target.port)
        report = asyncio.run(place_calls(target, config))
    except SimError as exc:  # registrations refused or unanswered, a host not on loopback
        raise cli_error("simulation_failed", str(exc)) from None
    typer.echo(report.summary())
