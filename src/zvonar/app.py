"""The composition root: the only place that wires slices together."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from zvonar import __version__
from zvonar.accounts.models import Account
from zvonar.accounts.router import router as accounts_router
from zvonar.accounts.service import AccountService
from zvonar.acd.config import check_scheme_queues
from zvonar.acd.live_router import router as acd_live_router
from zvonar.acd.queues import AcdQueueService, guard_queue_members
from zvonar.acd.router import router as acd_router
from zvonar.acd.service import AcdService
from zvonar.api import errors
from zvonar.api.limits import BodySizeLimit, JsonText
from zvonar.callbacks.router import router as callbacks_router
from zvonar.callbacks.service import CallbackService
from zvonar.contacts.csvimport import MAX_IMPORT_BYTES
from zvonar.contacts.router import router as contacts_router
from zvonar.contacts.service import ContactService
from zvonar.container import Container
from zvonar.core.bus import EventBus, InProcessBus
from zvonar.directory.router import router as directory_router
from zvonar.directory.secrets import seal_stored_passwords
from zvonar.directory.service import DirectoryService
from zvonar.journal.retention import RetentionSchedule
from zvonar.journal.router import router as journal_router
from zvonar.journal.service import JournalService
from zvonar.notify.mailer import SmtpConfig, SmtpMailer, SmtpSecurity
from zvonar.notify.missed import MissedCallNotifier, managers_from_db, profiles_from_db
from zvonar.notify.outbox import MailOutbox
from zvonar.notify.spool import MailSpool, claim_margin_for
from zvonar.notify.voicemail import VoicemailNotifier
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.router import metrics_router
from zvonar.pbx.router import router as pbx_router
from zvonar.pbx.runtime import start_pbx
from zvonar.prompts.router import router as prompts_router
from zvonar.prompts.service import MAX_UPLOAD_BYTES as MAX_PROMPT_BYTES
from zvonar.prompts.service import PromptService
from zvonar.routing.router import router as routing_router
from zvonar.routing.service import RoutingService
from zvonar.routing.version import bump_routing_versions
from zvonar.routing.writer import guard_scheme_references
from zvonar.settings import Settings
from zvonar.store.base import utcnow
from zvonar.store.db import Database
from zvonar.store.outbox import EventOutbox
from zvonar.web.routes import install as install_web


def _mailer(settings: Settings) -> SmtpMailer | None:
    if not settings.smtp_host:
        return None
    return SmtpMailer(
        SmtpConfig(
            host=settings.smtp_host,
            sender=settings.smtp_from,
            port=settings.smtp_port,
            security=SmtpSecurity(settings.smtp_security),
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout=settings.smtp_timeout,
        )
    )


def _missed_call_recipients(db: Database) -> Callable[[uuid.UUID], Awaitable[list[str]]]:
    async def recipients(account_id: uuid.UUID) -> list[str]:
        async with db.read() as s:
            account = await s.get(Account, account_id)
        return list(account.missed_call_emails) if account else []

    return recipients


def create_container(settings: Settings, *, bus: EventBus | None = None) -> Container:
    bus = bus or InProcessBus()
    db = Database(
        settings.effective_database_url,
        bus,
        echo=settings.log_sql,
        secret=lambda: settings.effective_secret_key,
    )
    # Other processes learn of this one's writes by these: the account's routing version,
    # and the events themselves through the outbox (the PBX relays them: store/outbox.py).
    db.before_commit(bump_routing_versions)
    outbox = EventOutbox(db)
    db.before_commit(outbox.record)
    journal = JournalService(db, settings.data_dir)
    journal.attach(bus)
    mailer = _mailer(settings)
    notifier = voicemail = mail = None
    if mailer is not None:  # without a mail server there is nobody to tell
        # One outbox for every notifier, spooled: a mail outlives a restart (notify/spool.py).
        spool = MailSpool(db, claim_margin=claim_margin_for(settings.smtp_timeout))
        mail = MailOutbox(mailer, logging.getLogger("zvonar.notify"), spool=spool)
        recipients = _missed_call_recipients(db)
        notifier = MissedCallNotifier(
            mailer, recipients, profiles_from_db(db), managers=managers_from_db(db), outbox=mail
        )
        notifier.attach(bus)
        voicemail = VoicemailNotifier(
            mailer, profiles_from_db(db), recipients=recipients, outbox=mail
        )
        voicemail.attach(bus)
    return Container(
        settings=settings,
        bus=bus,
        db=db,
        accounts=AccountService(db),
        directory=DirectoryService(db, guards=[guard_scheme_references, guard_queue_members]),
        routing=RoutingService(db, scheme_checks=[check_scheme_queues]),
        contacts=ContactService(db),
        journal=journal,
        missed_calls=notifier,
        voicemail_mail=voicemail,
        mail=mail,
        acd=AcdService(db),
        acd_queues=AcdQueueService(db),
        callbacks=CallbackService(db),
        prompts=PromptService(settings.data_dir),
        outbox=outbox,
    )


def create_app(container: Container, *, pbx: PbxConfig | None = None) -> FastAPI:
    """The web UI and API; with ``pbx`` the same process also answers SIP and relays media."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Calls a killed process left open are finalized before any new call is taken.
        await container.journal.recover_open_calls(utcnow())
        await seal_stored_passwords(container.db)  # what an older version kept in clear
        retention = RetentionSchedule(container.db, container.journal)
        retention.start()
        if container.mail is not None:
            container.mail.start()  # mails an earlier process could not deliver
        runtime = await start_pbx(container, pbx) if pbx is not None else None
        # The live ACD (supervisor API); None without a PBX in this process.
        _app.state.acd = runtime.acd if runtime is not None else None
        _app.state.pbx = runtime
        yield
        if runtime is not None:
            await runtime.stop()
        await retention.stop()
        await container.aclose()  # notifiers, the journal's queue, then the database

    app = FastAPI(
        title="Zvonar",
        version=__version__,
        summary="Business telephony, contact center, call tracking and omnichannel inbox.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.container = container
    app.state.acd = None
    app.state.pbx = None
    errors.install(app)
    for router in (
        accounts_router,
        directory_router,
        routing_router,
        contacts_router,
        journal_router,
        acd_router,
        acd_live_router,
        callbacks_router,
        prompts_router,
        pbx_router,
    ):
        app.include_router(router, prefix="/api/v1")
    app.include_router(metrics_router)
    install_web(app, container)
    app.add_middleware(JsonText)  # inside BodySizeLimit: it buffers only bodies within the limit
    app.add_middleware(
        BodySizeLimit,
        max_bytes=container.settings.max_body_bytes,
        overrides={"/api/v1/contacts/import": MAX_IMPORT_BYTES},
        prefix_overrides={"/api/v1/prompts/": MAX_PROMPT_BYTES},
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
