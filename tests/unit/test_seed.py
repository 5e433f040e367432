from __future__ import annotations

import pytest

from fleetgate.domain.errors import ConfigurationError
from fleetgate.domain.passwords import verify_password
from fleetgate.domain.users import BOOTSTRAP_ROLES, Role
from fleetgate.services.seed import InitialState, ensure_initial_state

from fakes import InMemoryUsers


def state(**passwords: str | None) -> InitialState:
    values: dict[str, str | None] = {
        "admin_password": "a",
        "management_admin_password": "m",
        "bootstrap_password": "b",
    }
    values.update(passwords)
    return InitialState.build(
        management_tenant="management",
        tenant="t1",
        admin_username="admin",
        bootstrap_username="devicebootstrap",
        **values,
    )


async def test_first_start_creates_both_tenants_admin_and_bootstrap() -> None:
    users = InMemoryUsers()
    await ensure_initial_state(users, state())
    assert users.tenants["management"].is_management
    assert not users.tenants["t1"].is_management
    admin = users.users[("t1", "admin")]
    assert verify_password("a", admin.password_hash)
    assert Role.DEVICE_BOOTSTRAP not in admin.roles
    bootstrap = users.users[("t1", "devicebootstrap")]
    assert bootstrap.roles == BOOTSTRAP_ROLES
    assert ("management", "admin") in users.users


async def test_a_later_start_keeps_what_exists() -> None:
    users = InMemoryUsers()
    await ensure_initial_state(users, state())
    before = dict(users.users)
    await ensure_initial_state(users, state(admin_password="other"))
    assert users.users == before


async def test_a_later_start_needs_no_passwords() -> None:
    users = InMemoryUsers()
    await ensure_initial_state(users, state())
    await ensure_initial_state(
        users, state(admin_password=None, management_admin_password=None, bootstrap_password=None)
    )


async def test_first_start_without_a_password_says_which_setting() -> None:
    with pytest.raises(ConfigurationError, match="FLEETGATE_SEED_"):
        await ensure_initial_state(InMemoryUsers(), state(bootstrap_password=None))
