"""``zvonar serve`` and ``zvonar demo``: the web app and the PBX in one process, with start-up
failures (a taken port, an unusable certificate or directory) as one line each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from zvonar.cli.common import (
    HostOpt,
    PortOpt,
    app,
    cli_error,
    load_settings,
    prepare_data_dir,
    reachable_database,
    run_with_container,
)
from zvonar.settings import Settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp


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
        raise cli_error("tls_unusable", str(exc), exit_code=1)
    tls = f", TLS on port {pbx.sip_tls_port}" if pbx.sip_tls_cert else ""
    raise cli_error(
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

    s = load_settings()
    prepare_data_dir(s, secret_key=True)
    url = reachable_database(s)
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

    s = load_settings()
    prepare_data_dir(s, secret_key=True)
    upgrade(reachable_database(s))
    info = run_with_container(lambda c: load_demo(c), checked=s)
    shown = port if port is not None else s.http_port
    # Port 0: the system picks one when the server starts; uvicorn's log line names it.
    url = s.public_url or f"http://{host or s.http_host}:{shown or '<port>'}/"
    typer.echo(info.banner(url))
    if not load_only:
        _serve(s, host, port)
