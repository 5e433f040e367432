"""The services the routes use, handed over by the composition root: one typed container
(:class:`ApiServices`) and one typed accessor per service for the routes, so that no
route reads ``app.state`` or casts what it finds there.

A route whose service was not wired answers 500 with "… is not wired": only tests wire a
part of the API; the composition root (``fleetgate.app``) wires everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

from fastapi import FastAPI, Request
from starlette.types import ASGIApp

from fleetgate.services.batch import BatchUpdates
from fleetgate.services.binaries import Binaries
from fleetgate.services.bootstrap import Bootstrap
from fleetgate.services.bulk import BulkCredentials
from fleetgate.services.bulk_operations import BulkOperations
from fleetgate.services.child_devices import ChildDevices
from fleetgate.services.credentials import DeviceCredentials
from fleetgate.services.dead_letters import DeadLetters
from fleetgate.services.device_migrations import DeviceMigrations
from fleetgate.services.devices import Devices
from fleetgate.services.enablement import DeviceEnablement
from fleetgate.services.groups import Groups
from fleetgate.services.health import Health
from fleetgate.services.operations import Operations
from fleetgate.services.operators import Operators
from fleetgate.services.profiles import Profiles
from fleetgate.services.tenant_options import TenantOptions
from fleetgate.services.tenants import Tenants
from fleetgate.services.traces import Tracing
from fleetgate.services.trust import TrustedCertificates

T = TypeVar("T")


class MetricsExposition(Protocol):
    """The service's Prometheus metrics (fleetgate.metrics.ServiceMetrics)."""

    async def exposition(self) -> tuple[bytes, str]:
        """The scrape's text and its Content-Type."""
        ...


@dataclass
class ApiServices:
    devices: Devices | None = None
    trust: TrustedCertificates | None = None
    bootstrap: Bootstrap | None = None
    bulk: BulkCredentials | None = None
    binaries: Binaries | None = None
    operations: Operations | None = None
    bulk_operations: BulkOperations | None = None
    dead_letters: DeadLetters | None = None
    health: Health | None = None
    groups: Groups | None = None
    profiles: Profiles | None = None
    tenant_options: TenantOptions | None = None
    child_devices: ChildDevices | None = None
    operators: Operators | None = None
    tenants: Tenants | None = None
    batch: BatchUpdates | None = None
    enablement: DeviceEnablement | None = None
    device_migrations: DeviceMigrations | None = None
    credentials: DeviceCredentials | None = None
    tracing: Tracing | None = None
    #: The key of signed file URLs (downloads and snapshot uploads).
    url_secret: bytes | None = None
    metrics: MetricsExposition | None = None


def services_of(app: FastAPI | ASGIApp) -> ApiServices:
    """The app's services (set by :func:`fleetgate.api.app.create_app`)."""
    found = getattr(getattr(app, "state", None), "services", None)
    if not isinstance(found, ApiServices):
        raise RuntimeError("the API was made without its services (create_app)")
    return found


def _wired(service: T | None, name: str) -> T:
    if service is None:
        raise RuntimeError(f"the API's {name} service is not wired")
    return service


def devices(request: Request) -> Devices:
    return _wired(services_of(request.app).devices, "devices")


def enablement(request: Request) -> DeviceEnablement:
    return _wired(services_of(request.app).enablement, "enablement")


def trust(request: Request) -> TrustedCertificates:
    return _wired(services_of(request.app).trust, "trust")


def bootstrap(request: Request) -> Bootstrap:
    return _wired(services_of(request.app).bootstrap, "bootstrap")


def bulk(request: Request) -> BulkCredentials:
    return _wired(services_of(request.app).bulk, "bulk")


def binaries(request: Request) -> Binaries:
    return _wired(services_of(request.app).binaries, "binaries")


def operations(request: Request) -> Operations:
    return _wired(services_of(request.app).operations, "operations")


def bulk_operations(request: Request) -> BulkOperations:
    return _wired(services_of(request.app).bulk_operations, "bulk operations")


def dead_letters(request: Request) -> DeadLetters:
    return _wired(services_of(request.app).dead_letters, "dead letters")


def health(request: Request) -> Health:
    return _wired(services_of(request.app).health, "health")


def tenant_options(request: Request) -> TenantOptions:
    return _wired(services_of(request.app).tenant_options, "tenant options")


def child_devices(request: Request) -> ChildDevices:
    return _wired(services_of(request.app).child_devices, "child devices")


def url_secret(request: Request) -> bytes:
    return _wired(services_of(request.app).url_secret, "file URL signing")


def groups(request: Request) -> Groups:
    return _wired(services_of(request.app).groups, "groups")


def profiles(request: Request) -> Profiles:
    return _wired(services_of(request.app).profiles, "profiles")


def operators(request: Request) -> Operators:
    return _wired(services_of(request.app).operators, "operators")


def tenants(request: Request) -> Tenants:
    return _wired(services_of(request.app).tenants, "tenants")


def batch(request: Request) -> BatchUpdates:
    return _wired(services_of(request.app).batch, "batch updates")


def metrics(request: Request) -> MetricsExposition:
    return _wired(services_of(request.app).metrics, "metrics")


def device_migrations(request: Request) -> DeviceMigrations:
    return _wired(services_of(request.app).device_migrations, "device migrations")


def credentials(request: Request) -> DeviceCredentials:
    return _wired(services_of(request.app).credentials, "device credentials")


def tracing(request: Request) -> Tracing:
    return _wired(services_of(request.app).tracing, "tracing")
