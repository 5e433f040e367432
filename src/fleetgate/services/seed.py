"""What exists after the first start: a management tenant and one ordinary tenant.

Idempotent: a later start creates only what is missing and never overwrites a user
that exists (an operator may have changed its password since).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from fleetgate.domain.errors import ConfigurationError
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import (
    ADMIN_ROLES,
    BOOTSTRAP_ROLES,
    MANAGEMENT_ADMIN_ROLES,
    Role,
    Tenant,
)
from fleetgate.services.ports import UserStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SeedUser:
    tenant_id: str
    username: str
    password: str | None
    roles: frozenset[Role]


@dataclass(frozen=True, slots=True)
class InitialState:
    management_tenant: str
    tenant: str
    management_admin: SeedUser
    admin: SeedUser
    bootstrap: SeedUser

    @classmethod
    def build(
        cls,
        *,
        management_tenant: str,
        tenant: str,
        admin_username: str,
        admin_password: str | None,
        management_admin_password: str | None,
        bootstrap_username: str,
        bootstrap_password: str | None,
    ) -> InitialState:
        return cls(
            management_tenant=management_tenant,
            tenant=tenant,
            management_admin=SeedUser(
                management_tenant,
                admin_username,
                management_admin_password,
                MANAGEMENT_ADMIN_ROLES,
            ),
            admin=SeedUser(tenant, admin_username, admin_password, ADMIN_ROLES),
            bootstrap=SeedUser(tenant, bootstrap_username, bootstrap_password, BOOTSTRAP_ROLES),
        )


async def ensure_initial_state(store: UserStore, state: InitialState) -> None:
    if await store.ensure_tenant(Tenant(state.management_tenant, is_management=True)):
        log.info("created management tenant %s", state.management_tenant)
    if await store.ensure_tenant(Tenant(state.tenant, is_management=False)):
        log.info("created tenant %s", state.tenant)
    for user in (state.management_admin, state.admin, state.bootstrap):
        if await store.find_user(user.tenant_id, user.username) is not None:
            continue
        if user.password is None:
            raise ConfigurationError(
                f"the first start creates the user {user.tenant_id}/{user.username} and needs"
                " its password: set the FLEETGATE_SEED_*_PASSWORD settings"
            )
        hashed = await asyncio.to_thread(hash_password, user.password)
        if await store.ensure_user(user.tenant_id, user.username, hashed, user.roles):
            log.info("created user %s/%s", user.tenant_id, user.username)
