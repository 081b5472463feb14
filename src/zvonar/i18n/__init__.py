"""Translation layer: catalogs (en, ru, uk), CLDR plurals and language negotiation.

One layer serves the web UI now and e-mails and voice prompts later, so every user-visible text
goes through :func:`translate` (or a :class:`Translator` bound to one language).
"""

from zvonar.i18n.messages import (
    Catalog,
    CatalogError,
    TranslationError,
    Translator,
    catalog,
    parse_catalog,
    placeholders,
    translate,
)
from zvonar.i18n.negotiate import FALLBACK, LANGUAGES, negotiate, parse_accept_language, supported
from zvonar.i18n.plurals import PluralCategory, plural_category

__all__ = [
    "FALLBACK",
    "LANGUAGES",
    "Catalog",
    "CatalogError",
    "PluralCategory",
    "TranslationError",
    "Translator",
    "catalog",
    "negotiate",
    "parse_accept_language",
    "parse_catalog",
    "placeholders",
    "plural_category",
    "supported",
    "translate",
]
