from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from zvonar.core.bus import InProcessBus, RecordingBus
from zvonar.core.events import Event
from zvonar.settings import Settings


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pinged(Event):
    n: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Other(Event):
    pass


async def test_bus_delivers_by_type_and_isolates_failing_handlers() -> None:
    bus = InProcessBus()
    got: list[int] = []

    async def broken(_e: Event) -> None:
        raise RuntimeError("consumer bug")

    async def good(e: Event) -> None:
        assert isinstance(e, Pinged)
        got.append(e.n)

    bus.subscribe(Pinged, broken)
    unsubscribe = bus.subscribe(Pinged, good)
    account = uuid.uuid4()
    await bus.publish(Pinged(account_id=account, n=1))
    await bus.publish(Other(account_id=account))
    unsubscribe()
    await bus.publish(Pinged(account_id=account, n=2))
    assert got == [1]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PingedAgain(Pinged):
    pass


async def test_bus_delivers_subclasses_in_order_and_sees_later_subscriptions() -> None:
    # The bus caches the handlers per concrete event class; (un)subscribing must invalidate it.
    bus = InProcessBus()
    got: list[str] = []

    def recorder(tag: str) -> Callable[[Event], Awaitable[None]]:
        async def handle(e: Event) -> None:
            got.append(f"{tag}:{e.event_type}")

        return handle

    bus.subscribe(Event, recorder("any"))
    bus.subscribe(Pinged, recorder("pinged"))
    account = uuid.uuid4()
    await bus.publish(PingedAgain(account_id=account, n=1))
    await bus.publish(Other(account_id=account))
    late = bus.subscribe(PingedAgain, recorder("late"))
    await bus.publish(PingedAgain(account_id=account, n=2))
    late()
    await bus.publish(PingedAgain(account_id=account, n=3))
    assert got == [
        "any:PingedAgain", "pinged:PingedAgain",
        "any:Other",
        "any:PingedAgain", "pinged:PingedAgain", "late:PingedAgain",
        "any:PingedAgain", "pinged:PingedAgain",
    ]  # fmt: skip


def test_events_are_frozen() -> None:
    e = Pinged(account_id=uuid.uuid4(), n=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.n = 2  # type: ignore[misc]
    assert e.event_type == "Pinged"


async def test_recording_bus_filters_by_type() -> None:
    bus = RecordingBus()
    await bus.publish(Pinged(account_id=uuid.uuid4(), n=3))
    await bus.publish(Other(account_id=uuid.uuid4()))
    assert [e.n for e in bus.of_type(Pinged)] == [3]


def test_settings_precedence_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "zvonar.toml"
    cfg.write_text('[zvonar]\nhttp_port = 9000\nsip_port = 5070\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("ZVONAR_CONFIG", str(cfg))
    monkeypatch.setenv("ZVONAR_HTTP_PORT", "9100")
    s = Settings()
    assert s.http_port == 9100  # environment wins over the file
    assert s.sip_port == 5070  # the file wins over the default
    assert s.log_level == "DEBUG"


def test_secrets_never_in_repr_or_redacted(tmp_path: Path) -> None:
    s = Settings(
        data_dir=tmp_path,
        secret_key="super-secret-value",  # type: ignore[arg-type]
        database_url="postgresql+asyncpg://zv:hunter2@db.example:5432/zvonar",
        metrics_token="scrape-me-secret",  # type: ignore[arg-type]
    )
    assert "super-secret-value" not in repr(s) and "scrape-me-secret" not in repr(s)
    red = s.redacted()
    assert "hunter2" not in str(red) and "super-secret-value" not in str(red)
    assert "scrape-me-secret" not in str(red) and red["metrics_token"] == "***"
    assert red["database_url"] == "postgresql+asyncpg://zv:***@db.example:5432/zvonar"


def test_generated_secret_key_is_kept_in_data_dir(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).effective_secret_key
    second = Settings(data_dir=tmp_path).effective_secret_key
    assert first == second and len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_default_database_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    url = Settings(data_dir=tmp_path).effective_database_url
    assert url.startswith("sqlite+aiosqlite:///") and url.endswith("zvonar.sqlite3")


def test_the_protocol_cores_contract_names_every_other_package() -> None:
    """The import contract keeps sip/ and media/ free of the rest of Zvonar only if it names
    every other top-level package; one added later must be added there too."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]
    (cores,) = [
        c for c in contracts["contracts"] if c["source_modules"] == ["zvonar.sip", "zvonar.media"]
    ]
    src = root / "src" / "zvonar"
    ours = {
        f"zvonar.{p.stem}"
        for p in src.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py")
    } - {"zvonar.sip", "zvonar.media", "zvonar.__init__", "zvonar.__main__"}
    assert set(cores["forbidden_modules"]) == ours
