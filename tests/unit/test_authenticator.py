from __future__ import annotations

import pytest

from fleetgate.domain.errors import AuthenticationFailed
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import ADMIN_ROLES, Login, Tenant
from fleetgate.services.auth import Authenticator

from fakes import InMemoryUsers


def fast_hash(password: str) -> str:
    return hash_password(password, log2_n=4, r=1, p=1)


@pytest.fixture
async def users() -> InMemoryUsers:
    store = InMemoryUsers()
    await store.ensure_tenant(Tenant("t1", is_management=False))
    await store.ensure_user("t1", "admin", fast_hash("s3cret"), ADMIN_ROLES)
    return store


async def test_right_password_gives_the_principal_with_its_roles(users: InMemoryUsers) -> None:
    principal = await Authenticator(users).authenticate(Login("t1", "admin", "s3cret"))
    assert principal.tenant.id == "t1"
    assert principal.user.username == "admin"
    assert principal.roles == ADMIN_ROLES


@pytest.mark.parametrize(
    "login",
    [
        Login("t1", "admin", "wrong"),
        Login("t1", "nobody", "s3cret"),
        Login("t2", "admin", "s3cret"),
    ],
)
async def test_wrong_credentials_fail_alike(users: InMemoryUsers, login: Login) -> None:
    with pytest.raises(AuthenticationFailed, match="Bad credentials"):
        await Authenticator(users).authenticate(login)


async def test_a_disabled_user_is_refused_even_after_a_cached_success(
    users: InMemoryUsers,
) -> None:
    auth = Authenticator(users)
    await auth.authenticate(Login("t1", "admin", "s3cret"))
    users.update("t1", "admin", enabled=False)
    with pytest.raises(AuthenticationFailed, match="locked"):
        await auth.authenticate(Login("t1", "admin", "s3cret"))


async def test_a_changed_password_is_not_served_from_the_cache(users: InMemoryUsers) -> None:
    auth = Authenticator(users)
    await auth.authenticate(Login("t1", "admin", "s3cret"))
    users.update("t1", "admin", password_hash=fast_hash("n3w"))
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(Login("t1", "admin", "s3cret"))
    assert (await auth.authenticate(Login("t1", "admin", "n3w"))).user.username == "admin"


async def test_the_cache_stays_bounded(users: InMemoryUsers) -> None:
    auth = Authenticator(users, cache_size=2)
    for i in range(4):
        await users.ensure_user("t1", f"u{i}", fast_hash("pw"), ADMIN_ROLES)
        await auth.authenticate(Login("t1", f"u{i}", "pw"))
    assert len(auth._verified) == 2
