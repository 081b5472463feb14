"""HTTP endpoints for an account's own prompts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import HTTPException
from pydantic import BaseModel

from zvonar.api.deps import AppContainer, CurrentPrincipal
from zvonar.prompts.service import MAX_UPLOAD_BYTES

router = APIRouter(tags=["prompts"])

Lang = Annotated[str, Path(pattern="^(en|ru|uk)$")]
Key = Annotated[str, Path(pattern="^[a-z][a-z0-9_]{0,39}$")]

_WAV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class PromptOut(BaseModel):
    key: str
    language: str
    seconds: float


@router.get("/prompts", response_model=list[PromptOut])
async def list_prompts(p: CurrentPrincipal, c: AppContainer) -> list[PromptOut]:
    return [PromptOut(**vars(s)) for s in await c.prompts.list(p)]


@router.put("/prompts/{language}/{key}", response_model=PromptOut, openapi_extra=_WAV_BODY)
async def upload_prompt(
    language: Lang, key: Key, request: Request, p: CurrentPrincipal, c: AppContainer
) -> PromptOut:
    """Upload a WAV (any common format and rate); it is stored as 8 kHz mono and played
    instead of the default prompt ``key`` (e.g. ``greeting``, ``hold_music``) in ``language``."""
    data = await request.body()
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"the file exceeds {MAX_UPLOAD_BYTES} bytes")
    return PromptOut(**vars(await c.prompts.store(p, language, key, data)))


@router.delete("/prompts/{language}/{key}", status_code=204)
async def delete_prompt(language: Lang, key: Key, p: CurrentPrincipal, c: AppContainer) -> None:
    await c.prompts.delete(p, language, key)
