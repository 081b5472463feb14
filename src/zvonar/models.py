"""Imports every slice's tables so ``Base.metadata`` is complete (Alembic, create_all)."""

from zvonar.accounts import models as accounts_models
from zvonar.acd import models as acd_models
from zvonar.callbacks import models as callbacks_models
from zvonar.contacts import models as contacts_models
from zvonar.directory import models as directory_models
from zvonar.journal import models as journal_models
from zvonar.notify import models as notify_models
from zvonar.pbx import models as pbx_models
from zvonar.routing import models as routing_models
from zvonar.store import outbox as outbox_models
from zvonar.store.base import Base

__all__ = [
    "Base",
    "accounts_models",
    "acd_models",
    "callbacks_models",
    "contacts_models",
    "directory_models",
    "journal_models",
    "notify_models",
    "outbox_models",
    "pbx_models",
    "routing_models",
]
