"""What a waiting caller hears between offers: the queue's announcement, their position and
estimated wait, and the offer of a callback, as prompt files in the caller's language."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from zvonar.acd.definitions import QueueDef

if TYPE_CHECKING:
    from zvonar.acd.session import Session

__all__ = ["SHIPPED_CALLBACK_DIGIT", "announcement", "callback_offer"]

log = logging.getLogger(__name__)

#: The digit the shipped ``queue_callback_offer`` sentence names; other digits are said as
#: ``queue_callback_press`` + the key's word.
SHIPPED_CALLBACK_DIGIT = "5"
_KEY_WORDS = {**{d: f"n{d}" for d in "0123456789"}, "*": "key_star", "#": "key_hash"}


def announcement(
    definition: QueueDef | None, session: Session, position: int, estimated_wait: float | None
) -> tuple[Path, ...]:
    if definition is None:
        return ()
    keys: list[str] = []
    if definition.announce_prompt:
        keys.append(definition.announce_prompt)
    if definition.announce_position:
        keys += ["queue_position", f"n{min(max(position, 1), 20)}"]
        if estimated_wait is not None:
            minutes = min(max(round(estimated_wait / 60), 1), 20)
            keys += ["estimated_wait", f"n{minutes}", "minutes"]
    paths = [session.prompt(k) for k in keys]
    out = [p for p in paths if p is not None]
    if definition.callback_digit is not None:
        out += callback_offer(session, definition.callback_digit)
    return tuple(out)


def callback_offer(session: Session, digit: str) -> list[Path]:
    """ "Press <digit> to be called back": the account's own whole sentence if it recorded
    one (it names their digit), the shipped one when the digit is the one it names, else
    the shipped lead-in followed by the key's word."""
    whole = session.prompt("queue_callback_offer")
    if whole is not None:
        base = session.prompts_dir
        if digit == SHIPPED_CALLBACK_DIGIT or (base is not None and whole.is_relative_to(base)):
            return [whole]
    word = _KEY_WORDS.get(digit)
    lead = session.prompt("queue_callback_press")
    said = session.prompt(word) if word is not None else None
    if lead is None or said is None:
        log.warning("queue %s: no prompt to offer a callback on %r", session.queue, digit)
        return []
    return [lead, said]
