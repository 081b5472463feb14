"""CSV contact import, the pure half: bytes → validated rows and per-row errors. No I/O.

Columns (header row, any order, case-insensitive): ``name``, ``phones`` (required), ``company``,
``tags``, ``city``, ``email``, ``notes``, ``external_id``, ``manager`` (the extension of the
employee who looks after the contact), or their Russian or Ukrainian names (:data:`ALIASES`).
An empty header cell names no column: Excel writes one for a trailing empty column
(``name;phones;``); a value under it fails that row. ``phones`` and ``tags`` hold several
values separated by ";" , "," or "|". A bad row is reported with its line and a stable code and
never stops the others; only an unreadable file or header fails the whole import.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from pydantic import ValidationError

from zvonar.contacts.schemas import ContactIn
from zvonar.core.errors import InvalidInput, LimitExceeded
from zvonar.directory import phone, rules

MAX_IMPORT_BYTES = 32 * 1024 * 1024
MAX_IMPORT_ROWS = 200_000
# Failed and merged rows an import answer lists (each list says when it was cut short).
MAX_REPORTED_ROWS = 1000

COLUMNS = (
    "name",
    "company",
    "phones",
    "tags",
    "city",
    "email",
    "notes",
    "external_id",
    "manager",
)
_REQUIRED = frozenset({"name", "phones"})
# The UI speaks Russian and Ukrainian, and so do its users' spreadsheets. Keys are compared as
# :func:`_header_key` leaves them (case-folded, one space, one kind of apostrophe).
ALIASES: dict[str, str] = {
    **dict.fromkeys(("имя", "фио", "ім'я", "піб"), "name"),
    **dict.fromkeys(("компания", "организация", "компанія", "організація"), "company"),
    **dict.fromkeys(("phone", "телефон", "телефоны", "телефони"), "phones"),
    **dict.fromkeys(("теги", "метки", "мітки"), "tags"),
    **dict.fromkeys(("город", "місто"), "city"),
    **dict.fromkeys(
        (
            "e-mail",
            "эл. почта",
            "электронная почта",
            "почта",
            "ел. пошта",
            "електронна пошта",
            "пошта",
        ),
        "email",
    ),
    **dict.fromkeys(
        ("примечания", "примечание", "заметки", "примітки", "примітка", "нотатки"), "notes"
    ),
    **dict.fromkeys(
        (
            "external id",
            "внешний id",
            "внешний идентификатор",
            "зовнішній id",
            "зовнішній ідентифікатор",
        ),
        "external_id",
    ),
    **dict.fromkeys(("менеджер", "ответственный", "відповідальний"), "manager"),
}
# Ukrainian writes its apostrophe (ім'я) as any of these; the keys above use "'".
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "`": "'", "\u2018": "'"})
_SPLIT = str.maketrans({";": ",", "|": ","})


@dataclass(frozen=True)
class ImportRow:
    line: int
    name: str
    numbers: tuple[str, ...]
    # None: the cell was empty — an upsert keeps the stored value.
    company: str | None
    tags: tuple[str, ...] | None
    city: str | None
    email: str | None
    notes: str | None
    external_id: str | None
    manager: str | None = None  # an extension; the service resolves it in the account


@dataclass(frozen=True)
class RowError:
    line: int
    code: str
    message: str


def _decode(data: bytes) -> str:
    # UTF-8 (with or without the BOM Excel writes); else Windows-1251, what Russian Excel saves.
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1251")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            "the file is neither UTF-8 nor Windows-1251", code="invalid_csv"
        ) from exc


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.translate(_SPLIT).split(",") if part.strip()]


def _row(line: int, cells: dict[str, str], country: str | None) -> ImportRow | RowError:
    raw = {k: v.strip() for k, v in cells.items()}
    phones = _split(raw.get("phones", ""))
    if not phones:
        return RowError(line, "phone_required", "the row has no phone number")
    tags = [t.lower() for t in _split(raw.get("tags", ""))]
    manager = raw.get("manager") or None
    if manager is not None and not (manager.isdigit() and len(manager) <= 16):
        return RowError(line, "validation_error", "manager: an employee's extension (digits)")
    form = {
        "name": raw.get("name", ""),
        "numbers": phones,
        "tags": tags,
        **{k: raw[k] for k in ("company", "city", "email", "notes", "external_id") if raw.get(k)},
    }
    try:
        data = ContactIn.model_validate(form)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return RowError(line, "validation_error", f"{where}: {first['msg']}")
    try:
        numbers = tuple(dict.fromkeys(phone.normalize(n, country, field="phones") for n in phones))
        email = rules.email(data.email) if data.email else None
    except InvalidInput as exc:
        return RowError(line, exc.code, exc.message)
    return ImportRow(
        line=line,
        name=data.name,
        numbers=numbers,
        company=data.company,
        tags=tuple(dict.fromkeys(data.tags)) if data.tags else None,
        city=data.city,
        email=email,
        notes=data.notes,
        external_id=data.external_id,
        manager=manager,
    )


def _header_key(cell: str) -> str:
    return " ".join(cell.translate(_APOSTROPHES).casefold().split())


def _columns(header: list[str]) -> list[str | None]:
    """The column each header cell names (None: an empty cell, no column), or
    ``InvalidInput(code="invalid_csv_header")`` naming what is missing and what is unknown as
    the file writes it."""
    columns: list[str | None] = []
    unknown: list[str] = []
    for cell in header:
        key = _header_key(cell)
        column = key if key in COLUMNS else ALIASES.get(key)
        if key and column is None:
            unknown.append(cell.strip())
        columns.append(column if key else None)
    named = [c for c in columns if c is not None]
    missing = _REQUIRED - set(named)
    if missing or unknown or len(set(named)) != len(named):
        raise InvalidInput(
            "the header must name distinct columns from " + ", ".join(COLUMNS),
            code="invalid_csv_header",
            missing=sorted(missing),
            unknown=unknown,
        )
    return columns


def _cells(line: int, columns: list[str | None], cells: list[str]) -> dict[str, str] | RowError:
    # Excel writes the separators of empty trailing columns on some lines only (the first 16
    # of a sheet, in versions that pad): a short line lacks only cells nobody named.
    width = len(cells)
    if width < len(columns) and all(c is None for c in columns[width:]):
        cells = cells + [""] * (len(columns) - width)
    if len(cells) != len(columns):
        return RowError(line, "wrong_column_count", f"expected {len(columns)} cells")
    named: dict[str, str] = {}
    for column, cell in zip(columns, cells, strict=True):
        if column is not None:
            named[column] = cell
        elif cell.strip():
            return RowError(
                line, "unnamed_column", "a value under a column the header does not name"
            )
    return named


def _delimiter(text: str) -> str:
    """From the header line alone: Excel in a Russian locale saves ";"-separated CSV. (csv.Sniffer
    guesses from data too, where phones like "8 916; 8 495" mislead it.)"""
    first = text.split("\n", 1)[0]
    for candidate in (",", ";", "\t"):
        if candidate in first:
            return candidate
    return ","


def parse_csv(data: bytes, country: str | None) -> tuple[list[ImportRow], list[RowError]]:
    """Validated rows and the errors of the others; ``InvalidInput`` for a bad file or header,
    ``LimitExceeded`` over :data:`MAX_IMPORT_BYTES` / :data:`MAX_IMPORT_ROWS`."""
    if len(data) > MAX_IMPORT_BYTES:
        raise LimitExceeded(f"the file exceeds {MAX_IMPORT_BYTES} bytes", code="import_too_large")
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise InvalidInput("the file has no header row", code="invalid_csv") from exc
    columns = _columns(header)
    rows: list[ImportRow] = []
    errors: list[RowError] = []
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # Broken quoting: the csv module cannot resync reliably, so stop with what we have.
            errors.append(RowError(reader.line_num, "invalid_csv", str(exc)))
            break
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(rows) + len(errors) >= MAX_IMPORT_ROWS:
            raise LimitExceeded(f"over {MAX_IMPORT_ROWS} rows", code="import_too_large")
        named = _cells(line, columns, cells)
        result = named if isinstance(named, RowError) else _row(line, named, country)
        if isinstance(result, RowError):
            errors.append(result)
        else:
            rows.append(result)
    return rows, errors
