"""Choosing the language of a page, an e-mail or a voice prompt.

Order: the user's own setting, then the browser's ``Accept-Language`` (RFC 9110 §12.5.4, weighted
by q-values), then the account's language, then the configured default.
"""

from __future__ import annotations

import math

LANGUAGES: tuple[str, ...] = ("en", "ru", "uk")
FALLBACK = "en"

# A header is client-controlled: bound the work spent on it.
_MAX_HEADER = 4096
_MAX_RANGES = 32


def supported(lang: str | None) -> str | None:
    """``lang`` normalised to a shipped language (``"RU"``, ``"uk-UA"`` → ``"ru"``, ``"uk"``)."""
    if not lang:
        return None
    primary = lang.strip().lower().replace("_", "-").split("-", 1)[0]
    return primary if primary in LANGUAGES else None


def _qvalue(params: list[str]) -> float | None:
    """The ``q`` weight among a range's parameters; ``None`` when it is malformed."""
    for param in params:
        name, sep, value = param.partition("=")
        if name.strip().lower() != "q":
            continue
        if not sep:
            return None
        try:
            q = float(value.strip())
        except ValueError:
            return None
        # RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
        if not math.isfinite(q) or not 0.0 <= q <= 1.0:
            return None
        return q
    return 1.0


def parse_accept_language(header: str | None) -> list[tuple[str, float]]:
    """Language ranges with their weights, best first (ties keep header order); q=0 dropped."""
    if not header:
        return []
    ranges: list[tuple[str, float]] = []
    for item in header[:_MAX_HEADER].split(",")[:_MAX_RANGES]:
        tag, *params = item.split(";")
        tag = tag.strip().lower()
        q = _qvalue(params)
        if not tag or q is None or q == 0.0:
            continue
        ranges.append((tag, q))
    ranges.sort(key=lambda r: -r[1])  # sort is stable: equal weights keep the sender's order
    return ranges


def from_accept_language(header: str | None) -> str | None:
    """The best shipped language the header asks for (basic filtering, RFC 4647 §3.3.1)."""
    for tag, _q in parse_accept_language(header):
        if tag == "*":
            # "Anything else is fine": leave the choice to the account and the default.
            return None
        lang = supported(tag)
        if lang is not None:
            return lang
    return None


def negotiate(
    accept_language: str | None,
    user_lang: str | None,
    account_lang: str | None,
    default: str,
) -> str:
    """The language to speak: user setting, then Accept-Language, then account, then default."""
    return (
        supported(user_lang)
        or from_accept_language(accept_language)
        or supported(account_lang)
        or supported(default)
        or FALLBACK
    )
