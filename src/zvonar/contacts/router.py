"""HTTP endpoints of contacts: CRUD with tag/q filters, and the CSV import.

Reads need ``contacts.read``, writes ``contacts.write`` (checked in the service). Error codes
beyond the generic ones: ``invalid_phone_number``,
``invalid_email``, ``invalid_csv``, ``invalid_csv_header`` (422); ``number_taken``,
``external_id_taken`` (409); ``import_too_large`` (429 via LimitExceeded), ``body_too_large``
(413), ``unsupported_media_type`` (415).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.datastructures import UploadFile

from zvonar.api.deps import AppContainer, CurrentPrincipal
from zvonar.api.pagination import Page, Paging, page_of, search_query
from zvonar.contacts.csvimport import MAX_IMPORT_BYTES, MAX_REPORTED_ROWS
from zvonar.contacts.schemas import (
    ContactIn,
    ContactOut,
    ContactPatch,
    ImportMergedRow,
    ImportOut,
    ImportRowError,
)
from zvonar.contacts.service import ContactService, ContactView
from zvonar.core.errors import InvalidInput

router = APIRouter(tags=["contacts"])

Search = Annotated[str | None, search_query("Name/company substring, or 3+ digits of a number.")]
TagFilter = Annotated[
    str | None, Query(min_length=1, max_length=32, pattern=r"^[\w-]+$", description="One tag.")
]


def contact_service(c: AppContainer) -> ContactService:
    return c.contacts


Contacts = Annotated[ContactService, Depends(contact_service)]


def _out(v: ContactView) -> ContactOut:
    c = v.contact
    return ContactOut(
        id=c.id,
        name=c.name,
        company=c.company,
        tags=list(c.tags),
        city=c.city,
        numbers=list(v.numbers),
        email=c.email,
        notes=c.notes,
        external_id=c.external_id,
        manager_id=c.manager_id,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


@router.get("/contacts", response_model=Page[ContactOut])
async def list_contacts(
    p: CurrentPrincipal, svc: Contacts, page: Paging, q: Search = None, tag: TagFilter = None
) -> Page[ContactOut]:
    found = await svc.list_contacts(p, tag=tag, q=q, limit=page.limit, offset=page.offset)
    return page_of(found, page, _out)


@router.post("/contacts", response_model=ContactOut, status_code=201)
async def create_contact(body: ContactIn, p: CurrentPrincipal, svc: Contacts) -> ContactOut:
    return _out(await svc.create_contact(p, body))


_CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


async def _read_limited(request: Request) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_IMPORT_BYTES:
            raise HTTPException(413, f"the file exceeds {MAX_IMPORT_BYTES} bytes")
    return bytes(data)


@router.post("/contacts/import", response_model=ImportOut, openapi_extra=_CSV_BODY)
async def import_contacts(request: Request, p: CurrentPrincipal, svc: Contacts) -> ImportOut:
    """Upsert contacts by phone number from CSV with a header row: ``name``, ``phones`` and
    optionally ``company``, ``tags``, ``city``, ``email``, ``notes``, ``external_id``,
    ``manager`` (or their Russian or Ukrainian names: ``Имя``/``Ім'я``, ``Телефоны``/
    ``Телефони``…; any case; empty header cells name no column). Several phones or tags go in
    one cell separated by ";". Bad rows are listed, never fatal; rows of the file that name the
    same contact are merged into its first one and listed too."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        async with request.form(max_files=1, max_fields=4) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidInput(
                    "send the CSV in a multipart part named 'file'", code="invalid_csv"
                )
            data = await upload.read(MAX_IMPORT_BYTES + 1)
        if len(data) > MAX_IMPORT_BYTES:
            raise HTTPException(413, f"the file exceeds {MAX_IMPORT_BYTES} bytes")
    elif media in ("text/csv", "text/plain", "application/csv"):
        data = await _read_limited(request)
    else:
        raise HTTPException(415, "send text/csv or multipart/form-data")
    report = await svc.import_csv(p, data)
    return ImportOut(
        created=report.created,
        updated=report.updated,
        merged=len(report.merged),
        failed=report.failed,
        merged_rows=[
            ImportMergedRow(row=m.line, into_row=m.into) for m in report.merged[:MAX_REPORTED_ROWS]
        ],
        merged_rows_truncated=len(report.merged) > MAX_REPORTED_ROWS,
        errors=[
            ImportRowError(row=e.line, code=e.code, message=e.message)
            for e in report.errors[:MAX_REPORTED_ROWS]
        ],
        errors_truncated=report.failed > MAX_REPORTED_ROWS,
    )


@router.get("/contacts/{contact_id}", response_model=ContactOut)
async def get_contact(contact_id: uuid.UUID, p: CurrentPrincipal, svc: Contacts) -> ContactOut:
    return _out(await svc.get_contact(p, contact_id))


@router.patch("/contacts/{contact_id}", response_model=ContactOut)
async def update_contact(
    contact_id: uuid.UUID, body: ContactPatch, p: CurrentPrincipal, svc: Contacts
) -> ContactOut:
    return _out(await svc.update_contact(p, contact_id, body))


@router.delete("/contacts/{contact_id}", status_code=204)
async def delete_contact(contact_id: uuid.UUID, p: CurrentPrincipal, svc: Contacts) -> None:
    await svc.delete_contact(p, contact_id)
