"""Place names as people write them (outbound/places.py), and the contact-city caller-ID rule
that reads them: designators and region adjectives, in Russian, Ukrainian and English."""

from __future__ import annotations

import pytest

from zvonar.outbound.callerid import CallerIdChoice, CallerIdRule, OwnNumber, select_caller_id
from zvonar.outbound.places import place_names, same_place

NOVOSIBIRSK = "+73832001122"  # Novosibirsk / Новосибирская обл.
MOSCOW = "+74951112233"  # Moscow / Московская обл.
SPB = "+78123334455"  # St Petersburg / г. Санкт-Петербург
TOMSK = "+73822123456"  # Tomsk / Томская обл.
KALUGA = "+74842123456"  # Kaluga / Калужская обл.
TULA = "+74872123456"  # Tula / Тульская обл.
KRASNOYARSK = "+73912123456"  # Krasnoyarsk Territory / Красноярский край
NOVGOROD = "+78162123456"  # Veliky Novgorod / Новгородская обл.
KYIV = "+380441234567"  # Kyiv city / м. Київ
LVIV = "+380322123456"  # Bryukhovichi/Lviv, Lviv / Брюховичі/Львів, Львівська
OURS = [OwnNumber(n) for n in (MOSCOW, NOVOSIBIRSK, SPB, TOMSK, KALUGA, TULA, KYIV, LVIV)]
MOBILE = "+79161112233"  # geocodes to its country only: the city rule decides


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("г. Новосибирск", ("новосибирск",)),
        ("г.Новосибирск", ("новосибирск",)),
        ("гор. Новосибирск", ("новосибирск",)),
        ("город  Новосибирск ", ("новосибирск",)),
        ("Новосибирская область", ("новосибирская",)),
        ("Новосибирская обл.", ("новосибирская",)),
        ("Красноярский край", ("красноярский",)),
        ("Орёл", ("орел",)),
        ("м. Київ", ("київ",)),
        ("місто Київ", ("київ",)),
        ("Львівська обл.", ("львівська",)),
        ("Брюховичі/Львів, Львівська", ("брюховичі", "львів", "львівська")),
        ("Kyiv city", ("kyiv",)),
        ("Novosibirsk Oblast", ("novosibirsk",)),
        ("Новосибирск, Россия", ("новосибирск", "россия")),
        ("Ленинский р-н, г. Новосибирск", ("ленинский", "новосибирск")),
        ("Кам’янське", ("кам'янське",)),
        ("г.", ()),
        ("", ()),
    ],
)
def test_place_names_drop_designators_and_split_alternatives(
    text: str, names: tuple[str, ...]
) -> None:
    assert place_names(text) == names


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("новосибирск", "новосибирская"),
        ("москва", "московская"),
        ("калуга", "калужская"),
        ("тула", "тульская"),
        ("омск", "омская"),
        ("тверь", "тверская"),
        ("пенза", "пензенская"),
        ("хабаровск", "хабаровский"),
        ("новгород", "новгородская"),
        ("київ", "київська"),
        ("одеса", "одеська"),
        ("вінниця", "вінницька"),
        ("хмельницький", "хмельницька"),  # both adjectives of one stem
        ("новосибирск", "новосибирск"),
    ],
)
def test_a_city_is_the_place_of_its_region_adjective(a: str, b: str) -> None:
    assert same_place(a, b) and same_place(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("краснодар", "красноярский"),  # a shared "красно-" is no region of the other
        ("красноярск", "краснодарский"),
        ("курган", "курская"),
        ("курск", "курганская"),
        ("калуга", "калининградская"),
        ("нижний новгород", "новгородская"),  # Nizhny is "Нижегородская"
        ("омская", "томская"),
        ("новосибирская", "новгородская"),
        ("орел", "орловская"),  # too short a stem to tell
        ("ом", "омская"),
        ("москва", "мурманская"),
        ("санкт-петербург", "ленинградская"),
    ],
)
def test_other_places_never_match(a: str, b: str) -> None:
    assert not same_place(a, b) and not same_place(b, a)


@pytest.mark.parametrize(
    ("city", "ours"),
    [
        ("Новосибирск", NOVOSIBIRSK),
        ("новосибирск", NOVOSIBIRSK),
        ("Novosibirsk", NOVOSIBIRSK),
        ("г. Новосибирск", NOVOSIBIRSK),
        ("г.Новосибирск", NOVOSIBIRSK),
        ("Новосибирская область", NOVOSIBIRSK),
        ("Новосибирск, Россия", NOVOSIBIRSK),
        ("гор. Москва", MOSCOW),
        ("Московская обл.", MOSCOW),
        ("г. Санкт-Петербург", SPB),
        ("Калуга", KALUGA),
        ("Тула", TULA),
        ("Томская область", TOMSK),
        ("м. Київ", KYIV),
        ("Київська область", KYIV),
        ("Kyiv", KYIV),
        ("Львів", LVIV),
        ("Львівська обл.", LVIV),
    ],
)
def test_the_contacts_city_finds_our_number_however_it_is_written(city: str, ours: str) -> None:
    assert select_caller_id(MOBILE, OURS, contact_city=city, trunk_default=MOSCOW) == (
        CallerIdChoice(ours, CallerIdRule.contact_city)
    )


@pytest.mark.parametrize(
    "city", ["Омск", "Краснодар", "Нижний Новгород", "Омская область", "г.", "Россия", "обл."]
)
def test_a_city_we_have_no_number_in_gets_the_default(city: str) -> None:
    ours = [*OURS, OwnNumber(KRASNOYARSK), OwnNumber(NOVGOROD)]
    choice = select_caller_id(MOBILE, ours, contact_city=city, trunk_default=MOSCOW)
    assert choice == CallerIdChoice(MOSCOW, None), city


def test_the_exact_name_wins_over_a_region_adjective() -> None:
    """Moscow's 495 geocodes (in Russian) to "Московская обл.", its 499 to "г. Москва": each
    spelling finds the number named exactly so, wherever it stands in the list."""
    moscow_499 = "+74992223344"
    ours = [OwnNumber(MOSCOW), OwnNumber(moscow_499)]
    assert select_caller_id(MOBILE, ours, contact_city="Москва").e164 == moscow_499
    ours.reverse()
    assert select_caller_id(MOBILE, ours, contact_city="Московская область").e164 == MOSCOW
