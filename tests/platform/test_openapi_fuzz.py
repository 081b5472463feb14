"""A bounded property-based run of schemathesis over the whole OpenAPI: no 5xx, ever.

It talks HTTP to the real app under uvicorn, authenticated as an admin so the generated requests
reach the handlers (and the database) instead of stopping at 401.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.schemas import BaseOpenAPISchema

from tests.support.server import running_server, seed, sqlite_settings


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    s = sqlite_settings(tmp)
    _, token = asyncio.run(seed(s, "fuzz", "fuzz password 1"))
    with running_server(s) as url:
        yield url, token


@pytest.fixture(scope="module")
def api_schema(live_api: tuple[str, str]) -> BaseOpenAPISchema:
    url, _ = live_api
    return schemathesis.openapi.from_url(f"{url}/api/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: schemathesis.Case, live_api: tuple[str, str]) -> None:
    url, token = live_api
    response = case.call(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400:
        assert "code" in response.json()["error"], response.text
