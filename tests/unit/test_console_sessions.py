"""The console's session cookie and CSRF token (domain/sessions) and how a session is
resumed against the user store (Authenticator.resume)."""

from __future__ import annotations

import pytest

from fleetgate.domain import sessions
from fleetgate.domain.errors import AuthenticationFailed
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.sessions import Session
from fleetgate.domain.users import ADMIN_ROLES, Tenant
from fleetgate.services.auth import Authenticator

from fakes import InMemoryUsers

KEY = sessions.session_key(b"the service's url secret")
ISSUED = 1_800_000_000
SESSION = Session("t1", "admin", "0123456789abcdef", ISSUED, "nonce-1")


def test_a_sealed_session_unseals_to_itself_while_it_lasts() -> None:
    token = sessions.seal(KEY, SESSION)
    assert sessions.unseal(KEY, token, ISSUED) == SESSION
    assert sessions.unseal(KEY, token, ISSUED + sessions.MAX_AGE - 1) == SESSION


def test_an_expired_or_future_session_is_none() -> None:
    token = sessions.seal(KEY, SESSION)
    assert sessions.unseal(KEY, token, ISSUED + sessions.MAX_AGE) is None
    assert sessions.unseal(KEY, token, ISSUED - 3600) is None


@pytest.mark.parametrize(
    "token",
    [None, "", ".", "abc", "abc.def", "a" * 5000, "W10.00", "e30.00", "\u00e9.\u00e9"],
)
def test_garbage_is_no_session(token: str | None) -> None:
    assert sessions.unseal(KEY, token, ISSUED) is None


def test_another_key_or_a_changed_payload_is_no_session() -> None:
    token = sessions.seal(KEY, SESSION)
    other = sessions.session_key(b"another secret")
    assert sessions.unseal(other, token, ISSUED) is None
    forged = sessions.seal(KEY, Session("t1", "root", SESSION.stamp, ISSUED, "n"))
    _, _, signature = token.partition(".")
    assert sessions.unseal(KEY, f"{forged.partition('.')[0]}.{signature}", ISSUED) is None


def test_the_session_key_is_not_the_secret_and_depends_on_it() -> None:
    assert KEY != b"the service's url secret"
    assert sessions.session_key(b"a") != sessions.session_key(b"b")


def test_the_csrf_token_belongs_to_its_session() -> None:
    token = sessions.csrf_token(KEY, SESSION)
    assert sessions.csrf_matches(KEY, SESSION, token)
    other = Session("t1", "admin", SESSION.stamp, ISSUED, "nonce-2")
    assert not sessions.csrf_matches(KEY, other, token)
    assert not sessions.csrf_matches(KEY, SESSION, None)
    assert not sessions.csrf_matches(KEY, SESSION, token[:-1])
    assert not sessions.csrf_matches(KEY, SESSION, "\u00e9" * 64)


def _hash(password: str) -> str:
    return hash_password(password, log2_n=4, r=1, p=1)


@pytest.fixture
async def users() -> InMemoryUsers:
    store = InMemoryUsers()
    await store.ensure_tenant(Tenant("t1", is_management=False))
    await store.ensure_user("t1", "admin", _hash("s3cret"), ADMIN_ROLES)
    return store


async def _stamp(users: InMemoryUsers) -> str:
    found = await users.find_user("t1", "admin")
    assert found is not None
    return sessions.password_stamp(found[1].password_hash)


async def test_a_session_resumes_with_the_users_current_roles(users: InMemoryUsers) -> None:
    principal = await Authenticator(users).resume("t1", "admin", await _stamp(users))
    assert principal.user.username == "admin"
    assert principal.roles == ADMIN_ROLES


async def test_a_disabled_user_or_a_changed_password_ends_the_session(
    users: InMemoryUsers,
) -> None:
    auth = Authenticator(users)
    stamp = await _stamp(users)
    users.update("t1", "admin", password_hash=_hash("n3w-secret"))
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        await auth.resume("t1", "admin", stamp)
    users.update("t1", "admin", enabled=False)
    with pytest.raises(AuthenticationFailed):
        await auth.resume("t1", "admin", await _stamp(users))
    with pytest.raises(AuthenticationFailed):
        await auth.resume("t1", "nobody", stamp)


async def test_suspending_the_tenant_ends_its_users_sessions(users: InMemoryUsers) -> None:
    auth = Authenticator(users)
    stamp = await _stamp(users)
    await auth.resume("t1", "admin", stamp)
    users.tenants["t1"] = Tenant("t1", is_management=False, suspended=True)
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        await auth.resume("t1", "admin", stamp)
