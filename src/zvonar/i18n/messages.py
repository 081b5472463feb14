"""Message catalogs and :func:`translate`: one layer for UI text, e-mails and voice prompts.

A catalog is one TOML file per language in ``catalogs/``. Tables nest into dotted keys
(``[login]`` + ``title = …`` is ``login.title``). A table whose keys are CLDR plural categories
(``one``/``few``/``many``/``other``) is a plural message: it must give exactly the forms its
language's rule can pick (``plurals.CATEGORIES``), and :func:`translate` chooses one by the
``count`` parameter. Placeholders are ``{name}`` (``str.format`` syntax, plain identifiers only).
"""

from __future__ import annotations

import logging
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, TypeAlias

from zvonar.i18n.negotiate import FALLBACK, LANGUAGES
from zvonar.i18n.plurals import ALL_CATEGORIES, CATEGORIES, plural_category

log = logging.getLogger(__name__)

Entry: TypeAlias = str | Mapping[str, str]

# What a key missing from every catalog renders as: impossible to overlook on a page, and easy
# for tests to search for.
MISSING_OPEN, MISSING_CLOSE = "⟦", "⟧"


class TranslationError(Exception):
    """A catalog or a call site is wrong (bad file, missing parameter, non-numeric count)."""


class CatalogError(TranslationError):
    pass


@dataclass(frozen=True)
class Catalog:
    lang: str
    messages: Mapping[str, Entry]

    def keys(self) -> frozenset[str]:
        return frozenset(self.messages)


def placeholders(entry: Entry) -> frozenset[str]:
    """The ``{names}`` an entry uses (for a plural entry: across all its forms)."""
    texts = [entry] if isinstance(entry, str) else list(entry.values())
    names: set[str] = set()
    for text in texts:
        for _literal, field, _spec, _conv in string.Formatter().parse(text):
            if field is not None:
                names.add(field)
    return frozenset(names)


def _check_template(lang: str, key: str, text: str) -> None:
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise CatalogError(f"{lang}: {key}: bad braces: {exc}") from None
    for _literal, field, spec, conversion in fields:
        if field is None:
            continue
        # Only plain names: "{user.__class__}" or "{0}" would let a catalog reach into objects.
        if not field.isidentifier() or spec or conversion:
            raise CatalogError(f"{lang}: {key}: placeholder {{{field}}} must be a plain name")


def _is_plural(table: Mapping[str, Any]) -> bool:
    return "other" in table and set(table) <= ALL_CATEGORIES


def _flatten(lang: str, table: Mapping[str, Any], prefix: str, out: dict[str, Entry]) -> None:
    for name, value in table.items():
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, str):
            _check_template(lang, key, value)
            out[key] = value
        elif isinstance(value, dict) and _is_plural(value):
            wanted = set(CATEGORIES[lang])
            if set(value) != wanted:
                raise CatalogError(
                    f"{lang}: {key}: plural forms {sorted(value)} != {sorted(wanted)}"
                )
            for category, text in value.items():
                if not isinstance(text, str):
                    raise CatalogError(f"{lang}: {key}.{category}: not a string")
                _check_template(lang, f"{key}.{category}", text)
            out[key] = dict(value)
        elif isinstance(value, dict):
            _flatten(lang, value, key, out)
        else:
            raise CatalogError(f"{lang}: {key}: expected a string or a table")


def parse_catalog(lang: str, text: str) -> Catalog:
    """Parse and validate one catalog's TOML source."""
    if lang not in LANGUAGES:
        raise CatalogError(f"unsupported language {lang!r}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{lang}: {exc}") from None
    messages: dict[str, Entry] = {}
    _flatten(lang, data, "", messages)
    return Catalog(lang=lang, messages=messages)


@cache
def catalog(lang: str) -> Catalog:
    """The shipped catalog of ``lang``, read once per process."""
    if lang not in LANGUAGES:
        raise CatalogError(f"unsupported language {lang!r}")
    source = resources.files("zvonar.i18n").joinpath("catalogs", f"{lang}.toml")
    return parse_catalog(lang, source.read_text(encoding="utf-8"))


def _lookup(key: str, lang: str) -> tuple[Entry, str] | None:
    for candidate in (lang, FALLBACK) if lang != FALLBACK else (FALLBACK,):
        entry = catalog(candidate).messages.get(key)
        if entry is not None:
            return entry, candidate
    return None


def translate(key: str, lang: str, /, **params: object) -> str:
    """The text of ``key`` in ``lang`` (English when that catalog lacks it), formatted.

    A plural message picks its form by ``count``. A key no catalog has renders as ``⟦key⟧``.
    """
    if lang not in LANGUAGES:
        lang = FALLBACK
    found = _lookup(key, lang)
    if found is None:
        log.warning("missing translation key %r", key)
        return f"{MISSING_OPEN}{key}{MISSING_CLOSE}"
    entry, entry_lang = found
    if entry_lang != lang:
        log.warning("translation key %r missing in %r, using %r", key, lang, entry_lang)
    if isinstance(entry, str):
        template = entry
    else:
        count = params.get("count")
        if isinstance(count, bool) or not isinstance(count, int | float | Decimal):
            raise TranslationError(f"{key}: a plural message needs a numeric count=")
        template = entry[plural_category(count, entry_lang)]
    try:
        return template.format_map(params)
    except KeyError as exc:
        raise TranslationError(f"{key}: missing parameter {exc.args[0]!r}") from None


@dataclass(frozen=True)
class Translator:
    """``translate`` bound to one language: what templates, mailers and prompt players hold."""

    lang: str

    def __call__(self, key: str, /, **params: object) -> str:
        return translate(key, self.lang, **params)
