from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from fleetgate.domain.errors import AuthenticationFailed
from fleetgate.domain.lockout import NO_FAILURES, LockoutPolicy
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import ADMIN_ROLES, Login, Tenant, User
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


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


POLICY = LockoutPolicy(max_failures=3, window=timedelta(minutes=15), lock_for=timedelta(minutes=15))


async def test_repeated_failures_lock_the_account_and_a_locked_login_hashes_nothing(
    users: InMemoryUsers,
) -> None:
    clock = Clock()
    auth = Authenticator(users, policy=POLICY, clock=clock)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed, match="Bad credentials"):
            await auth.authenticate(Login("t1", "admin", "wrong"))
    assert auth.hashes == 3
    for password in ("wrong", "s3cret"):  # even the right password
        with pytest.raises(AuthenticationFailed, match="locked after too many failed logins"):
            await auth.authenticate(Login("t1", "admin", password))
    assert auth.hashes == 3
    clock.now += timedelta(minutes=15)
    principal = await auth.authenticate(Login("t1", "admin", "s3cret"))
    assert principal.user.username == "admin"
    assert users.users[("t1", "admin")].failures == NO_FAILURES


async def test_a_cached_success_does_not_get_past_a_lock(users: InMemoryUsers) -> None:
    clock = Clock()
    auth = Authenticator(users, policy=POLICY, clock=clock)
    await auth.authenticate(Login("t1", "admin", "s3cret"))
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(Login("t1", "admin", "wrong"))
    with pytest.raises(AuthenticationFailed, match="locked"):
        await auth.authenticate(Login("t1", "admin", "s3cret"))


async def test_a_success_resets_the_count(users: InMemoryUsers) -> None:
    auth = Authenticator(users, policy=POLICY, clock=Clock())
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(Login("t1", "admin", "wrong"))
    await auth.authenticate(Login("t1", "admin", "s3cret"))
    assert users.users[("t1", "admin")].failures == NO_FAILURES


async def test_unknown_users_cost_no_hash(users: InMemoryUsers) -> None:
    auth = Authenticator(users)
    for i in range(50):
        with pytest.raises(AuthenticationFailed, match="Bad credentials"):
            await auth.authenticate(Login("t1", f"nobody{i}", "guess"))
    assert auth.hashes == 0


async def test_at_most_hash_slots_checks_run_at_once(
    users: InMemoryUsers, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fleetgate.services.auth as auth_module

    running = 0
    most = 0
    lock = threading.Lock()

    def slow_verify(password: str, stored: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return False

    monkeypatch.setattr(auth_module, "verify_password", slow_verify)
    for i in range(8):
        await users.ensure_user("t1", f"u{i}", fast_hash("pw"), ADMIN_ROLES)
    auth = Authenticator(users, hash_slots=2)

    async def attempt(i: int) -> None:
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(Login("t1", f"u{i}", "wrong"))

    await asyncio.gather(*(attempt(i) for i in range(8)))
    assert auth.hashes == 8
    assert most == 2


async def test_a_suspended_tenants_user_is_told_so_once_the_password_matches(
    users: InMemoryUsers,
) -> None:
    users.tenants["t1"] = Tenant("t1", is_management=False, suspended=True)
    authenticator = Authenticator(users)
    with pytest.raises(AuthenticationFailed, match="tenant t1 is suspended"):
        await authenticator.authenticate(Login("t1", "admin", "s3cret"))
    # a wrong password learns nothing about the tenant
    with pytest.raises(AuthenticationFailed) as wrong:
        await authenticator.authenticate(Login("t1", "admin", "wrong"))
    assert "suspended" not in wrong.value.message
    users.tenants["t1"] = Tenant("t1", is_management=False)
    assert (await authenticator.authenticate(Login("t1", "admin", "s3cret"))).tenant.id == "t1"


class GatedUsers(InMemoryUsers):
    """Its user lookups take as long as the test lets them (a round trip to PostgreSQL)."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: list[asyncio.Event] = []

    async def find_user(self, tenant_id: str, username: str) -> tuple[Tenant, User] | None:
        found = await super().find_user(tenant_id, username)  # the state when it began
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return found


async def test_concurrent_logins_share_lookups_but_see_a_user_disabled_before_they_came() -> None:
    users = GatedUsers()
    await users.ensure_tenant(Tenant("t1", is_management=False))
    await users.ensure_user("t1", "admin", fast_hash("s3cret"), ADMIN_ROLES)
    auth = Authenticator(users)
    login = Login("t1", "admin", "s3cret")

    async def until_waiting(n: int) -> None:
        for _ in range(100):
            if len(users.gates) >= n:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{n} lookups never started")

    first = asyncio.create_task(auth.authenticate(login))
    await until_waiting(1)
    users.update("t1", "admin", enabled=False)  # committed while the first lookup runs
    later = [asyncio.create_task(auth.authenticate(login)) for _ in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert users.lookups == 1  # the later logins wait for the next lookup, not this one
    users.gates[0].set()
    assert (await first).user.username == "admin"  # it asked before the change
    await until_waiting(2)
    users.gates[1].set()
    for task in later:  # one lookup for the five, begun after they asked: all refused
        with pytest.raises(AuthenticationFailed, match="locked"):
            await task
    assert users.lookups == 2
