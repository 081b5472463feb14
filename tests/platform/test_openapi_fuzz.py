"""A bounded property-based run of schemathesis over the whole OpenAPI: no 5xx, ever.

It talks HTTP to the real app under uvicorn, authenticated as an admin so the generated requests
reach the handlers (and the database) instead of stopping at 401. Each operation gets its own
Hypothesis run over schemathesis' strategy for that operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.server import free_port, running_server, seed, sqlite_settings
from zvonar.pbx.config import PbxConfig

EXAMPLES_PER_OPERATION = 25


@schemathesis.serializer("audio/wav")
def _wav_bodies(_ctx: object, value: object) -> bytes:
    # Prompt uploads are raw WAV bytes: send what was generated, as bytes (garbage included).
    if isinstance(value, bytes):
        return value
    return str(value).encode()


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    s = sqlite_settings(tmp)
    _, token = asyncio.run(seed(s, "fuzz", "fuzz password 1"))
    # With a PBX in the process, so the live ACD endpoints answer rather than 503.
    pbx = PbxConfig(sip_port=free_port(), sip_tcp=False, media_timeout=0)
    with running_server(s, pbx) as url:
        yield url, token


def test_no_server_errors_on_any_operation(live_api: tuple[str, str]) -> None:
    url, token = live_api
    schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, "the whole API should be fuzzed"
    headers = {"Authorization": f"Bearer {token}"}
    seen: dict[str, set[int]] = {}

    for operation in operations:
        # An event stream answers only when the client gives up (10 s): one example is its
        # proof (the generated session cookies would otherwise make each a case of its own).
        ok = operation.definition.raw.get("responses", {}).get("200", {})
        streams = "text/event-stream" in ok.get("content", {})

        @given(case=operation.as_strategy())
        @settings(
            max_examples=1 if streams else EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=url, headers=headers, timeout=10)
            seen.setdefault(operation.label, set()).add(response.status_code)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:500]}"
            )
            if response.status_code >= 400:
                assert "code" in response.json()["error"], response.text

        run()

    assert set(seen) == {op.label for op in operations}
