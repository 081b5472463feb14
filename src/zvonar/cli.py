"""The ``zvonar`` command line."""

from __future__ import annotations

import asyncio
import getpass
import json
import math
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from zvonar.accounts.models import Role
from zvonar.core.errors import ZvonarError
from zvonar.settings import Settings, SettingsFileError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from zvonar.sim import Dist

T = TypeVar("T")

app = typer.Typer(
    help="Zvonar: business telephony, contact center, call tracking and omnichannel inbox.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
user_app = typer.Typer(help="Users of an account.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for integrations.", no_args_is_help=True)
config_app = typer.Typer(help="Account configuration as code (YAML).", no_args_is_help=True)
account_app = typer.Typer(help="Accounts (tenants).", no_args_is_help=True)
secrets_app = typer.Typer(help="Secrets sealed at rest (trunk passwords).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(account_app, name="account")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(config_app, name="config")
app.add_typer(secrets_app, name="secrets")

AccountOpt = Annotated[str, typer.Option("--account", "-a", help="Account slug.")]
HostOpt = Annotated[str | None, typer.Option(help="Overrides ZVONAR_HTTP_HOST.")]
PortOpt = Annotated[
    int | None,
    typer.Option(min=0, max=65535, help="Overrides ZVONAR_HTTP_PORT (0: any free port)."),
]


@app.callback()
def _global(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML settings file (its \\[zvonar] table)."),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Overrides ZVONAR_DATA_DIR.")] = None,
) -> None:
    if config is not None:
        os.environ["ZVONAR_CONFIG"] = str(config)
    if data_dir is not None:
        os.environ["ZVONAR_DATA_DIR"] = str(data_dir)


