"""The demo account ``make demo`` loads: a small Moscow sales office, idempotently.

Credentials are generated on the first run and kept in ``data_dir/demo-credentials.json``
(mode 0600), so every later run prints the same working login.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zvonar.accounts.models import Role
from zvonar.configfile import apply_config
from zvonar.container import Container
from zvonar.core.errors import NotFound, Unauthenticated
from zvonar.directory.phone import sip_realm

SLUG = "demo"
ADMIN_EMAIL = "admin@demo.zvonar.example"
EMPLOYEES = [
    ("101", "Анна Смирнова", ["+79161234501"]),
    ("102", "Борис Иванов", ["+79161234502"]),
    ("103", "Олена Коваль", []),
]


@dataclass(frozen=True)
class DemoInfo:
    admin_email: str
    admin_password: str
    api_token: str
    sip: list[tuple[str, str, str]]  # (extension, name, password)
    sip_domain: str
    sip_registrar: str
    sip_port: int

    def banner(self, url: str) -> str:
        lines = [
            "",
            "Zvonar demo is ready.",
            f"  Web UI:    {url}",
            f"  Sign in:   {self.admin_email} / {self.admin_password}",
            f"  API:       {url}api/openapi.json  (token: {self.api_token})",
            f"  SIP: register sip:<extension>@{self.sip_domain} at {self.sip_registrar}"
            f":{self.sip_port} (UDP/TCP); dial +74951234567 to reach the Sales group:",
        ]
        lines += [f"    {ext}  {name:<16} password {pw}" for ext, name, pw in self.sip]
        lines.append(
            "  Phone features: *8<ext> picks up a colleague's ringing call, *67 before a number"
            " hides yours, *78/*79 turn do not disturb on/off, *9<ext> calls over intercom,"
            " *11 pulls your call to the phone you dial it on, transferring a call to *51..*59"
            " parks it there for whoever dials that slot;"
            " a BLF key or buddy on"
            " sip:<ext>@" + self.sip_domain + " shows them ringing and busy, a BLF key on"
            " sip:*51@" + self.sip_domain + " lights while a call waits in that slot."
        )
        lines.append("")
        return "\n".join(lines)


def _credentials(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "demo-credentials.json"
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    data = {
        "admin_password": secrets.token_urlsafe(9),
        "sip": {ext: secrets.token_urlsafe(9) for ext, _, _ in EMPLOYEES},
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return data


def demo_config(sip_passwords: dict[str, str]) -> dict[str, Any]:
    return {
        "version": 1,
        "account": {
            "name": "Demo LLC",
            "time_zone": "Europe/Moscow",
            "country": "RU",
            "language": "ru",
            "missed_call_emails": ["manager@demo.zvonar.example"],
            "recording_enabled": True,
            "recording_retention_days": 90,
        },
        "directory": {
            "trunks": {
                "Demo carrier": {
                    "host": "127.0.0.1",
                    "port": 5070,
                    "transport": "udp",
                    "auth_mode": "ip",
                    "allowed_sources": ["127.0.0.1/32"],
                    "caller_id": "+74951234567",
                },
            },
            "employees": {
                ext: {
                    "name": name,
                    "mobile_numbers": mobiles,
                    "time_zone": "Europe/Moscow",
                    "sip_password": sip_passwords[ext],
                }
                for ext, name, mobiles in EMPLOYEES
            },
            "groups": {
                "Sales": {"strategy": "round_robin", "members": ["101", "102"]},
                "Support": {"strategy": "all_at_once", "members": ["103", "101"]},
            },
            "numbers": {
                "+74951234567": {"label": "Office", "trunk": "Demo carrier"},
                "+78001234567": {"label": "Hotline", "trunk": "Demo carrier"},
                "+73833123456": {"label": "Novosibirsk", "trunk": "Demo carrier"},
            },
        },
        "routing": {
            "schemes": {
                # The seeds' chain, shortened: a customer who called before reaches whoever
                # answered them last, then the sales group, then support, then voicemail.
                "Main": {
                    "branches": {
                        "working": [
                            {"type": "ring", "targets": [{"manager": "last"}], "timeout": 15},
                            {"type": "ring", "targets": [{"group": "Sales"}], "timeout": 20},
                            {"type": "ring", "targets": [{"group": "Support"}], "timeout": 20},
                        ],
                        "off": [{"type": "voicemail", "notify": ["manager@demo.zvonar.example"]}],
                        "holiday": [
                            {"type": "voicemail", "notify": ["manager@demo.zvonar.example"]}
                        ],
                    },
                    "final": {"type": "voicemail"},
                },
            },
            "numbers": {
                "+74951234567": "Main",
                "+78001234567": "Main",
                "+73833123456": "Main",
            },
        },
    }


async def load_demo(c: Container) -> DemoInfo:
    creds = _credentials(c.settings.data_dir)
    try:
        account = await c.accounts.account_by_slug(SLUG)
    except NotFound:
        account = await c.accounts.create_account(
            "Demo LLC", SLUG, time_zone="Europe/Moscow", country="RU", language="ru"
        )
    await apply_config(c, account.id, demo_config(creds["sip"]), dry_run=False)
    if await c.accounts.user_by_email(ADMIN_EMAIL) is None:
        await c.accounts.create_user(
            account.id,
            email=ADMIN_EMAIL,
            name="Demo Admin",
            role=Role.admin,
            password=creds["admin_password"],
            language="ru",
        )
    token = creds.get("api_token")
    if token is not None:
        try:
            await c.accounts.resolve_token(token, touch=False)
        except Unauthenticated:  # revoked, or the database is not the one it was minted in
            token = None
    if token is None:
        issued = await c.accounts.create_token(account.id, name="demo", role=Role.admin)
        token = issued.secret
        creds["api_token"] = token
        path = c.settings.data_dir / "demo-credentials.json"
        path.write_text(json.dumps(creds))
    return DemoInfo(
        admin_email=ADMIN_EMAIL,
        admin_password=creds["admin_password"],
        api_token=token,
        sip=[(ext, name, creds["sip"][ext]) for ext, name, _ in EMPLOYEES],
        sip_domain=sip_realm(SLUG),
        sip_registrar=c.settings.sip_advertise or c.settings.sip_host,
        sip_port=c.settings.sip_port,
    )
