"""HTTP endpoints for an account's own prompts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from zvonar.api.deps import AppContainer, CurrentPrincipal
from zvonar.prompts.service import MAX_UPLOAD_BYTES
from zvonar.prompts.speech import MAX_CHARS

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


class SpeechIn(BaseModel):
    # Unknown fields are refused as everywhere (StrictInput), but the text keeps its spaces:
    # a blank one is the service's invalid_speech_text.
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1,
        max_length=MAX_CHARS,
        description="What the prompt says, in the prompt's language (plain text).",
        examples=["Звонок на линию «Курорты»"],
    )


@router.post("/prompts/{language}/{key}/speech", response_model=PromptOut)
async def speak_prompt(
    language: Lang, key: Key, body: SpeechIn, p: CurrentPrincipal, c: AppContainer
) -> PromptOut:
    """Make prompt ``key`` in ``language`` from text: spoken by the server's synthesizer
    (espeak-ng, the voice of the language) and stored as an upload would be — e.g. a ring
    step's ``announce`` or a queue's ``agent_announce``. ``503 speech_unavailable`` where
    the server has no synthesizer; ``422 invalid_speech_text`` for control characters."""
    return PromptOut(**vars(await c.prompts.speak(p, language, key, body.text)))


@router.delete("/prompts/{language}/{key}", status_code=204)
async def delete_prompt(language: Lang, key: Key, p: CurrentPrincipal, c: AppContainer) -> None:
    await c.prompts.delete(p, language, key)
