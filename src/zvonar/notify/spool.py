"""The mail spool: mails kept in the database until their server took them.

The outbox (outbox.py) spools every mail before its first attempt and deletes it once sent, so a
mail server that is down across a restart, a deploy or a crash loses nothing: the next process
(or another node) finds the mail and goes on with its retries where they stopped.

A mail is *claimed* while a process delivers it (``owner``, ``locked_until``: the time of its
next attempt and a margin for the attempt itself). A process that stops releases its claims; one
that dies leaves them to run out. :meth:`MailSpool.claim_due` takes what is unclaimed, or whose
claim ran out, in one conditional ``UPDATE`` per mail, so two processes never both send one.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update

from zvonar.notify.mailer import Attachment, Mail
from zvonar.notify.models import QueuedMail
from zvonar.store.db import Database

# How long a claim outlives the moment its attempt starts, at least: more than an SMTP attempt
# can take, so a live process never loses a mail it is sending to another. The app makes it
# longer for a longer smtp_timeout (``claim_margin_for``): that timeout bounds each step of
# the dialogue (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA…), not the whole attempt.
CLAIM_MARGIN = timedelta(minutes=2)
_SMTP_STEPS = 10


def claim_margin_for(smtp_timeout: float) -> timedelta:
    """A claim margin that outlasts an attempt whose every step takes ``smtp_timeout``."""
    return max(CLAIM_MARGIN, timedelta(seconds=_SMTP_STEPS * smtp_timeout + 30))


# Mails whose every attempt failed are kept this long (for whoever follows them up), then purged.
KEEP_FAILED = timedelta(days=7)


def dump_mail(mail: Mail) -> str:
    return json.dumps(
        {
            "to": list(mail.to),
            "subject": mail.subject,
            "body": mail.body,
            "attachments": [
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "data": base64.b64encode(a.data).decode("ascii"),
                }
                for a in mail.attachments
            ],
        },
        ensure_ascii=False,
    )


def load_mail(text: str) -> Mail:
    """The spooled mail; ``ValueError`` (or ``KeyError``/``TypeError``) if it is not one."""
    raw: dict[str, Any] = json.loads(text)
    return Mail(
        to=tuple(str(a) for a in raw["to"]),
        subject=str(raw["subject"]),
        body=str(raw["body"]),
        attachments=tuple(
            Attachment(str(a["filename"]), str(a["content_type"]), base64.b64decode(a["data"]))
            for a in raw["attachments"]
        ),
    )


@dataclass(frozen=True)
class Spooled:
    """A claimed mail: its row id, what it is, the mail text and the attempts already made."""

    id: uuid.UUID
    what: str
    message: str
    attempts: int


class MailSpool:
    """The only writer of ``mail_queue``."""

    def __init__(
        self, db: Database, owner: str | None = None, *, claim_margin: timedelta = CLAIM_MARGIN
    ) -> None:
        self.db = db
        self.claim_margin = claim_margin
        # This process's name on its claims; unique per process, so a restart is a new owner.
        self.owner = owner or uuid.uuid4().hex

    async def add(self, what: str, mail: Mail, now: datetime) -> uuid.UUID:
        """Spool a new mail, claimed by this process for its first attempt."""
        row = QueuedMail(
            id=uuid.uuid4(),
            what=what,
            message=dump_mail(mail),
            created_at=now,
            attempts=0,
            owner=self.owner,
            locked_until=now + self.claim_margin,
        )
        async with self.db.unit_of_work() as uow:
            uow.session.add(row)
        return row.id

    async def failed_attempt(
        self, mail_id: uuid.UUID, attempts: int, error: str, next_at: datetime
    ) -> None:
        """An attempt failed; the next one is at ``next_at`` (the claim is held until then)."""
        async with self.db.unit_of_work() as uow:
            await uow.session.execute(
                update(QueuedMail)
                .where(QueuedMail.id == mail_id, QueuedMail.owner == self.owner)
                .values(
                    attempts=attempts,
                    last_error=error[:1000],
                    locked_until=next_at + self.claim_margin,
                )
                .execution_options(synchronize_session=False)
            )

    async def delivered(self, mail_id: uuid.UUID) -> None:
        async with self.db.unit_of_work() as uow:
            await uow.session.execute(
                delete(QueuedMail)
                .where(QueuedMail.id == mail_id)
                .execution_options(synchronize_session=False)
            )

    async def gave_up(self, mail_id: uuid.UUID, attempts: int, error: str, now: datetime) -> None:
        async with self.db.unit_of_work() as uow:
            await uow.session.execute(
                update(QueuedMail)
                .where(QueuedMail.id == mail_id)
                .values(
                    attempts=attempts,
                    last_error=error[:1000],
                    failed_at=now,
                    owner=None,
                    locked_until=None,
                )
                .execution_options(synchronize_session=False)
            )

    async def claim_due(
        self, now: datetime, limit: int = 100, *, busy: frozenset[uuid.UUID] = frozenset()
    ) -> list[Spooled]:
        """Claim the mails nobody delivers: unclaimed (their process stopped) or whose claim ran
        out (it died). Oldest first. ``busy``: this process's own deliveries under way, never
        taken a second time even if their claim ran out during a slow attempt."""
        async with self.db.read() as s:
            rows = (
                await s.execute(
                    select(QueuedMail.id, QueuedMail.what, QueuedMail.message, QueuedMail.attempts)
                    .where(
                        QueuedMail.failed_at.is_(None),
                        or_(QueuedMail.locked_until.is_(None), QueuedMail.locked_until < now),
                    )
                    .order_by(QueuedMail.created_at)
                    .limit(limit)
                )
            ).all()
        claimed: list[Spooled] = []
        for mail_id, what, message, attempts in rows:
            if mail_id in busy:
                continue
            async with self.db.unit_of_work() as uow:
                result = await uow.session.execute(
                    update(QueuedMail)
                    .where(
                        QueuedMail.id == mail_id,
                        QueuedMail.failed_at.is_(None),
                        or_(QueuedMail.locked_until.is_(None), QueuedMail.locked_until < now),
                    )
                    .values(owner=self.owner, locked_until=now + self.claim_margin)
                    .execution_options(synchronize_session=False)
                )
            if getattr(result, "rowcount", 0) == 1:  # else another process was first
                claimed.append(Spooled(mail_id, what, message, attempts))
        return claimed

    async def release(self, mail_ids: list[uuid.UUID]) -> None:
        """This process stops: its mails are anybody's at once (not after the claim runs out)."""
        if not mail_ids:
            return
        async with self.db.unit_of_work() as uow:
            await uow.session.execute(
                update(QueuedMail)
                .where(QueuedMail.id.in_(mail_ids), QueuedMail.owner == self.owner)
                .values(owner=None, locked_until=None)
                .execution_options(synchronize_session=False)
            )

    async def purge(self, now: datetime) -> int:
        """Forget mails given up on more than :data:`KEEP_FAILED` ago."""
        async with self.db.unit_of_work() as uow:
            result = await uow.session.execute(
                delete(QueuedMail)
                .where(QueuedMail.failed_at < now - KEEP_FAILED)
                .execution_options(synchronize_session=False)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def failed(self) -> list[tuple[str, int, str | None]]:
        """Mails given up on and still kept: what, attempts, last error (oldest first)."""
        async with self.db.read() as s:
            rows = await s.execute(
                select(QueuedMail.what, QueuedMail.attempts, QueuedMail.last_error)
                .where(QueuedMail.failed_at.is_not(None))
                .order_by(QueuedMail.created_at)
            )
            return [(w, a, e) for w, a, e in rows.all()]
