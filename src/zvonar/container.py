"""The object graph ``app.create_container`` wires: one instance per running Zvonar."""

from __future__ import annotations

from dataclasses import dataclass

from zvonar.accounts.service import AccountService
from zvonar.acd.queues import AcdQueueService
from zvonar.acd.service import AcdService
from zvonar.callbacks.service import CallbackService
from zvonar.contacts.service import ContactService
from zvonar.core.bus import EventBus
from zvonar.directory.service import DirectoryService
from zvonar.journal.service import JournalService
from zvonar.notify.missed import MissedCallNotifier
from zvonar.notify.outbox import MailOutbox
from zvonar.notify.voicemail import VoicemailNotifier
from zvonar.prompts.service import PromptService
from zvonar.routing.service import RoutingService
from zvonar.settings import Settings
from zvonar.store.db import Database
from zvonar.store.outbox import EventOutbox


@dataclass
class Container:
    settings: Settings
    bus: EventBus
    db: Database
    accounts: AccountService
    directory: DirectoryService
    routing: RoutingService
    contacts: ContactService
    journal: JournalService
    missed_calls: MissedCallNotifier | None
    voicemail_mail: VoicemailNotifier | None
    mail: MailOutbox | None  # the notifiers' shared, spooled outbox
    acd: AcdService
    acd_queues: AcdQueueService
    callbacks: CallbackService
    prompts: PromptService
    outbox: EventOutbox  # this process's events for the others (store/outbox.py)

    async def aclose(self) -> None:
        """Close what writes behind, then the database: the mail notifiers cancel their
        queued retries (spooled mails are left to the next start), the journal's write-behind
        queue reaches the database (its last batch must land before the connections go), then
        the pool is disposed of. After the PBX stopped; the app's shutdown and the tests that
        build a container end with it."""
        for notifier in (self.missed_calls, self.voicemail_mail):
            if notifier is not None:
                await notifier.aclose()
        await self.journal.aclose()
        await self.contacts.index.aclose()  # a caller index read under way (after an import)
        await self.db.dispose()
