"""The ``zvonar`` command line: the app (``common``) and its commands, registered on import."""

from __future__ import annotations

from zvonar.cli import admin, server, simulate  # noqa: F401  (register their commands)
from zvonar.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    app()
