"""Administration commands: ``db``, ``secrets``, ``account``, ``user``, ``token``, ``config``."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from zvonar.accounts.models import Role
from zvonar.cli.common import (
    AccountOpt,
    account_app,
    cli_error,
    config_app,
    db_app,
    load_settings,
    prepare_data_dir,
    reachable_database,
    run_with_container,
    secrets_app,
    token_app,
    user_app,
)


# --- database ---------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the database schema up to REVISION (default: the newest)."""
    from zvonar.store.migrate import upgrade

    s = load_settings()
    prepare_data_dir(s, secret_key=False)
    upgrade(reachable_database(s), revision)
    typer.echo(f"database at {revision}: {s.redacted()['database_url']}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, or 'base'.")) -> None:
    """Migrate the database schema down to REVISION."""
    from zvonar.store.migrate import downgrade

    downgrade(reachable_database(load_settings()), revision)
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
    resealed, unreadable = run_with_container(lambda c: reseal_passwords(c.db, Sealer(old_key)))
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

    account = run_with_container(go)
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

    user = run_with_container(go)
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

    issued = run_with_container(go)
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

    text = dump_yaml(run_with_container(go))
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

    s = load_settings()
    try:
        text = file.read_text("utf-8")
    except UnicodeDecodeError:
        raise cli_error("invalid_config", f"{file} is not UTF-8 text") from None
    reachable_database(s)

    async def go(c: Any) -> list[Any]:
        acc = await c.accounts.account_by_slug(account)
        return await apply_config(c, acc.id, load_yaml(text), dry_run=dry_run)

    changes = run_with_container(go, checked=s)
    for ch in changes:
        typer.echo(describe(ch))
    verb = "would change" if dry_run else "changed"
    typer.echo(f"{len(changes)} change(s); {verb}" if changes else "no changes", err=True)


# --- serving ----------------------------------------------------------------------------------
