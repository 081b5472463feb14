"""Imports every slice's tables so ``Base.metadata`` is complete (Alembic, create_all)."""

from zvonar.accounts import models as accounts_models
from zvonar.directory import models as directory_models
from zvonar.store.base import Base

__all__ = ["Base", "accounts_models", "directory_models"]
