from __future__ import annotations

import uuid
from dataclasses import dataclass

import zvonar.pbx.models  # noqa: F401  (sip_bindings on Base.metadata before create_all)
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.container import Container
from zvonar.directory.schemas import EmployeeIn, NumberIn

PASSWORD = "s3cret-pass-101"
NUMBER = "+74951234567"


@dataclass
class Seeded:
    account_id: uuid.UUID
    slug: str
    employee_id: uuid.UUID
    number_id: uuid.UUID
    principal: Principal

    @property
    def realm(self) -> str:
        return f"{self.slug}.zvonar"


async def seed_account(
    container: Container,
    slug: str = "alpha",
    *,
    ring_seconds: float = 10,
    number: str = NUMBER,
    password: str = PASSWORD,
) -> Seeded:
    """An account with employee 101 (SIP password), a number and a scheme "ring 101"."""
    account = await container.accounts.create_account(f"Account {slug}", slug)
    p = Principal(account_id=account.id, role=Role.admin)
    created = await container.directory.create_employee(
        p, EmployeeIn(name="Anna", extension="101", sip_password=password)
    )
    num = await container.directory.add_number(p, NumberIn(number=number, label="Sales"))
    scheme = await container.routing.create_scheme(
        p,
        "Main",
        {
            "branches": {
                "working": [
                    {"type": "ring", "targets": [{"employee": "101"}], "timeout": ring_seconds}
                ]
            },
            "final": {"type": "hangup"},
        },
    )
    await container.routing.assign(p, num.id, scheme.id)
    return Seeded(account.id, slug, created.view.employee.id, num.id, p)
