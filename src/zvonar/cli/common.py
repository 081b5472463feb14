"""The ``zvonar`` command line's shared parts: the Typer app and its command groups, settings,
the database check, one-line errors (exit 2: bad input; 1: the environment) and running work
on a fresh container."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from zvonar.core.errors import ZvonarError
from zvonar.settings import Settings, SettingsFileError, unknown_environment

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


def load_settings() -> Settings:
    """The settings, or a line per bad one and exit code 2 (not a traceback)."""
    from pydantic import ValidationError

    for name in unknown_environment(os.environ):
        typer.secho(f"warning: {name} is not a setting (ignored)", fg=typer.colors.YELLOW, err=True)
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


def reachable_database(s: Settings) -> str:
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


def cli_error(code: str, message: str, exit_code: int = 2) -> typer.Exit:
    """Print the one line the user sees; raise what it returns. Exit code 2: bad input;
    1: the environment (a database, a directory, a port) is the operator's to fix."""
    typer.secho(f"error [{code}]: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=exit_code)


def zvonar_error(exc: ZvonarError) -> typer.Exit:
    return cli_error(exc.code, exc.message)


def prepare_data_dir(s: Settings, *, secret_key: bool) -> None:
    """The data directory exists, and with ``secret_key`` the key can be read (or made), or
    why and exit code 1: found here rather than as a traceback from deep in start-up."""
    try:
        s.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cli_error(
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
        raise cli_error(
            "secret_key_unusable",
            f"cannot use {s.data_dir / 'secret_key'}: {reason} (fix it, or set ZVONAR_SECRET_KEY)",
            exit_code=1,
        )


def run_with_container(
    factory: Callable[[Any], Awaitable[T]], checked: Settings | None = None
) -> T:
    """Run ``factory(container)`` on a fresh container and dispose it afterwards.
    ``checked``: settings whose database ``reachable_database`` has already reached."""
    from zvonar.app import create_container

    settings = checked
    if settings is None:
        settings = load_settings()
        reachable_database(settings)

    async def main() -> T:
        c = create_container(settings)
        try:
            return await factory(c)
        finally:
            await c.db.dispose()

    try:
        return asyncio.run(main())
    except ZvonarError as exc:
        raise zvonar_error(exc) from None
