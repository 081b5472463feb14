"""The object graph ``app.create_container`` wires: one instance per running Zvonar."""

from __future__ import annotations

from dataclasses import dataclass

from zvonar.accounts.service import AccountService
from zvonar.core.bus import EventBus
from zvonar.directory.service import DirectoryService
from zvonar.settings import Settings
from zvonar.store.db import Database


@dataclass
class Container:
    settings: Settings
    bus: EventBus
    db: Database
    accounts: AccountService
    directory: DirectoryService
