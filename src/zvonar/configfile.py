"""Account configuration as code: one YAML document per account.

``export`` writes the account's whole configuration; ``apply`` makes the account match a document
idempotently and returns the changes (applying the same document twice yields no changes). Each
slice owns its section; this module only stitches sections together, so later slices (schemes,
pools, inboxes) add a section here and nothing else changes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import yaml

from zvonar.accounts.events import AccountSettingsChanged
from zvonar.accounts.models import Account
from zvonar.accounts.rules import ACCOUNT_FIELDS, check_account_values
from zvonar.acd.config import apply_queues_in, check_queue_references_in, export_queues
from zvonar.acd.queues import guard_queue_members
from zvonar.container import Container
from zvonar.core.errors import InvalidInput
from zvonar.core.text import lone_surrogate_path
from zvonar.directory.config import apply_directory_in, export_directory
from zvonar.routing.config import apply_routing_in, export_routing
from zvonar.routing.writer import guard_scheme_references
from zvonar.store.db import UnitOfWork, dry_runnable

VERSION = 1
_ACCOUNT_FIELDS = ACCOUNT_FIELDS
_TOP_KEYS = {"version", "account", "directory", "queues", "routing"}


@dataclass(frozen=True)
class AccountChange:
    field: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"~ account.{self.field}: {self.old!r} -> {self.new!r}"


def describe(change: Any) -> str:
    """One diff line for a change of any section (slices give their changes a ``describe``)."""
    text = getattr(change, "describe", None)
    return text() if callable(text) else str(change)


async def export_config(c: Container, account_id: uuid.UUID) -> dict[str, Any]:
    account = await c.accounts.get_account(account_id)
    return {
        "version": VERSION,
        "account": {f: getattr(account, f) for f in _ACCOUNT_FIELDS},
        "directory": await export_directory(c.db, account_id),
        "queues": await export_queues(c.db, account_id),
        "routing": await export_routing(c.db, account_id),
    }


def dump_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, default_flow_style=False)


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping: YAML says keys are unique,
    and PyYAML lets the last one win, so a second ``Main:`` scheme or ``mon:`` line would
    silently replace the first in configuration kept as code."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: merged, not a key
            continue
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool) or key is None:
            if key in seen:
                line = key_node.start_mark.line + 1
                raise InvalidInput(f"line {line}: {key!r} is given twice", code="invalid_config")
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(text: str) -> dict[str, Any]:
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not valid YAML: {exc}", code="invalid_config") from exc
    except RecursionError as exc:  # [[[[... deeper than the parser's stack
        raise InvalidInput("the document is nested too deep", code="invalid_config") from exc
    if not isinstance(doc, dict):
        raise InvalidInput("the configuration must be a mapping", code="invalid_config")
    bad = lone_surrogate_path(doc)
    if bad is not None:
        raise InvalidInput(f"{bad}: not valid Unicode (a lone surrogate)", code="invalid_config")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise InvalidInput(f"unknown top-level keys: {sorted(unknown)}", code="invalid_config")
    if doc.get("version", VERSION) != VERSION:
        raise InvalidInput(f"unsupported version {doc.get('version')!r}", code="invalid_config")
    return doc


def _check_account_values(section: dict[str, Any]) -> None:
    check_account_values(section, code="invalid_config", prefix="account.")


async def apply_config(
    c: Container, account_id: uuid.UUID, doc: dict[str, Any], *, dry_run: bool
) -> list[Any]:
    account_section = doc.get("account") or {}
    if not isinstance(account_section, dict) or set(account_section) - set(_ACCOUNT_FIELDS):
        raise InvalidInput(
            f"account: only {', '.join(_ACCOUNT_FIELDS)} may be set", code="invalid_config"
        )
    _check_account_values(account_section)

    # Every section in ONE transaction, in dependency order (a queue's members and a scheme's
    # numbers are the directory's); each validates before writing, and any error or a dry run
    # rolls the whole document back, so a bad document changes nothing at all.
    async def apply(uow: UnitOfWork) -> list[Any]:
        changes: list[Any] = []
        account = await uow.session.get(Account, account_id)
        if account is None:
            raise InvalidInput("account not found", code="invalid_config")
        # A directory section alone must not leave a scheme ringing a renamed group.
        schemes_still_ring = await guard_scheme_references(uow, account_id)
        queues_keep_members = await guard_queue_members(uow, account_id)
        settings: list[AccountChange] = []
        for field, new in account_section.items():
            old = getattr(account, field)
            if new != old:
                settings.append(AccountChange(field, old, new))
                setattr(account, field, new)
        if settings:
            changed = tuple(change.field for change in settings)
            uow.emit(AccountSettingsChanged(account_id=account_id, changed=changed))
            changes.extend(settings)
        if "directory" in doc:
            changes.extend(await apply_directory_in(uow, account_id, doc["directory"] or {}))
        if "queues" in doc:
            changes.extend(await apply_queues_in(uow, account_id, doc["queues"] or []))
        if "routing" in doc:
            changes.extend(await apply_routing_in(uow, account_id, doc["routing"] or {}))
        if "queues" in doc:
            # Once queues are managed here, every scheme's queue step must name one of them
            # (checked after routing, so schemes may name queues this document defines).
            await check_queue_references_in(uow, account_id)
        await schemes_still_ring()
        await queues_keep_members()
        return changes

    return await dry_runnable(c.db, apply, dry_run=dry_run)
