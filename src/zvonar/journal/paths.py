"""Where recordings live: ``<data_dir>/recordings/<account>/<yyyy>/<mm>/<call_id>.wav``.

The journal stores paths relative to the data directory, so moving the directory keeps them
valid, and it only ever opens files inside ``<data_dir>/recordings/<account>/``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from zvonar.calls.events import TOKEN

RECORDINGS = "recordings"


def recording_path_for(
    data_dir: Path, account_id: uuid.UUID, call_id: str, started_at: datetime
) -> Path:
    """The absolute path the B2BUA records ``call_id`` to (the month is the UTC start's)."""
    if not TOKEN.fullmatch(call_id):
        raise ValueError("call_id is not a safe token")
    at = started_at.astimezone(UTC)
    return (
        data_dir / RECORDINGS / str(account_id) / f"{at:%Y}" / f"{at:%m}" / f"{call_id}.wav"
    ).absolute()


def account_root(data_dir: Path, account_id: uuid.UUID) -> Path:
    return (data_dir / RECORDINGS / str(account_id)).resolve()


def to_stored(data_dir: Path, account_id: uuid.UUID, path: str) -> str | None:
    """``path`` (absolute, or relative to ``data_dir``) as stored in the journal; None when it
    lies outside the account's recordings directory."""
    p = Path(path)
    full = (p if p.is_absolute() else data_dir / p).resolve()
    root = account_root(data_dir, account_id)
    if not full.is_relative_to(root):
        return None
    return str(PurePosixPath(full.relative_to(data_dir.resolve())))


def to_file(data_dir: Path, account_id: uuid.UUID, stored: str) -> Path | None:
    """The file behind a stored path, or None if it escapes the account's directory."""
    full = (data_dir / stored).resolve()
    return full if full.is_relative_to(account_root(data_dir, account_id)) else None
