"""The shipped catalogs agree with each other, and translate() falls back and formats honestly."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from zvonar.i18n import (
    FALLBACK,
    LANGUAGES,
    Catalog,
    CatalogError,
    TranslationError,
    Translator,
    catalog,
    parse_catalog,
    placeholders,
    translate,
)
from zvonar.i18n.plurals import CATEGORIES


def test_every_key_exists_in_every_catalog() -> None:
    reference = catalog(FALLBACK).keys()
    assert len(reference) > 10
    for lang in LANGUAGES:
        keys = catalog(lang).keys()
        assert keys - reference == set(), f"{lang} has keys English lacks"
        assert reference - keys == set(), f"{lang} lacks keys"


def test_every_key_has_the_same_placeholders_everywhere() -> None:
    english = catalog(FALLBACK).messages
    for lang in LANGUAGES:
        messages = catalog(lang).messages
        for key, entry in english.items():
            assert placeholders(messages[key]) == placeholders(entry), f"{lang}: {key}"


def test_plural_messages_give_exactly_the_forms_of_their_language() -> None:
    plural_keys = {k for k, v in catalog(FALLBACK).messages.items() if not isinstance(v, str)}
    assert plural_keys, "the catalogs should exercise plural messages"
    for lang in LANGUAGES:
        for key in plural_keys:
            entry = catalog(lang).messages[key]
            assert not isinstance(entry, str), f"{lang}: {key} must be plural too"
            assert set(entry) == set(CATEGORIES[lang]), f"{lang}: {key}"


def test_translations_are_not_left_in_english() -> None:
    # Brand names and placeholders-only strings may match English; real sentences must not.
    english = catalog(FALLBACK).messages
    for lang in ("ru", "uk"):
        messages = catalog(lang).messages
        same = {k for k, v in english.items() if isinstance(v, str) and messages[k] == v}
        assert same <= {"app.name", "app.page_title"}, f"{lang}: untranslated {sorted(same)}"


@pytest.mark.parametrize(
    ("lang", "count", "expected"),
    [
        ("en", 1, "You stay signed in on this device for 1 hour."),
        ("en", 12, "You stay signed in on this device for 12 hours."),
        ("ru", 21, "Вы останетесь в системе на этом устройстве 21 час."),
        ("ru", 3, "Вы останетесь в системе на этом устройстве 3 часа."),
        ("ru", 12, "Вы останетесь в системе на этом устройстве 12 часов."),
        ("uk", 22, "Ви залишатиметеся в системі на цьому пристрої 22 години."),
        ("uk", 111, "Ви залишатиметеся в системі на цьому пристрої 111 годин."),
        ("uk", Decimal("1.5"), "Ви залишатиметеся в системі на цьому пристрої 1.5 години."),
    ],
)
def test_translate_picks_the_plural_form(lang: str, count: int | Decimal, expected: str) -> None:
    assert translate("home.session_hours", lang, count=count) == expected


def test_translate_formats_and_keeps_params_literal() -> None:
    name = "{role} <b>"
    assert translate("home.greeting", "ru", name=name) == "Здравствуйте, {role} <b>!"
    assert Translator("uk")("home.greeting", name="Оля") == "Вітаємо, Оля!"


def test_missing_key_is_marked_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="zvonar.i18n.messages"):
        assert translate("no.such.key", "uk") == "⟦no.such.key⟧"
    assert "no.such.key" in caplog.text


def test_unknown_language_falls_back_to_english() -> None:
    assert translate("login.submit", "de") == translate("login.submit", "en") == "Sign in"


def test_missing_parameter_and_count_are_errors() -> None:
    with pytest.raises(TranslationError, match="name"):
        translate("home.greeting", "en")
    with pytest.raises(TranslationError, match="count"):
        translate("home.session_hours", "ru")
    with pytest.raises(TranslationError, match="count"):
        translate("home.session_hours", "ru", count=True)


def test_key_missing_in_one_language_falls_back_to_english(monkeypatch: pytest.MonkeyPatch) -> None:
    partial = parse_catalog("uk", '[login]\ntitle = "Вхід"\n')
    real = catalog

    def fake(lang: str) -> Catalog:
        return partial if lang == "uk" else real(lang)

    monkeypatch.setattr("zvonar.i18n.messages.catalog", fake)
    assert translate("login.title", "uk") == "Вхід"
    assert translate("login.submit", "uk") == "Sign in"


@pytest.mark.parametrize(
    ("lang", "source", "message"),
    [
        ("ru", '[a.n]\none = "{count}"\nother = "{count}"\n', "plural forms"),
        ("en", 'a = "{user.__class__}"\n', "plain name"),
        ("en", 'a = "{0}"\n', "plain name"),
        ("en", 'a = "{x!r}"\n', "plain name"),
        ("en", 'a = "{"\n', "bad braces"),
        ("en", "a = 1\n", "expected a string"),
        ("en", "a = \n", "en:"),
        ("de", 'a = "b"\n', "unsupported"),
    ],
)
def test_bad_catalogs_are_refused(lang: str, source: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(lang, source)


def test_nested_tables_become_dotted_keys() -> None:
    source = '[a]\nb = "x"\n[a.c]\nd = "y {n}"\n[a.p]\none = "1"\nother = "{count}"\n'
    parsed = parse_catalog("en", source)
    assert parsed.messages == {
        "a.b": "x",
        "a.c.d": "y {n}",
        "a.p": {"one": "1", "other": "{count}"},
    }
