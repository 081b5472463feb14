"""Settings from the environment (``ZVONAR_*``) and an optional TOML config file.

Precedence: explicit arguments > environment > config file (``ZVONAR_CONFIG`` or ``--config``) >
defaults. Secrets are ``SecretStr`` so they never show up in ``repr``, logs or tracebacks.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from zvonar.pbx.config import PbxConfig, parse_dns_servers
from zvonar.sip.auth_digest import server_algorithms
from zvonar.sip.errors import AuthError


class SettingsFileError(ValueError):
    """The settings file cannot be used: unreadable, not TOML, or naming a setting that does
    not exist (a misspelt key would otherwise be silently ignored)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the ``[zvonar]`` table of the file named by ``ZVONAR_CONFIG``; missing variable
    means no file. :class:`SettingsFileError` if it cannot be used."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = os.environ.get("ZVONAR_CONFIG")
        self._data: dict[str, Any] = {}
        if not path:
            return
        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh).get("zvonar", {})
        except OSError as exc:
            raise SettingsFileError(path, exc.strerror or str(exc)) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsFileError(path, f"not TOML: {exc}") from None
        if not isinstance(table, dict):
            raise SettingsFileError(path, "zvonar must be a table ([zvonar])")
        unknown = sorted(set(table) - set(settings_cls.model_fields))
        if unknown:
            raise SettingsFileError(path, f"unknown setting(s) in [zvonar]: {', '.join(unknown)}")
        self._data = table

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)  # every key names a setting (checked when read)


_DRIVERS = {
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "sqlite": "sqlite+aiosqlite",
}


# Variables with our prefix that are not settings yet are ours: the test suite's.
_NOT_SETTINGS = frozenset({"ZVONAR_CONFIG", "ZVONAR_TEST_DATABASE_URL", "ZVONAR_SHARED_DIR"})


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """``ZVONAR_*`` variables that name no setting: a misspelt one (``ZVONAR_SIP_PRT``) is
    otherwise ignored without a word, and the default it meant to change silently applies."""
    known = {f"ZVONAR_{name.upper()}" for name in Settings.model_fields} | _NOT_SETTINGS
    return sorted(
        name for name in environ if name.upper().startswith("ZVONAR_") and name.upper() not in known
    )


