"""The dependency rule of DESIGN.md for the media protocol core: imports and no I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import zvonar.media

PROTOCOL_MODULES = [
    "__init__", "errors", "sdp", "sdp_fields", "offer_answer", "rtp", "rtcp", "stats", "g711",
    "dtmf", "goertzel", "wav", "resample", "jitter",
]  # fmt: skip
# Modules that would mean sockets, clocks, sleeping, threads or hidden randomness.
FORBIDDEN = {"socket", "asyncio", "time", "select", "selectors", "threading", "random",
             "subprocess", "os", "audioop", "datetime"}  # fmt: skip
PACKAGE = Path(zvonar.media.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("name", PROTOCOL_MODULES)
def test_protocol_module_imports(name: str) -> None:
    for module in imported_modules(PACKAGE / f"{name}.py"):
        top = module.split(".")[0]
        if top == "zvonar":
            assert module.startswith("zvonar.media."), module
            assert not module.startswith(("zvonar.media.io", "zvonar.media.engine")), module
        else:
            assert top in sys.stdlib_module_names, module  # stdlib only
            assert top not in FORBIDDEN, module