def _settings() -> Settings:
    """The settings, or a line per bad one and exit code 2 (not a traceback)."""
    from pydantic import ValidationError

    try:
        return Settings()
    except SettingsFileError as exc:
        typer.secho(f"error [invalid_settings]: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    except ValidationError as exc:
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"])
            where = f"{name} (ZVONAR_{name.upper()})" if name else "settings"
            typer.secho(
                f"error [invalid_settings]: {where}: {err['msg']}",
                fg=typer.colors.RED,
                err=True,
            )
        raise typer.Exit(code=2) from None


def _database(s: Settings) -> str:
    """The database URL once a connection to it works; if none can be made, why, and exit
    code 1 (an operator's problem to fix, not a traceback to read)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from zvonar.store.db import make_engine

    url = s.effective_database_url

    async def probe() -> None:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    def probe_sqlite() -> None:
        # The standard library's driver: aiosqlite's worker thread, failing to open a file,
        # reports to a loop that asyncio.run has already closed.
        engine = create_engine(url.replace("+aiosqlite", "", 1))
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()

    try:
        if url.startswith("sqlite"):
            probe_sqlite()
        else:
            asyncio.run(probe())
    except (OSError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        shown = s.redacted()["database_url"]
        typer.secho(
            f"error [database_unavailable]: cannot use {shown}: {reason}",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(code=1) from None
    return url


def _error(code: str, message: str, exit_code: int = 2) -> typer.Exit:
    """Print the one line the user sees; raise what it returns. Exit code 2: bad input;
    1: the environment (a database, a directory, a port) is the operator's to fix."""
    typer.secho(f"error [{code}]: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=exit_code)


def _fail(exc: ZvonarError) -> typer.Exit:
    return _error(exc.code, exc.message)


def _prepare(s: Settings, *, secret_key: bool) -> None:
    """The data directory exists, and with ``secret_key`` the key can be read (or made), or
    why and exit code 1: found here rather than as a traceback from deep in start-up."""
    try:
        s.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(
            "data_dir_unusable",
            f"cannot use {s.data_dir} (ZVONAR_DATA_DIR): {exc.strerror or exc}",
            exit_code=1,
        ) from None
    if not secret_key or s.secret_key is not None:
        return
    try:
        reason = "" if s.effective_secret_key else "it is empty"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    except UnicodeDecodeError:
        reason = "it is not text"
    if reason:
        raise _error(
            "secret_key_unusable",
            f"cannot use {s.data_dir / 'secret_key'}: {reason} (fix it, or set ZVONAR_SECRET_KEY)",
            exit_code=1,
        )


def _run(factory: Callable[[Any], Awaitable[T]], checked: Settings | None = None) -> T:
    """Run ``factory(container)`` on a fresh container and dispose it afterwards.
    ``checked``: settings whose database ``_database`` has already reached."""
    from zvonar.app import create_container

    settings = checked
    if settings is None:
        settings = _settings()
        _database(settings)

    async def main() -> T:
        c = create_container(settings)
        try:
            return await factory(c)
        finally:
            await c.db.dispose()

    try:
        return asyncio.run(main())
    except ZvonarError as exc:
        raise _fail(exc) from None


# --- database ---------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the database schema up to REVISION (default: the newest)."""
    from zvonar.store.migrate import upgrade

    s = _settings()
    _prepare(s, secret_key=False)
    upgrade(_database(s), revision)
    typer.echo(f"database at {revision}: {s.redacted()['database_url']}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, or 'base'.")) -> None:
    """Migrate the database schema down to REVISION."""
    from zvonar.store.migrate import downgrade

    downgrade(_database(_settings()), revision)
    typer.echo(f"database at {revision}")


# --- secrets ------------------------------------------------------------------------------------
@secrets_app.command("reseal")
def secrets_reseal(
    old_key_file: Annotated[
        Path,
        typer.Option(
            help="A file holding the previous secret_key (e.g. the old data_dir/secret_key).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
) -> None:
    """After secret_key changed: seal the trunks' passwords again with the current key.

    Restart `zvonar serve` afterwards: it reads the trunks at start."""
    from zvonar.directory.secrets import reseal_passwords
    from zvonar.store.sealed import Sealer

    old_key = old_key_file.read_text().strip()
    if not old_key:
        typer.secho("error: the old key file is empty", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    resealed, unreadable = _run(lambda c: reseal_passwords(c.db, Sealer(old_key)))
    typer.echo(f"{resealed} trunk password(s) sealed again with the current key")
    if unreadable:
        typer.secho(
            f"{unreadable} open with neither key: enter them again", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(code=1)


# --- accounts, users, tokens ----------------------------------------------------------------
@account_app.command("create")
def account_create(
    slug: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    time_zone: str = "Europe/Moscow",
    country: str = "RU",
    language: str = "ru",
) -> None:
    """Create an account."""

    async def go(c: Any) -> Any:
        return await c.accounts.create_account(
            name, slug, time_zone=time_zone, country=country, language=language
        )

    account = _run(go)
    typer.echo(f"account {account.slug} created ({account.id})")


@user_app.command("create")
def user_create(
    account: AccountOpt,
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    role: Annotated[Role, typer.Option()] = Role.operator,
    password: Annotated[
        str | None, typer.Option(help="Omit to be asked (never pass real ones on a shared host).")
    ] = None,
) -> None:
    """Create a user who signs in to the web UI with a password."""
    if password is None:
        password = getpass.getpass("Password: ")

    async def go(c: Any) -> Any:
        acc = await c.accounts.account_by_slug(account)
        return await c.accounts.create_user(
            acc.id, email=email, name=name, role=role, password=password
        )

    user = _run(go)
    typer.echo(f"user {user.email} ({user.role.value}) created")


@token_app.command("create")
def token_create(
    account: AccountOpt,
    name: Annotated[str, typer.Option(help="What the token is for.")],
    role: Annotated[Role, typer.Option()] = Role.operator,
) -> None:
    """Create an API token; its secret is printed once and cannot be shown again."""

    async def go(c: Any) -> Any:
        acc = await c.accounts.account_by_slug(account)
        return await c.accounts.create_token(acc.id, name=name, role=role)

    issued = _run(go)
    typer.echo(issued.secret)
    typer.echo(f"token {issued.token.id} ({issued.token.role.value}): store it now", err=True)


# --- configuration as code --------------------------------------------------------------------
@config_app.command("export")
def config_export(
    account: AccountOpt,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Write the account's whole configuration as YAML (stdout by default)."""
    from zvonar.configfile import dump_yaml, export_config

    async def go(c: Any) -> dict[str, Any]:
        acc = await c.accounts.account_by_slug(account)
        return await export_config(c, acc.id)

    text = dump_yaml(_run(go))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


@config_app.command("apply")
def config_apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    account: AccountOpt,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the diff, change nothing.")
    ] = False,
) -> None:
    """Make the account match FILE and print what changed."""
    from zvonar.configfile import apply_config, describe, load_yaml

    s = _settings()
    try:
        text = file.read_text("utf-8")
    except UnicodeDecodeError:
        raise _error("invalid_config", f"{file} is not UTF-8 text") from None
    _database(s)

    async def go(c: Any) -> list[Any]:
        acc = await c.accounts.account_by_slug(account)
        return await apply_config(c, acc.id, load_yaml(text), dry_run=dry_run)

    changes = _run(go, checked=s)
    for ch in changes:
        typer.echo(describe(ch))
    verb = "would change" if dry_run else "changed"
    typer.echo(f"{len(changes)} change(s); {verb}" if changes else "no changes", err=True)


# --- serving ----------------------------------------------------------------------------------
def _startup_failures(application: ASGIApp, caught: list[Exception]) -> ASGIApp:
    """``application``, whose start-up failing for a known reason (a SIP port taken, a TLS
    certificate that does not load) is kept in ``caught`` for the CLI to say in one line:
    uvicorn would log the traceback Starlette sends with the failure. Others pass as they are."""
    from starlette.types import Message, Receive, Scope, Send

    from zvonar.sip.io.tls import TlsError

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await application(scope, receive, send)
            return
        held: list[Message] = []

        async def send_later(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)  # the exception, raised next, tells which it was
            else:
                await send(message)

        try:
            await application(scope, receive, send_later)
        except (OSError, TlsError) as exc:
            if held:
                caught.append(exc)
                held[:] = [{"type": "lifespan.startup.failed", "message": ""}]
            raise
        finally:
            for message in held:
                await send(message)

    return wrapped


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    import uvicorn

    from zvonar.app import create_app, create_container
    from zvonar.logs import configure_logging
    from zvonar.pbx.limits import raise_open_files_limit, sockets_needed
    from zvonar.sip.io.tls import TlsError

    configure_logging(settings.log_level)
    pbx = settings.pbx_config()
    raise_open_files_limit(sockets_needed(pbx.rtp_ports))
    application = create_app(create_container(settings), pbx=pbx)
    caught: list[Exception] = []
    try:
        uvicorn.run(
            _startup_failures(application, caught),
            host=host or settings.http_host,
            port=port if port is not None else settings.http_port,
            log_level=settings.log_level.lower(),
            access_log=False,
        )
    except SystemExit:
        if not caught:  # uvicorn's own failure (the HTTP port taken): it has said why
            raise
    if not caught:
        return
    exc = caught[0]
    if isinstance(exc, TlsError):
        raise _error("tls_unusable", str(exc), exit_code=1)
    tls = f", TLS on port {pbx.sip_tls_port}" if pbx.sip_tls_cert else ""
    raise _error(
        "pbx_start_failed",
        f"cannot start the PBX on {pbx.sip_host}:{pbx.sip_port} (UDP, TCP{tls}): {exc}",
        exit_code=1,
    )


@app.command()
def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    migrate: Annotated[bool, typer.Option(help="Upgrade the schema first.")] = True,
) -> None:
    """Serve the web UI and the API."""
    from zvonar.store.migrate import upgrade

    s = _settings()
    _prepare(s, secret_key=True)
    url = _database(s)
    if migrate:
        upgrade(url)
    _serve(s, host, port)


@app.command()
def demo(
    host: HostOpt = None,
    port: PortOpt = None,
    load_only: Annotated[bool, typer.Option(help="Load the demo account, do not serve.")] = False,
) -> None:
    """Migrate, load the demo account (idempotent) and serve it, printing how to sign in."""
    from zvonar.demo import load_demo
    from zvonar.store.migrate import upgrade

    s = _settings()
    _prepare(s, secret_key=True)
    upgrade(_database(s))
    info = _run(lambda c: load_demo(c), checked=s)
    shown = port if port is not None else s.http_port
    # Port 0: the system picks one when the server starts; uvicorn's log line names it.
    url = s.public_url or f"http://{host or s.http_host}:{shown or '<port>'}/"
    typer.echo(info.banner(url))
    if not load_only:
        _serve(s, host, port)


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
    raise _error("invalid_option", f"{option} {text!r}: {why}")


def _sip_passwords(path: Path) -> dict[str, str]:
    """{extension: SIP password}: a JSON object of them, or the demo's file (under "sip")."""
    if not path.exists():
        raise _error(
            "invalid_credentials_file",
            f"no credentials file {path}: run `zvonar demo` first, or pass --credentials",
        )
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise _error("invalid_credentials_file", f"{path}: {exc.strerror or exc}") from None
    except ValueError:  # not JSON, or not in any encoding JSON may be in
        raise _error("invalid_credentials_file", f"{path}: not JSON") from None
    passwords = data.get("sip", data) if isinstance(data, dict) else None
    if not isinstance(passwords, dict) or not all(
        isinstance(ext, str) and isinstance(pw, str) for ext, pw in passwords.items()
    ):
        raise _error(
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
        raise _error(
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
    start_hour: Annotated[float, typer.Option(help="Simulated hour of day to start at.")] = 9.0,
    max_calls: Annotated[int, typer.Option(help="At most this many calls (1..100000).")] = 1000,
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

    s = _settings()
    # What SimConfig would refuse with a ValueError, said with the option's name.
    for option, value, within, allowed in (
        ("--minutes", minutes, minutes > 0, "above 0"),
        ("--rate", rate, rate > 0, "above 0"),
        ("--day-seconds", day_seconds, day_seconds >= 0, "0 or more"),
        ("--start-hour", start_hour, 0 <= start_hour < 24, "0 to 24"),
        ("--busy", busy, 0 <= busy <= 1, "0 to 1"),
    ):
        if not (within and math.isfinite(value)):
            raise _error("invalid_option", f"{option} must be {allowed}, not {value}")
    if not 1 <= max_calls <= 100_000:
        raise _error("invalid_option", f"--max-calls must be 1 to 100000, not {max_calls}")
    config = SimConfig(
        duration=minutes * 60,
        rate_per_minute=rate,
        day_seconds=day_seconds,
        start_hour=start_hour,
        max_calls=max_calls,
        answer_delay=_duration("--answer-delay", answer_delay),
        talk_time=_duration("--talk-time", talk_time),
        patience=_duration("--patience", patience),
        busy_probability=busy,
        rtp=rtp,
        seed=seed,
    )
    passwords = _sip_passwords(credentials or s.data_dir / "demo-credentials.json")

    async def numbers_of(c: Any) -> list[str]:
        acc = await c.accounts.account_by_slug(account)
        admin = Principal(account_id=acc.id, role=Role.admin)
        listing = await c.directory.list_numbers(admin, active=True, limit=200)
        return [n.e164 for n in listing.items]

    numbers = _run(numbers_of)
    if not numbers:
        raise _error("no_numbers", f"the account {account!r} has no active numbers to call")
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
        raise _error("simulation_failed", str(exc)) from None
    typer.echo(report.summary())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
