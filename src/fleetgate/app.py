"""Composition root: builds the adapters and services and owns the service's TaskGroup.

``run_service`` is what ``fleetgate serve`` runs, and what ``fleetgate up`` runs after
it has started PostgreSQL and mosquitto itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from fleetgate.api import server
from fleetgate.api.app import create_app
from fleetgate.api.auth import ApiContext
from fleetgate.config import Settings, reveal
from fleetgate.db.binaries import PgBinaries
from fleetgate.db.bootstrap import PgRequests
from fleetgate.db.bulk import PgBulkCredentials
from fleetgate.db.dead_letters import PgDeadLetters
from fleetgate.db.devices import PgDevices
from fleetgate.db.identity import PgIdentity
from fleetgate.db.inventory import PgInventory
from fleetgate.db.migrations import migrate
from fleetgate.db.operations import PgOperations
from fleetgate.db.pool import Timeouts, create_pool, ping, unbounded_connection
from fleetgate.db.transient import is_transient
from fleetgate.db.trust import PgTrustStore
from fleetgate.db.users import PgUsers
from fleetgate.domain.device_messages import Incoming
from fleetgate.domain.errors import ConfigurationError
from fleetgate.domain.passwords import generate_secret
from fleetgate.domain.topics import BOOTSTRAP_REQUESTS, DEVICE_SUBSCRIPTIONS, BootstrapTopic
from fleetgate.files.store import FileStore
from fleetgate.mqtt.bridge import BrokerBridge
from fleetgate.mqtt.device_link import DeviceLink
from fleetgate.pki.capath import sync_capath
from fleetgate.services.auth import Authenticator
from fleetgate.services.binaries import Binaries
from fleetgate.services.bootstrap import Bootstrap
from fleetgate.services.broker import TrustSync, full_state
from fleetgate.services.bulk import BulkCredentials
from fleetgate.services.dead_letters import DeadLetters
from fleetgate.services.device_messages import DeviceMessages
from fleetgate.services.devices import Devices
from fleetgate.services.health import Health
from fleetgate.services.operations import FileSigning, OperationFeed, Operations
from fleetgate.services.seed import InitialState, ensure_initial_state
from fleetgate.services.trust import TrustedCertificates

log = logging.getLogger(__name__)

OnReady = Callable[[], Awaitable[None]]

#: Seconds ``/health/ready`` waits for the database (a probe's own timeout should exceed it).
READINESS_TIMEOUT = 2.0


async def run_service(settings: Settings, *, on_ready: OnReady | None = None) -> None:
    """Run the MQTT bridge and the REST API until cancelled.

    ``on_ready`` is awaited once the database is migrated, the API listens and the
    broker plugin has confirmed its state.
    """
    url = reveal(settings.database.url)
    if not url:
        raise ConfigurationError("no database configured: set FLEETGATE_DATABASE_URL")
    api_socket = server.bind(settings.api.host, settings.api.port)
    database = settings.database
    timeouts = Timeouts(
        connect=database.connect_timeout,
        acquire=database.acquire_timeout,
        command=database.command_timeout,
    )
    try:
        async with unbounded_connection(url, connect_timeout=timeouts.connect) as conn:
            await migrate(conn)
        pool = await create_pool(
            url,
            min_size=database.pool_min_size,
            max_size=database.pool_max_size,
            timeouts=timeouts,
        )
    except BaseException:
        api_socket.close()
        raise
    try:
        users = PgUsers(pool)
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
        inventory = PgInventory(pool)
        trust_store = PgTrustStore(pool)
        capath = settings.mqtt.capath
        if capath is None:
            raise ConfigurationError(
                "no CA directory for the broker: set FLEETGATE_MQTT_CAPATH to the capath of"
                " mosquitto's certificate listener"
            )

        async def enabled_cas() -> dict[str, bytes]:
            return {
                c.fingerprint: c.facts.pem.encode("ascii")
                for c in await trust_store.all_certificates()
                if c.enabled
            }

        async def write_capath(certificates: Mapping[str, bytes]) -> None:
            await asyncio.to_thread(sync_capath, capath, certificates)

        async def on_bootstrap(topic: str, payload: bytes) -> tuple[str, bytes] | None:
            parsed = BootstrapTopic.parse(topic)
            if parsed is None or parsed.leaf != BootstrapTopic.REQUEST:
                return None
            return await bootstrap.ask_over_mqtt(parsed, payload)

        bridge = BrokerBridge(
            settings.mqtt,
            lambda: full_state(users, trust.broker_state),
            on_event=lambda events: devices.connections.on_events(events),
            on_live=lambda live: devices.connections.reconcile(live),
            is_transient=is_transient,
            before_sync=lambda: devices.discard_released_sessions(),
            handlers={BOOTSTRAP_REQUESTS: on_bootstrap},
        )
        bootstrap = Bootstrap(PgRequests(pool), bridge)
        devices = Devices(
            inventory,
            PgIdentity(pool),
            users,
            PgDevices(pool),
            bridge,
            is_transient=is_transient,
            files_released=lambda shas: binaries.release(shas),
        )
        trust_sync = TrustSync(enabled_cas, write_capath, bridge)
        trust = TrustedCertificates(trust_store, trust_sync)
        await trust_sync.write_capath()
        base_url = settings.api.base_url()
        url_secret = reveal(settings.files.url_secret)
        if not url_secret:
            log.warning(
                "FLEETGATE_FILES_URL_SECRET is not set: signed file URLs in commands last only"
                " as long as this process"
            )
            url_secret = generate_secret(32)
        binaries = Binaries(PgBinaries(pool), FileStore(settings.files.store))

        async def on_device_messages(messages: list[Incoming]) -> list[Incoming]:
            return await device_messages.handle(messages)

        link = DeviceLink(
            settings.mqtt,
            DEVICE_SUBSCRIPTIONS,
            on_device_messages,
            client_id=settings.mqtt.device_link_client_id,
        )
        operations = Operations(
            PgOperations(pool, base_url),
            binaries,
            link,
            FileSigning(url_secret.encode(), base_url, settings.files.url_ttl),
            OperationFeed(),
        )
        dead_letters = PgDeadLetters(pool)
        device_messages = DeviceMessages(
            operations, devices.declare, dead_letters, link, is_transient=is_transient
        )
        api = create_app(ApiContext(Authenticator(users), base_url))
        api.state.devices = devices
        api.state.trust = trust
        api.state.bootstrap = bootstrap
        api.state.bulk = BulkCredentials(PgBulkCredentials(pool), bridge)
        api.state.binaries = binaries
        api.state.operations = operations
        api.state.url_secret = url_secret.encode()
        api.state.dead_letters = DeadLetters(dead_letters)
        api.state.health = Health(
            lambda: ping(pool, READINESS_TIMEOUT),
            {"brokerBridge": bridge.synced.is_set, "deviceLink": link.ready.is_set},
            database_timeout=READINESS_TIMEOUT,
        )
        limits = settings.operations
        api_started = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(server.serve(api, api_socket, api_started), name="rest-api")
            tg.create_task(bridge.run(), name="mqtt-bridge")
            tg.create_task(link.run(), name="mqtt-device-link")
            tg.create_task(
                operations.sweep_forever(
                    limits.pending_timeout, limits.executing_timeout, limits.sweep_interval
                ),
                name="operation-timeouts",
            )
            await api_started.wait()
            await bridge.synced.wait()
            await link.ready.wait()
            await operations.dispatch_undispatched()
            log.info("fleetgate service ready")
            if on_ready is not None:
                await on_ready()
    finally:
        api_socket.close()
        await pool.close()
