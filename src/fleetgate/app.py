"""Composition root: builds the adapters and services and owns the service's TaskGroup.

``run_service`` is what ``fleetgate serve`` runs, and what ``fleetgate up`` runs after
it has started PostgreSQL and mosquitto itself.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from fastapi import FastAPI

from fleetgate.api import server
from fleetgate.api.app import create_app
from fleetgate.api.auth import ApiContext
from fleetgate.api.services import ApiServices
from fleetgate.config import Settings, reveal
from fleetgate.db.batch import PgBatchUpdates
from fleetgate.db.binaries import PgBinaries
from fleetgate.db.bootstrap import PgRequests
from fleetgate.db.bulk import PgBulkCredentials
from fleetgate.db.bulk_operations import PgBulkOperations
from fleetgate.db.changes import PgChangeLog
from fleetgate.db.child_devices import PgChildDevices
from fleetgate.db.connections import PgChildConnections
from fleetgate.db.dead_letters import PgDeadLetters
from fleetgate.db.device_migrations import PgDeviceMigrations
from fleetgate.db.devices import PgDevices
from fleetgate.db.enablement import PgEnablement
from fleetgate.db.gateways import PgChildren
from fleetgate.db.groups import PgGroups
from fleetgate.db.identity import PgIdentity
from fleetgate.db.inventory import PgInventory
from fleetgate.db.link_slots import PgLinkSlots
from fleetgate.db.migrations import migrate
from fleetgate.db.operations import PgOperations
from fleetgate.db.pool import BoundedPool, Timeouts, create_pool, ping, unbounded_connection
from fleetgate.db.push_order import PgPushOrder
from fleetgate.db.rollout_steps import PgRolloutSteps
from fleetgate.db.statistics import PgFleetStatistics
from fleetgate.db.tenant_options import PgTenantOptions
from fleetgate.db.tenants import PgTenants
from fleetgate.db.traces import PgTraces
from fleetgate.db.transient import is_transient
from fleetgate.db.trust import PgTrustStore
from fleetgate.db.users import PgUsers
from fleetgate.domain.device_messages import Incoming
from fleetgate.domain.errors import ConfigurationError
from fleetgate.domain.passwords import generate_secret
from fleetgate.domain.tenants import DeletedTenant
from fleetgate.domain.topics import BOOTSTRAP_REQUESTS, DEVICE_SUBSCRIPTIONS
from fleetgate.files.store import FileStore
from fleetgate.metrics.instruments import (
    CountedDeadLetters,
    CountedReports,
    TimedPush,
    timed_batches,
)
from fleetgate.metrics.registry import PoolUsage, ServiceMetrics
from fleetgate.mqtt.bridge import BrokerBridge
from fleetgate.mqtt.device_link import DeviceLink
from fleetgate.pki.capath import sync_capath
from fleetgate.services.auth import Authenticator
from fleetgate.services.batch import BatchUpdates
from fleetgate.services.binaries import Binaries
from fleetgate.services.bootstrap import Bootstrap
from fleetgate.services.broker import DisabledDevices, TrustSync, full_state
from fleetgate.services.bulk import BulkCredentials
from fleetgate.services.bulk_operations import BulkOperations
from fleetgate.services.child_devices import ChildDevices
from fleetgate.services.credentials import BrokerAccess, DeviceCredentials, Listener
from fleetgate.services.dead_letters import DeadLetters
from fleetgate.services.device_messages import DeviceMessages
from fleetgate.services.device_migrations import DeviceMigrations
from fleetgate.services.devices import Devices
from fleetgate.services.enablement import DeviceEnablement
from fleetgate.services.gateways import Gateways
from fleetgate.services.groups import Groups
from fleetgate.services.health import Health
from fleetgate.services.operation_feed import follow
from fleetgate.services.operations import FileSigning, OperationFeed, Operations
from fleetgate.services.operators import Operators
from fleetgate.services.profiles import Profiles
from fleetgate.services.seed import InitialState, ensure_initial_state
from fleetgate.services.tenant_options import TenantOptions
from fleetgate.services.tenants import Tenants
from fleetgate.services.traces import Tracing
from fleetgate.services.trust import TrustedCertificates
from fleetgate.sheets import XlsxWorkbooks

log = logging.getLogger(__name__)

OnReady = Callable[[], Awaitable[None]]

#: Seconds ``/health/ready`` waits for the database (a probe's own timeout should exceed it).
READINESS_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Adapters:
    """The outside world as the services see it: stores on the pool, the file store and
    the two broker connections (not yet wired to the services that use them)."""

    users: PgUsers
    inventory: PgInventory
    trust_store: PgTrustStore
    dead_letters: PgDeadLetters
    bridge: BrokerBridge
    link: DeviceLink
    pool: BoundedPool
    metrics: ServiceMetrics
    #: Which broker session this instance's device link uses (decision 0018).
    slots: PgLinkSlots
    changes: PgChangeLog


@dataclass(frozen=True, slots=True)
class Services:
    devices: Devices
    trust: TrustedCertificates
    trust_sync: TrustSync
    bootstrap: Bootstrap
    bulk: BulkCredentials
    binaries: Binaries
    operations: Operations
    bulk_operations: BulkOperations
    device_messages: DeviceMessages
    dead_letters: DeadLetters
    health: Health
    tenant_options: TenantOptions
    child_devices: ChildDevices
    url_secret: bytes
    groups: Groups
    profiles: Profiles
    tenants: Tenants
    enablement: DeviceEnablement
    disabled_devices: DisabledDevices
    device_migrations: DeviceMigrations
    tracing: Tracing
    credentials: DeviceCredentials


async def run_service(settings: Settings, *, on_ready: OnReady | None = None) -> None:
    """Run the MQTT bridge and the REST API until cancelled.

    ``on_ready`` is awaited once the database is migrated, the API listens and the
    broker plugin has confirmed its state.
    """
    url = reveal(settings.database.url)
    if not url:
        raise ConfigurationError("no database configured: set FLEETGATE_DATABASE_URL")
    if settings.mqtt.capath is None:
        raise ConfigurationError(
            "no CA directory for the broker: set FLEETGATE_MQTT_CAPATH to the capath of"
            " mosquitto's certificate listener"
        )
    api_socket = server.bind(settings.api.host, settings.api.port)
    try:
        pool = await _database(url, settings)
    except BaseException:
        api_socket.close()
        raise
    try:
        await _seed(settings, PgUsers(pool))
        adapters = _adapters(settings, pool, url)
        services = _services(settings, adapters)
        _wire(adapters, services)
        await services.trust_sync.write_capath()
        adapters.metrics.observe(
            fleet=PgFleetStatistics(pool),
            pool=partial(_pool_usage, pool),
            watchers=lambda: services.operations.feed.watchers,
        )
        api = create_app(
            ApiContext(
                Authenticator(adapters.users),
                settings.api.base_url(),
                metrics_auth=settings.api.metrics_auth,
            ),
            ApiServices(
                devices=services.devices,
                trust=services.trust,
                bootstrap=services.bootstrap,
                bulk=services.bulk,
                binaries=services.binaries,
                operations=services.operations,
                bulk_operations=services.bulk_operations,
                dead_letters=services.dead_letters,
                health=services.health,
                tenant_options=services.tenant_options,
                child_devices=services.child_devices,
                url_secret=services.url_secret,
                groups=services.groups,
                profiles=services.profiles,
                operators=Operators(adapters.users),
                tenants=services.tenants,
                batch=BatchUpdates(PgBatchUpdates(pool), XlsxWorkbooks()),
                enablement=services.enablement,
                metrics=adapters.metrics,
                device_migrations=services.device_migrations,
                credentials=services.credentials,
                tracing=services.tracing,
            ),
        )
        await _serve(settings, api, api_socket, adapters, services, on_ready)
    finally:
        api_socket.close()
        await pool.close()


async def _database(url: str, settings: Settings) -> BoundedPool:
    """Migrate (on a connection of its own, with no command limit), then the bounded pool."""
    database = settings.database
    timeouts = Timeouts(
        connect=database.connect_timeout,
        acquire=database.acquire_timeout,
        command=database.command_timeout,
    )
    async with unbounded_connection(url, connect_timeout=timeouts.connect) as conn:
        await migrate(conn)
    return await create_pool(
        url, min_size=database.pool_min_size, max_size=database.pool_max_size, timeouts=timeouts
    )


async def _seed(settings: Settings, users: PgUsers) -> None:
    seed = settings.seed
    await ensure_initial_state(
        users,
        InitialState.build(
            management_tenant=seed.management_tenant,
            tenant=seed.tenant,
            admin_username=seed.admin_username,
            admin_password=reveal(seed.admin_password),
            management_admin_password=reveal(seed.management_admin_password),
            bootstrap_username=seed.bootstrap_username,
            bootstrap_password=reveal(seed.bootstrap_password),
        ),
    )


def _pool_usage(pool: BoundedPool) -> PoolUsage:
    idle = pool.get_idle_size()
    return PoolUsage(in_use=pool.get_size() - idle, idle=idle, max_size=pool.get_max_size())


def _adapters(settings: Settings, pool: BoundedPool, url: str) -> Adapters:
    metrics = ServiceMetrics()
    return Adapters(
        users=PgUsers(pool),
        inventory=PgInventory(pool),
        trust_store=PgTrustStore(pool),
        dead_letters=PgDeadLetters(pool),
        bridge=BrokerBridge(
            settings.mqtt,
            is_transient=is_transient,
            on_refusals=metrics.control_refusals.inc,
            order=PgPushOrder(pool),
        ),
        link=DeviceLink(
            settings.mqtt, DEVICE_SUBSCRIPTIONS, client_id=settings.mqtt.device_link_client_id
        ),
        pool=pool,
        metrics=metrics,
        slots=PgLinkSlots(
            url,
            settings.mqtt.device_link_client_id,
            connect_timeout=settings.database.connect_timeout,
        ),
        changes=PgChangeLog(pool),
    )


def _services(settings: Settings, adapters: Adapters) -> Services:
    pool, link, metrics = adapters.pool, adapters.link, adapters.metrics
    # Every push to the broker plugin is timed (the bridge itself stays the one to
    # run, wire and ask whether it is synced).
    bridge = TimedPush(adapters.bridge, metrics)
    base_url = settings.api.base_url()
    url_secret = reveal(settings.files.url_secret)
    if not url_secret:
        log.warning(
            "FLEETGATE_FILES_URL_SECRET is not set: signed file URLs in commands last only"
            " as long as this process"
        )
        url_secret = generate_secret(32)
    binaries = Binaries(PgBinaries(pool), FileStore(settings.files.store))
    devices = Devices(
        adapters.inventory,
        PgIdentity(pool),
        adapters.users,
        PgDevices(pool),
        bridge,
        is_transient=is_transient,
        files_released=binaries.release,
        child_connections=PgChildConnections(pool),
    )
    trust_sync = TrustSync(_enabled_cas(adapters.trust_store), _capath_writer(settings), bridge)
    traces = PgTraces(pool)
    tracing = Tracing(traces, bridge, is_transient=is_transient)
    operations = Operations(
        PgOperations(pool, base_url),
        binaries,
        link,
        FileSigning(url_secret.encode(), base_url, settings.files.url_ttl),
        OperationFeed(),
        tracer=tracing,
    )

    async def after_tenant_deletion(deleted: DeletedTenant) -> None:
        # Each step is idempotent and redone from the database after a crash (decision
        # 0013): the capath and the plugin's state at every start and bridge connect, the
        # released sessions before each full sync, unused files at every start.
        await trust_sync.trust_changed(deleted.tenant_id)
        await devices.discard_released_sessions()
        await binaries.release(deleted.file_sha256s)

    enablement_store = PgEnablement(pool)
    return Services(
        enablement=DeviceEnablement(enablement_store, adapters.inventory, bridge, operations),
        disabled_devices=enablement_store.disabled_devices,
        devices=devices,
        trust=TrustedCertificates(adapters.trust_store, trust_sync),
        trust_sync=trust_sync,
        bootstrap=Bootstrap(PgRequests(pool), bridge),
        bulk=BulkCredentials(PgBulkCredentials(pool), bridge),
        binaries=binaries,
        operations=operations,
        bulk_operations=BulkOperations(
            PgBulkOperations(pool), PgRolloutSteps(pool), PgGroups(pool), operations
        ),
        device_messages=DeviceMessages(
            CountedReports(operations, metrics),
            devices.declare,
            CountedDeadLetters(adapters.dead_letters, metrics),
            link,
            children=Gateways(PgChildren(pool), devices.connections),
            is_transient=is_transient,
            tracer=tracing,
        ),
        dead_letters=DeadLetters(adapters.dead_letters),
        health=Health(
            partial(ping, pool, READINESS_TIMEOUT),
            {"brokerBridge": adapters.bridge.synced.is_set, "deviceLink": link.ready.is_set},
            database_timeout=READINESS_TIMEOUT,
        ),
        tenant_options=TenantOptions(PgTenantOptions(pool)),
        child_devices=ChildDevices(
            PgChildDevices(pool), adapters.inventory, devices.connections.children_changed
        ),
        url_secret=url_secret.encode(),
        groups=Groups(adapters.inventory, PgGroups(pool)),
        profiles=Profiles(adapters.inventory),
        tenants=Tenants(
            PgTenants(pool),
            bridge,
            bootstrap_username=settings.seed.bootstrap_username,
            after_deletion=after_tenant_deletion,
        ),
        device_migrations=DeviceMigrations(
            PgDeviceMigrations(pool),
            bridge,
            devices.connections.children_changed,
            ttl=timedelta(seconds=settings.migrations.code_ttl),
        ),
        tracing=tracing,
        credentials=DeviceCredentials(
            traces,
            devices.get_object,
            adapters.trust_store.get,
            bridge,
            _broker_access(settings),
        ),
    )


def _broker_access(settings: Settings) -> BrokerAccess:
    """Where devices connect, as the credentials view shows it."""
    mqtt = settings.mqtt
    ca_pem = None
    if mqtt.broker_ca_file is not None:
        try:
            ca_pem = mqtt.broker_ca_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read the broker CA %s: %s", mqtt.broker_ca_file, exc)
    return BrokerAccess(
        certificate=Listener(mqtt.public_host, mqtt.cert_port),
        password=Listener(mqtt.public_host, mqtt.password_port),
        ca_pem=ca_pem,
    )


def _wire(adapters: Adapters, services: Services) -> None:
    """The broker connections learn whom they serve (the services push through them)."""
    adapters.bridge.wire(
        state=partial(
            full_state,
            adapters.users,
            services.tenants.broker_state,
            services.trust.broker_state,
            services.devices.connections.broker_state,
            services.tracing.broker_state,
            disabled=services.disabled_devices,
        ),
        on_event=services.devices.connections.on_events,
        on_live=services.devices.connections.reconcile,
        before_sync=services.devices.discard_released_sessions,
        handlers={BOOTSTRAP_REQUESTS: services.bootstrap.answer_mqtt_request},
        on_trace=services.tracing.on_broker_events,
    )
    adapters.link.handle_with(timed_batches(services.device_messages.handle, adapters.metrics))


def _enabled_cas(store: PgTrustStore) -> Callable[[], Awaitable[dict[str, bytes]]]:
    async def enabled_cas() -> dict[str, bytes]:
        return {
            c.fingerprint: c.facts.pem.encode("ascii")
            for c in await store.all_certificates()
            if c.enabled
        }

    return enabled_cas


def _capath_writer(settings: Settings) -> Callable[[Mapping[str, bytes]], Awaitable[None]]:
    capath = settings.mqtt.capath
    assert capath is not None  # run_service checked it

    async def write_capath(certificates: Mapping[str, bytes]) -> None:
        await asyncio.to_thread(sync_capath, capath, certificates)

    return write_capath


async def _collect_garbage(binaries: Binaries) -> None:
    """Remove the files no binary uses; a failure is logged (the next start tries again),
    never the end of the service."""
    try:
        await binaries.collect_garbage()
    except Exception:
        log.exception("could not remove unused files from the file store")


async def _serve(
    settings: Settings,
    api: FastAPI,
    api_socket: socket.socket,
    adapters: Adapters,
    services: Services,
    on_ready: OnReady | None,
) -> None:
    """Every long-running part in one TaskGroup; ready once the API listens, the plugin
    has its state and the device link is subscribed."""
    limits = settings.operations
    bridge, link, operations = adapters.bridge, adapters.link, services.operations
    api_started = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(server.serve(api, api_socket, api_started), name="rest-api")
        tg.create_task(bridge.run(), name="mqtt-bridge")
        tg.create_task(_device_link(adapters.slots, link), name="mqtt-device-link")
        tg.create_task(
            _drain_orphans(settings, adapters.slots, services.device_messages.handle),
            name="mqtt-orphaned-sessions",
        )
        tg.create_task(follow(operations.feed, adapters.changes), name="operation-feed")
        tg.create_task(_forget_old_changes(adapters.changes), name="operation-feed-pruning")
        tg.create_task(
            operations.sweep_forever(
                limits.pending_timeout, limits.executing_timeout, limits.sweep_interval
            ),
            name="operation-timeouts",
        )
        tg.create_task(
            services.tracing.run(settings.trace.sweep_interval, settings.trace.refresh_interval),
            name="trace-sweep",
        )
        await api_started.wait()
        await bridge.synced.wait()
        await link.ready.wait()
        await operations.dispatch_undispatched()
        # after the link is up and what a dead process left undispatched is sent
        tg.create_task(
            services.bulk_operations.run_scheduler(limits.bulk_interval), name="bulk-operations"
        )
        # files a crash left behind (a tenant deleted before its files went, …)
        tg.create_task(_collect_garbage(services.binaries), name="file-garbage")
        log.info("fleetgate service ready")
        if on_ready is not None:
            await on_ready()


#: Seconds between looks for an instance's orphaned broker session (one that died).
ORPHAN_CHECK = 2.0
#: Changes of the live stream kept for resuming, beyond those of the last hour.
CHANGES_KEPT, CHANGES_AGE = 10_000, 3600.0


async def _device_link(slots: PgLinkSlots, link: DeviceLink) -> None:
    """Serve device traffic on a slot of our own, for ever: when the slot is lost (the
    database connection that holds it ended), leave the broker session at once (another
    instance may drain it) and claim a slot anew."""
    delay = 0.5
    while True:
        try:
            async with slots.claim() as slot:
                log.info("the device link uses slot %d (%s)", slot.number, slot.client_id)
                delay = 0.5
                await link.run(slot.client_id, until=slot.lost)
            log.warning("the device link lost its slot (the database went away?)")
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("the device link waits for the database to hold a slot: %s", exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


async def _drain_orphans(
    settings: Settings, slots: PgLinkSlots, handle: Callable[..., Awaitable[list[Incoming]]]
) -> None:
    """Adopt the broker session of an instance that died, handle what it holds (what
    the dead one had not acknowledged, and what the broker dealt it since), and drop it;
    every ``ORPHAN_CHECK`` seconds."""
    while True:
        await asyncio.sleep(ORPHAN_CHECK)
        try:
            async with slots.adopt() as slot:
                if slot is None:
                    continue
                log.warning(
                    "draining the device link session %s (its instance died)", slot.client_id
                )
                drainer = DeviceLink(
                    settings.mqtt, DEVICE_SUBSCRIPTIONS, handle, client_id=slot.client_id
                )
                draining = asyncio.create_task(drainer.drain(), name="mqtt-drain")
                lost = asyncio.create_task(slot.lost.wait())
                try:
                    await asyncio.wait({draining, lost}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    lost.cancel()
                if not draining.done():
                    draining.cancel()
                    raise ConnectionError("the slot lock was lost while draining")
                log.info("drained %s: %d messages", slot.client_id, draining.result())
        except Exception as exc:
            if not is_transient(exc):
                log.exception("draining an orphaned device link session failed")
            else:
                log.warning("draining an orphaned session waits for the database: %s", exc)


async def _forget_old_changes(changes: PgChangeLog) -> None:
    while True:
        await asyncio.sleep(60)
        try:
            await changes.forget_before(CHANGES_AGE, CHANGES_KEPT)
        except Exception as exc:
            log.warning("could not prune the operation change log: %s", exc)
