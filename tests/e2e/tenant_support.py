"""A second ordinary tenant for end-to-end tests, made with the first-start helpers on the
service's database (the REST API for tenants is another issue's): its admin and bootstrap
users, as the first start makes them for the seeded tenant."""

from __future__ import annotations

import asyncpg

from conftest import seed_tenants
from serve_support import Stack


async def add_tenant(stack: Stack, tenant: str, admin_password: str) -> tuple[str, str]:
    """Make ``tenant`` with the user ``admin``; its Basic credentials."""
    pool = await asyncpg.create_pool(
        stack.serve.env["FLEETGATE_DATABASE_URL"], min_size=1, max_size=1
    )
    try:
        await seed_tenants(
            pool, tenant, admin_password=admin_password, bootstrap_password=f"boot-{tenant}"
        )
    finally:
        await pool.close()
    return f"{tenant}/admin", admin_password