def _names(value: str) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty items."""
    return tuple(a.strip() for a in value.split(",") if a.strip())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZVONAR_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Database, recordings, keys.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default: SQLite file in data_dir."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs sessions and CSRF tokens; generated into data_dir if unset.",
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = Field(default=None, description="Base URL users reach the UI at.")
    sip_host: str = "127.0.0.1"
    sip_port: int = Field(default=5060, ge=0, le=65535)
    sip_advertise: str | None = Field(default=None, description="SIP address peers must reach.")
    sip_tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate chain of the PBX; set: SIP over TLS on sip_tls_port.",
    )
    sip_tls_key: Path | None = Field(
        default=None, description="Private key of sip_tls_cert (unset: in the same file)."
    )
    sip_tls_port: int = Field(default=5061, ge=0, le=65535, description="SIP over TLS port.")
    sip_tls_ca: Path | None = Field(
        default=None, description="CA bundle TLS carriers are checked against; unset: system's."
    )
    sip_tls_verify: bool = Field(
        default=True, description="Check TLS carriers' certificates and names (RFC 5922)."
    )
    sip_digest_algorithms: str = Field(
        default="SHA-256,MD5", description="Digest challenges offered, in order (RFC 8760)."
    )
    rtp_host: str = "127.0.0.1"
    rtp_port_min: int = Field(default=20000, ge=1024, le=65535)
    rtp_port_max: int = Field(default=20999, ge=1024, le=65535)
    media_advertise: str | None = Field(default=None, description="RTP address peers must reach.")
    media_timeout: float = Field(
        default=30.0, ge=0, description="Hang up after this long without RTP (on hold: RTCP)."
    )
    media_srtp: bool = Field(
        default=True,
        description="SRTP with SDES keys (RFC 4568): offered, and required, to phones "
        "registered over TLS; accepted from anyone who offers it.",
    )
    min_session_expires: int = Field(
        default=90, ge=90, description="Shortest SIP session timer a peer may ask for (RFC 4028)."
    )
    default_region: str = Field(
        default="RU",
        pattern=r"^[A-Za-z]{2}$",
        description="Country for national dialed numbers (ISO 3166-1 alpha-2).",
    )
    dns_servers: str = Field(
        default="",
        description="DNS servers (host[:port], comma-separated) for locating SIP servers "
        "(RFC 3263 NAPTR/SRV); empty: the system's.",
    )
    max_calls: int = Field(default=5000, ge=1, description="Calls in progress before 503.")
    max_loop_lag: float = Field(
        default=0.2, gt=0, description="Event-loop lag (s) above which new calls get 503."
    )
    event_relay_interval: float = Field(
        default=1.0,
        ge=0,
        description="How often (s) the PBX reads other processes' events (CLI, other "
        "nodes) from the database's outbox; 0: never.",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest accepted API body."
    )
    session_max_age: int = Field(
        default=12 * 3600, ge=60, description="Web session lifetime, seconds."
    )
    cookie_secure: bool = False
    default_language: Literal["en", "ru", "uk"] = "en"
    smtp_host: str | None = Field(default=None, description="Mail server; unset: no email.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "ssl"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "zvonar@localhost"
    smtp_timeout: float = Field(default=30.0, gt=0)
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token of GET /metrics; unset: no metrics endpoint."
    )
    log_level: str = "INFO"
    log_sql: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'zvonar.sqlite3').resolve()}"

    @cached_property
    def effective_secret_key(self) -> str:
        """The configured key, or one generated once and kept in ``data_dir/secret_key``."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        """The two drivers the project installs; the URLs people usually have for them
        (``postgres://``, ``postgresql://``, ``sqlite://``) are taken as meaning them."""
        if not value:
            return None
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise ValueError("a URL such as postgresql+asyncpg://user@host/db")
        driver = _DRIVERS.get(scheme.lower())
        if driver is None:
            raise ValueError(
                "use postgresql+asyncpg://user:password@host/db or sqlite+aiosqlite:///path"
            )
        return f"{driver}://{rest}"

    @field_validator("sip_digest_algorithms")
    @classmethod
    def _digest_algorithms(cls, value: str) -> str:
        try:  # what the registrar's challenger will be given (pbx_config)
            server_algorithms(_names(value))
        except AuthError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _rtp_range(self) -> Settings:
        if self.rtp_port_min >= self.rtp_port_max:
            raise ValueError("rtp_port_min must be below rtp_port_max")
        return self

    @field_validator("dns_servers")
    @classmethod
    def _dns_servers(cls, value: str) -> str:
        parse_dns_servers(value)  # a malformed list stops start-up with its reason
        return value

    def pbx_config(self) -> PbxConfig:
        return PbxConfig(
            sip_host=self.sip_host,
            sip_port=self.sip_port,
            sip_advertise=self.sip_advertise,
            rtp_host=self.rtp_host,
            rtp_ports=(self.rtp_port_min, self.rtp_port_max),
            media_advertise=self.media_advertise,
            media_timeout=self.media_timeout,
            media_srtp=self.media_srtp,
            min_session_expires=self.min_session_expires,
            default_region=self.default_region,
            max_calls=self.max_calls,
            max_loop_lag=self.max_loop_lag,
            event_relay_interval=self.event_relay_interval,
            digest_algorithms=_names(self.sip_digest_algorithms),
            dns_servers=parse_dns_servers(self.dns_servers),
            sip_tls_cert=self.sip_tls_cert,
            sip_tls_key=self.sip_tls_key,
            sip_tls_port=self.sip_tls_port,
            sip_tls_ca=self.sip_tls_ca,
            sip_tls_verify=self.sip_tls_verify,
        )

    def redacted(self) -> dict[str, Any]:
        """Settings safe to print or log: secrets and database passwords masked."""
        data = self.model_dump()
        data["secret_key"] = "***" if self.secret_key else None
        data["smtp_password"] = "***" if self.smtp_password else None
        data["metrics_token"] = "***" if self.metrics_token else None
        url = self.effective_database_url
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            creds, host = rest.rsplit("@", 1)
            user = creds.split(":", 1)[0]
            url = f"{scheme}://{user}:***@{host}"
        data["database_url"] = url
        data["data_dir"] = str(self.data_dir)
        return data
