"""Authenticating operators and devices against the user store.

scrypt costs tens of milliseconds by design, far too much for every REST call, so a
successful check is remembered: the cache maps the *stored hash string* to a keyed
digest of the password that matched it. A changed password changes the stored hash
and so misses the cache; the cache lives in memory only, keyed with a secret made at
start-up, so it is no offline oracle. The user row itself is read for every call, so a
disabled user or a removed role takes effect at once: concurrent logins of one user share
that read (:class:`~fleetgate.services.coalescing.SharedReads`), one that always began
after the request arrived.

What an attacker can make the service hash is bounded three ways:

- an unknown user (or tenant) is refused without hashing anything;
- a known user is locked after a few failed logins (:mod:`fleetgate.domain.lockout`);
  while locked, every login is refused *before* the password is looked at, and the
  count lives in PostgreSQL, so several instances add up to one limit;
- at most ``hash_slots`` scrypt checks run at once in the process; further logins wait
  for a slot, so a flood of guesses against many users costs at most that many cores.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from fleetgate.domain.errors import AuthenticationFailed
from fleetgate.domain.lockout import DEFAULT_POLICY, LockoutPolicy, after_failure
from fleetgate.domain.passwords import verify_password
from fleetgate.domain.sessions import password_stamp
from fleetgate.domain.tenants import suspended_message
from fleetgate.domain.users import Login, Principal, Tenant, User
from fleetgate.services.coalescing import SharedReads
from fleetgate.services.ports import UserStore

_BAD_CREDENTIALS = "Invalid credentials! : Bad credentials"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Authenticator:
    def __init__(
        self,
        users: UserStore,
        *,
        cache_size: int = 10_000,
        policy: LockoutPolicy = DEFAULT_POLICY,
        hash_slots: int = 2,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._users = users
        self._found = SharedReads(self._find_user)
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._policy = policy
        self._hash_slots = asyncio.Semaphore(hash_slots)
        self._clock = clock
        #: scrypt checks run so far (for tests and the curious).
        self.hashes = 0

    async def authenticate(self, login: Login) -> Principal:
        """The principal for ``login``; :class:`AuthenticationFailed` when it does not match."""
        found = await self._found.get((login.tenant_id, login.username))
        if found is None:
            raise AuthenticationFailed(_BAD_CREDENTIALS)
        tenant, user = found
        now = self._clock()
        if user.failures.locked(now):
            assert user.failures.locked_until is not None
            until = user.failures.locked_until.isoformat(timespec="seconds")
            raise AuthenticationFailed(
                "Invalid credentials! : User account is locked after too many failed logins"
                f" until {until}; an administrator can unlock it"
            )
        if not await self._password_matches(login.password, user.password_hash):
            policy = self._policy
            await self._users.update_failures(
                tenant.id, user.username, lambda failures: after_failure(failures, now, policy)
            )
            raise AuthenticationFailed(_BAD_CREDENTIALS)
        if user.failures.count or user.failures.locked_until is not None:
            await self._users.clear_failures(tenant.id, user.username)
        if not user.enabled:
            raise AuthenticationFailed("Invalid credentials! : User account is locked")
        if tenant.suspended:
            # Said only to who knows a password of the tenant (checked above).
            raise AuthenticationFailed(f"Invalid credentials! : {suspended_message(tenant.id)}")
        return Principal(tenant=tenant, user=user, roles=user.roles)

    async def resume(self, tenant_id: str, username: str, stamp: str) -> Principal:
        """The principal of a console session (:mod:`fleetgate.domain.sessions`) that
        logged in as this user: the user is read again, so a disabled or locked user, a
        suspended tenant or a changed password (``stamp``) ends the session at once;
        :class:`AuthenticationFailed` then."""
        found = await self._found.get((tenant_id, username))
        if found is None:
            raise AuthenticationFailed(_BAD_CREDENTIALS)
        tenant, user = found
        if (
            not user.enabled
            or tenant.suspended
            or user.failures.locked(self._clock())
            or not hmac.compare_digest(password_stamp(user.password_hash), stamp)
        ):
            raise AuthenticationFailed("Invalid credentials! : the session has ended")
        return Principal(tenant=tenant, user=user, roles=user.roles)

    async def _find_user(self, key: tuple[str, str]) -> tuple[Tenant, User] | None:
        return await self._users.find_user(*key)

    async def _password_matches(self, password: str, stored: str) -> bool:
        digest = hmac.new(self._key, password.encode("utf-8"), hashlib.sha256).digest()
        known = self._verified.get(stored)
        if known is not None and hmac.compare_digest(known, digest):
            self._verified.move_to_end(stored)
            return True
        async with self._hash_slots:
            self.hashes += 1
            # scrypt holds the GIL only briefly; run it off the event loop.
            if not await asyncio.to_thread(verify_password, password, stored):
                return False
        self._verified[stored] = digest
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return True
