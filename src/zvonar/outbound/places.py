"""Place names as people and the geocoder write them, for the contact-city caller-ID rule.
Pure: text in, text out.

A contact card says "г. Новосибирск", "Новосибирская область" or "Novosibirsk"; the geocoder
describes our number as "Novosibirsk" (English) and "Новосибирская обл." (Russian), a Ukrainian
one as "м. Київ" or "Брюховичі/Львів, Львівська". :func:`place_names` reduces both sides to
bare names (designators such as "г.", "область", "м.", "city" dropped; alternatives split), and
:func:`same_place` compares two of them, a city matching its own region's adjective.
"""

from __future__ import annotations

import re

# Words that say what kind of place follows or precedes, not which: Russian, Ukrainian,
# Kazakh and the geocoder's English. Single letters ("г", "м", "с", "п") go anyway.
_DESIGNATORS = frozenset(
    {
        # ru
        "гор", "город", "обл", "область", "край", "респ", "республика", "ао", "автономный",
        "автономная", "округ", "р-н", "район", "пос", "поселок", "пгт", "рп", "село",
        "деревня", "станица", "ст",
        # uk
        "місто", "смт", "селище", "республіка", "автономна",
        # kk
        "облысы", "қаласы",
        # en
        "city", "town", "oblast", "obl", "region", "territory", "krai", "kray", "district",
        "raion", "rayon", "province", "republic", "of", "the",
    }
)  # fmt: skip
# Words of letters, hyphenated ("Санкт-Петербург", "р-н") or with an apostrophe ("Кам'янське").
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
# Alternatives and additions: "Брюховичі/Львів, Львівська", "Новосибирск (Академгородок)".
_PARTS = re.compile(r"[,/;()]")
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "`": "'", "ё": "е"})
# A region's adjective: the city's name (less its last letters, which change: Москва →
# Московская, Калуга → Калужская), the -sk- suffix and an inflection; ru and uk alike.
_ADJECTIVE = re.compile(r"^(?P<stem>.+?(?:ск|цк|зк|ськ|цьк|зьк))(?:ая|ий|ое|ой|ый|а|е)$")
# How the city and the adjective's stem may differ past their common beginning: the city's
# changed ending (Моск|ва), and the stem's own (Моск|овск: a linking vowel or two and -ск).
_CITY_ENDING = 2
_STEM_ENDING = 4
# Shorter common beginnings say nothing ("Ор|ёл" and "Ор|ловская", "Кур|ган" and "Кур|ская").
_MIN_COMMON = 3


def place_names(text: str) -> tuple[str, ...]:
    """The bare, case-folded names ``text`` holds, in order ("г. Новосибирск" →
    ("новосибирск",); "Брюховичі/Львів, Львівська" → ("брюховичі", "львів", "львівська"))."""
    names: list[str] = []
    for part in _PARTS.split(text.casefold().translate(_APOSTROPHES)):
        words = [w for w in _WORD.findall(part) if len(w) > 1 and w not in _DESIGNATORS]
        if words:
            names.append(" ".join(words))
    return tuple(names)


def _stem(name: str) -> str | None:
    """The stem of a region adjective ("новосибирская" → "новосибирск"), None for a noun."""
    found = _ADJECTIVE.match(name)
    return found["stem"] if found else None


def same_place(a: str, b: str) -> bool:
    """Whether two bare names (:func:`place_names`) name one place: equal, or a city and its
    region's adjective ("новосибирск" ~ "новосибирская", "москва" ~ "московская", "київ" ~
    "київська"), or two forms of one adjective ("хмельницький" ~ "хмельницька"). Two different
    nouns never match, however they begin ("Краснодар", "Красноярск")."""
    if a == b:
        return True
    stem_a, stem_b = _stem(a), _stem(b)
    if stem_a is not None and stem_b is not None:
        return stem_a == stem_b
    if stem_b is not None:
        return _city_of(a, stem_b)
    if stem_a is not None:
        return _city_of(b, stem_a)
    return False


def _city_of(city: str, stem: str) -> bool:
    """Whether the region adjective of ``stem`` is ``city``'s: they begin alike, and differ
    only by the city's changed ending and the stem's suffix."""
    common = 0
    for x, y in zip(city, stem, strict=False):
        if x != y:
            break
        common += 1
    return (
        common >= _MIN_COMMON
        and len(city) - common <= _CITY_ENDING
        and len(stem) - common <= _STEM_ENDING
    )
