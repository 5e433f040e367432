"""Operator users: the rules of user names, passwords and bodies (domain), and the
service on the in-memory users table: duplicates, role references, the last admin role."""

from __future__ import annotations

import pytest

from fleetgate.domain.errors import Conflict, NotFound, ValidationFailed
from fleetgate.domain.lockout import NO_FAILURES, LoginFailures
from fleetgate.domain.operators import (
    NewOperator,
    OperatorChanges,
    check_password,
    check_username,
    read_changes,
    read_new_operator,
)
from fleetgate.domain.passwords import hash_password, verify_password
from fleetgate.domain.users import ADMIN_ROLES, Role, Tenant
from fleetgate.services.operators import Operators

from memory.database import DEVICE_USER_ROLES, MemoryUsers


def fast_hash(password: str) -> str:
    return hash_password(password, log2_n=4, r=1, p=1)


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "a:b", "a b", "a+b", "a$b", "a\x00b", "a\tb", "x" * 1001, "device_123", 7, None],
)
def test_bad_user_names_are_refused(name: object) -> None:
    with pytest.raises(ValidationFailed, match="userName"):
        check_username(name)


@pytest.mark.parametrize("name", ["watcher", "jane.doe@example.com", "ü-op_1", "x" * 1000])
def test_good_user_names_pass(name: str) -> None:
    assert check_username(name) == name


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "8 to 128"),
        ("x" * 129, "8 to 128"),
        ("abc\x00defgh", "control"),
        ("abc\ndefgh", "control"),
        ("Watcher01", None),
        ("watcher01", "user name"),
        (12345678, "string"),
    ],
)
def test_password_rules(password: object, reason: str | None) -> None:
    if reason is None:
        assert check_password(password, "watcher01x") == password
    else:
        with pytest.raises(ValidationFailed, match=reason):
            check_password(password, "watcher01")


def test_a_create_body_reads_cumulocitys_fields() -> None:
    new = read_new_operator(
        {"userName": "jane", "password": "long enough", "email": "j@x.org", "firstName": "J"}
    )
    assert new == NewOperator("jane", "long enough", True, "j@x.org", "J", None)
    with pytest.raises(ValidationFailed, match="password is required"):
        read_new_operator({"userName": "jane"})
    with pytest.raises(ValidationFailed, match="roles"):
        read_new_operator({"userName": "jane", "password": "long enough", "roles": []})


async def users_with_admin() -> MemoryUsers:
    users = MemoryUsers()
    await users.ensure_tenant(Tenant("t1", is_management=False))
    await users.ensure_user("t1", "admin", fast_hash("admin-pw"), ADMIN_ROLES)
    await users.ensure_user("t1", "device_d1", fast_hash("device-pw"), DEVICE_USER_ROLES)
    return users


async def test_create_then_a_duplicate_is_a_conflict() -> None:
    users = await users_with_admin()
    operators = Operators(users, hasher=fast_hash)
    user = await operators.create("t1", NewOperator("watcher", "watch-it-pw"))
    assert user.roles == frozenset()
    assert verify_password("watch-it-pw", user.password_hash)
    with pytest.raises(Conflict):
        await operators.create("t1", NewOperator("watcher", "other-password"))


async def test_update_changes_password_and_profile_and_enabling_unlocks() -> None:
    users = await users_with_admin()
    operators = Operators(users, hasher=fast_hash)
    await operators.create("t1", NewOperator("op", "first-password", email="a@b.c"))
    users.update("t1", "op", failures=LoginFailures(5, None, None))
    body = {"password": "second-password", "email": None, "lastName": "Doe", "enabled": True}
    user = await operators.update(
        "t1", "op", read_changes(body, users.users[("t1", "op")]), caller="admin"
    )
    assert verify_password("second-password", user.password_hash)
    assert (user.email, user.last_name) == (None, "Doe")
    assert user.failures == NO_FAILURES
    with pytest.raises(NotFound):
        await operators.update("t1", "ghost", OperatorChanges(enabled=True), caller="admin")


def test_a_device_users_only_changeable_field_is_enabled() -> None:
    from fleetgate.domain.users import User

    device = User("t1", "device_d1", "x", True, DEVICE_USER_ROLES, None)  # type: ignore[arg-type]
    assert read_changes({"enabled": False}, device) == OperatorChanges(enabled=False)
    with pytest.raises(ValidationFailed, match="password"):
        read_changes({"enabled": True, "password": "new-password"}, device)


async def test_roles_are_assigned_and_taken_as_references() -> None:
    users = await users_with_admin()
    operators = Operators(users, hasher=fast_hash)
    await operators.create("t1", NewOperator("watcher", "watch-it-pw"))
    await operators.assign_role("t1", "watcher", Role.DEVICE_CONTROL_READ)
    await operators.assign_role("t1", "watcher", Role.DEVICE_CONTROL_READ)  # idempotent
    assert await operators.roles("t1", "watcher") == {Role.DEVICE_CONTROL_READ}
    await operators.unassign_role("t1", "watcher", Role.DEVICE_CONTROL_READ, caller="admin")
    assert await operators.roles("t1", "watcher") == frozenset()
    with pytest.raises(NotFound):
        await operators.unassign_role("t1", "watcher", Role.DEVICE_CONTROL_READ, caller="admin")


@pytest.mark.parametrize("role", [Role.DEVICE, Role.DEVICE_BOOTSTRAP, Role.TENANT_MANAGEMENT_ADMIN])
async def test_device_and_management_roles_cannot_be_given_in_an_ordinary_tenant(
    role: Role,
) -> None:
    users = await users_with_admin()
    operators = Operators(users, hasher=fast_hash)
    await operators.create("t1", NewOperator("op", "long-password"))
    with pytest.raises(ValidationFailed, match=role.value):
        await operators.assign_role("t1", "op", role)


async def test_a_device_users_roles_are_fixed() -> None:
    users = await users_with_admin()
    operators = Operators(users, hasher=fast_hash)
    with pytest.raises(ValidationFailed, match="device user"):
        await operators.assign_role("t1", "device_d1", Role.INVENTORY_READ)
    with pytest.raises(ValidationFailed, match="device user"):
        await operators.unassign_role("t1", "device_d1", Role.DEVICE, caller="admin")


async def test_an_admin_cannot_remove_their_own_last_user_admin_role() -> None:
    users = await users_with_admin()
    operators = Operators(users, hasher=fast_hash)
    # Two admin roles: the first may go, the last may not.
    await operators.unassign_role("t1", "admin", Role.TENANT_ADMIN, caller="admin")
    with pytest.raises(ValidationFailed, match="last user administration role"):
        await operators.unassign_role("t1", "admin", Role.USER_MANAGEMENT_ADMIN, caller="admin")
    # Another admin may take it.
    await operators.create("t1", NewOperator("boss", "boss-password"))
    await operators.assign_role("t1", "boss", Role.USER_MANAGEMENT_ADMIN)
    await operators.unassign_role("t1", "admin", Role.USER_MANAGEMENT_ADMIN, caller="boss")
    assert Role.USER_MANAGEMENT_ADMIN not in await operators.roles("t1", "admin")


async def test_nobody_disables_their_own_user() -> None:
    users = await users_with_admin()
    with pytest.raises(ValidationFailed, match="own user"):
        await Operators(users, hasher=fast_hash).update(
            "t1", "admin", OperatorChanges(enabled=False), caller="admin"
        )
