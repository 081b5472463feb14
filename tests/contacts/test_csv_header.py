"""The CSV header as people's spreadsheets write it: Russian and Ukrainian column names, any
case, and the empty trailing column Excel adds. Pure parsing, no database."""

from __future__ import annotations

import pytest

from zvonar.contacts import csvimport
from zvonar.core.errors import InvalidInput


def parse(text: str) -> tuple[list[csvimport.ImportRow], list[csvimport.RowError]]:
    return csvimport.parse_csv(text.encode(), "RU")


@pytest.mark.parametrize(
    "header",
    [
        "Имя;Компания;Телефоны;Теги;Город;Эл. почта;Примечания;Внешний ID;Менеджер",
        "Ім'я;Компанія;Телефони;Теги;Місто;Ел. пошта;Нотатки;Зовнішній ID;Менеджер",
        "ІМ’Я;КОМПАНІЯ;ТЕЛЕФОН;МІТКИ;МІСТО;E-mail;ПРИМІТКИ;ЗОВНІШНІЙ  ID;МЕНЕДЖЕР",
        "имя;компания;телефон;метки;город;электронная почта;заметки;внешний id;менеджер",
        "Name;Company;Phones;Tags;City;Email;Notes;External_ID;Manager",
    ],
    ids=["ru", "uk", "uk-capitals", "ru-lower-case", "en"],
)
def test_russian_and_ukrainian_column_names_are_the_english_ones(header: str) -> None:
    rows, errors = parse(
        header + "\nИван;ООО Альфа;8 916 123-45-67;vip;Омск;ivan@alfa.ru;звонить;crm-1;102\n"
    )
    assert errors == []
    (row,) = rows
    assert (row.name, row.company, row.numbers, row.tags, row.city) == (
        "Иван",
        "ООО Альфа",
        ("+79161234567",),
        ("vip",),
        "Омск",
    )
    assert (row.email, row.notes, row.external_id, row.manager) == (
        "ivan@alfa.ru",
        "звонить",
        "crm-1",
        "102",
    )


def test_a_column_named_twice_in_two_languages_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse("name;Имя;phones\nA;B;+79161234567\n")
    assert caught.value.code == "invalid_csv_header"
    with pytest.raises(InvalidInput) as caught:
        parse("Имя;Телефон;Должность\nA;+79161234567;x\n")
    # what the file calls it, so the admin finds it
    assert caught.value.details["unknown"] == ["Должность"]


def test_the_empty_column_excel_adds_is_ignored() -> None:
    # Excel ends every line with the separator when the sheet has an empty column.
    rows, errors = parse("name;phones;\nA;+79161234567;\nB;+79161234568\n")
    assert errors == []
    assert [r.name for r in rows] == ["A", "B"]
    rows, errors = parse("name;;phones;;\nA;;+79161234567;;\n")
    assert errors == [] and rows[0].numbers == ("+79161234567",)


def test_a_value_under_a_column_without_a_name_fails_that_row() -> None:
    # Nobody knows what it was meant to be: the row is reported, the others go in.
    rows, errors = parse("name;phones;\nA;+79161234567;oops\nB;+79161234568;\n")
    assert [r.name for r in rows] == ["B"]
    assert [(e.line, e.code) for e in errors] == [(2, "unnamed_column")]
    with pytest.raises(InvalidInput):  # the required ones still are
        parse("name;\nA;\n")
