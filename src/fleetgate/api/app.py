"""Builds the FastAPI application from the services it is given."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from fleetgate.api import errors
from fleetgate.api.auth import ApiContext
from fleetgate.api.params import storable_parameters
from fleetgate.api.routes import (
    batch,
    binaries,
    bootstrap,
    bulk,
    bulk_operations,
    child_references,
    dead_letters,
    files,
    groups,
    health,
    identity,
    inventory,
    metrics,
    operations,
    profiles,
    tenant,
    tenant_options,
    tenants,
    trust,
    users,
)
from fleetgate.api.services import ApiServices


def create_app(ctx: ApiContext, services: ApiServices | None = None) -> FastAPI:
    """The API with its routes; ``services`` is what they use (a test may wire a part and
    fill in more through :func:`fleetgate.api.services.services_of`)."""
    app = FastAPI(
        title="fleetgate",
        description="Device management REST API, following Cumulocity's where it overlaps.",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(storable_parameters)],
    )
    app.state.context = ctx
    app.state.services = services if services is not None else ApiServices()
    errors.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(tenant.router)
    app.include_router(tenants.router)
    app.include_router(tenant_options.router)
    app.include_router(users.router)
    # Before inventory: /inventory/batchUpdates/template is not a managed object.
    app.include_router(batch.router)
    app.include_router(inventory.router)
    app.include_router(groups.router)
    app.include_router(profiles.router)
    app.include_router(child_references.router)
    app.include_router(binaries.router)
    app.include_router(files.router)
    app.include_router(identity.router)
    app.include_router(trust.router)
    app.include_router(bootstrap.router)
    app.include_router(bulk.router)
    app.include_router(operations.router)
    app.include_router(bulk_operations.router)
    app.include_router(dead_letters.router)
    return app
