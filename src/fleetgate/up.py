"""``fleetgate up``: everything on one machine with embedded defaults.

Order of start: home and lock → what an ``up`` that died left running there is stopped
→ generated secrets → free ports → dev PKI → plugin build → private PostgreSQL (unless
``FLEETGATE_DATABASE_URL`` names one) → mosquitto → the service. When the service is
ready, ``<home>/stack.json`` is written and the endpoints are printed. Cancellation
(Ctrl-C, SIGTERM) unwinds in reverse order; ``stack.json`` is removed, so its presence
means "running". PostgreSQL and mosquitto die with ``up`` even when it is killed
(:func:`fleetgate.stack.processes.tethered`), and are started again when they die under it
(:func:`fleetgate.stack.supervision.keep_running`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

from pydantic import SecretStr

from fleetgate.app import run_service
from fleetgate.config import Settings, reveal
from fleetgate.domain.passwords import hash_password
from fleetgate.pki import ensure_dev_pki
from fleetgate.stack.broker import (
    BrokerConfig,
    MosquittoProcess,
    write_service_password_hash,
)
from fleetgate.stack.home import STACK_FILE, HomeSecrets, exclusive, write_private_json
from fleetgate.stack.instances import ServiceInstance
from fleetgate.stack.plugin import build_plugin, plugin_build_dir
from fleetgate.stack.postgres import ClusterLocation, PostgresCluster
from fleetgate.stack.processes import require_free_ports
from fleetgate.stack.supervision import RestartPolicy, keep_running

log = logging.getLogger(__name__)

#: How often a server that died is started again before ``up`` gives up (and stops).
RESTARTS = RestartPolicy()


def with_home_secrets(
    settings: Settings,
    secrets: HomeSecrets,
    database_url: str | None,
    capath: Path | None = None,
    broker_ca_file: Path | None = None,
) -> Settings:
    """Lay the home's generated secrets under whatever the environment set explicitly."""
    seed = settings.seed.model_copy(
        update={
            "tenant": secrets.tenant
            if "tenant" not in settings.seed.model_fields_set
            else settings.seed.tenant,
            "admin_password": settings.seed.admin_password or SecretStr(secrets.admin_password),
            "management_admin_password": settings.seed.management_admin_password
            or SecretStr(secrets.management_admin_password),
            "bootstrap_password": settings.seed.bootstrap_password
            or SecretStr(secrets.bootstrap_password),
        }
    )
    mqtt = settings.mqtt.model_copy(
        update={
            "service_password": settings.mqtt.service_password
            or SecretStr(secrets.service_password),
            "host": "127.0.0.1",
            "capath": settings.mqtt.capath or capath,
            "broker_ca_file": settings.mqtt.broker_ca_file or broker_ca_file,
        }
    )
    database = settings.database
    if database_url is not None:
        database = database.model_copy(update={"url": SecretStr(database_url)})
    files = settings.files.model_copy(
        update={
            "url_secret": settings.files.url_secret or SecretStr(secrets.url_secret),
            "store": settings.files.store
            if "store" in settings.files.model_fields_set
            else settings.stack.home.resolve() / "files",
        }
    )
    return settings.model_copy(
        update={"seed": seed, "mqtt": mqtt, "database": database, "files": files}
    )


def stack_description(settings: Settings, ca_file: Path) -> dict[str, object]:
    """The content of ``stack.json``: exactly the keys documented in the README."""
    seed = settings.seed

    return {
        "api_url": settings.api.base_url(),
        "mqtt_host": settings.mqtt.public_host,
        "mqtt_cert_port": settings.mqtt.cert_port,
        "mqtt_password_port": settings.mqtt.password_port,
        "ca_file": str(ca_file.resolve()),
        "admin": {
            "tenant": seed.tenant,
            "username": seed.admin_username,
            "password": reveal(seed.admin_password) or "",
        },
        "bootstrap": {
            "tenant": seed.tenant,
            "username": seed.bootstrap_username,
            "password": reveal(seed.bootstrap_password) or "",
        },
    }


async def run_stack(settings: Settings) -> None:
    home = settings.stack.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(home.stat().st_mode | 0o711)  # the postgres and mosquitto users pass through
    with exclusive(home) as died:
        stack_file = home / STACK_FILE
        if died is not None:
            log.warning(
                "the `fleetgate up` (pid %d) that ran on %s last ended without stopping;"
                " cleaning up after it",
                died,
                home,
            )
        stack_file.unlink(missing_ok=True)
        try:
            await _run_locked(settings, home, stack_file)
        finally:
            stack_file.unlink(missing_ok=True)


def _postgres_data(home: Path) -> Path:
    return home / "postgres" / "data"


def _mosquitto_dir(home: Path) -> Path:
    return home / "mosquitto"


async def _run_locked(settings: Settings, home: Path, stack_file: Path) -> None:
    started = asyncio.get_running_loop().time()
    # Servers of an `up` that died (one older than their tether, or killed before it
    # took) hold the data directory and the ports: stop them, by their recorded pids.
    await PostgresCluster.stop_leftover(_postgres_data(home))
    await MosquittoProcess.stop_leftover(_mosquitto_dir(home))
    secrets = HomeSecrets.load_or_create(home)
    external_db = settings.database.url is not None
    mqtt = settings.mqtt
    instances = settings.stack.instances
    ports = {
        **{
            f"REST API of instance {i}" if i else "REST API": (
                settings.api.host,
                settings.api.port + i,
            )
            for i in range(instances)
        },
        "MQTT service listener": ("127.0.0.1", mqtt.service_port),
        "MQTT certificate listener": (mqtt.bind_address, mqtt.cert_port),
        "MQTT password listener": (mqtt.bind_address, mqtt.password_port),
    }
    if not external_db:
        ports["PostgreSQL"] = ("127.0.0.1", settings.stack.postgres_port)
    require_free_ports(ports)

    pki = await asyncio.to_thread(ensure_dev_pki, settings.stack.certs_dir)
    plugin = await asyncio.to_thread(build_plugin, None, plugin_build_dir(home))
    service_hash = await asyncio.to_thread(hash_password, secrets.service_password)

    async with contextlib.AsyncExitStack() as stack:
        database_url = None
        cluster: PostgresCluster | None = None
        if not external_db:
            cluster = PostgresCluster(
                ClusterLocation(
                    _postgres_data(home),
                    settings.stack.postgres_port,
                    secrets.database_password,
                )
            )
            await stack.enter_async_context(cluster)
            database_url = cluster.location.url()
        capath = _mosquitto_dir(home) / "trusted"
        settings = with_home_secrets(settings, secrets, database_url, capath, pki.ca_file)
        assert settings.mqtt.service_password is not None
        hash_file = _mosquitto_dir(home) / "service_password.hash"
        write_service_password_hash(hash_file, service_hash)
        broker = MosquittoProcess(
            BrokerConfig(
                service_port=mqtt.service_port,
                cert_port=mqtt.cert_port,
                password_port=mqtt.password_port,
                bind_address=mqtt.bind_address,
                ca_file=pki.ca_file,
                server_cert=pki.server_cert,
                server_key=pki.server_key,
                persistence_dir=_mosquitto_dir(home) / "data",
                service_username=mqtt.service_username,
                service_password_hash_file=hash_file,
                plugin_path=plugin,
                capath=settings.mqtt.capath,
                user="mosquitto" if os.geteuid() == 0 else None,
            ),
            _mosquitto_dir(home),
        )
        await stack.enter_async_context(broker)

        children = (
            [ServiceInstance(settings, i, home / "instances") for i in range(instances)]
            if instances > 1
            else []
        )

        async def announce() -> None:
            description = stack_description(settings, pki.ca_file)
            if children:
                description["api_urls"] = [c.api_url for c in children]
            write_private_json(stack_file, description)
            elapsed = asyncio.get_running_loop().time() - started
            _print_endpoints(settings, pki.ca_file, stack_file, elapsed)
            for child in children[1:]:
                print(f"  REST API, instance {child.index}  {child.api_url}", flush=True)

        async with asyncio.TaskGroup() as tg:
            if children:
                for child in children:
                    stack.push_async_callback(child.stop)
                # The first migrates and seeds; the others then start together.
                await children[0].start()
                await asyncio.gather(*(c.start() for c in children[1:]))
                for child in children:
                    tg.create_task(
                        keep_running(f"service instance {child.index}", child, RESTARTS),
                        name=f"keep-service-{child.index}",
                    )
                await announce()
            else:
                tg.create_task(run_service(settings, on_ready=announce), name="service")
            tg.create_task(keep_running("mosquitto", broker, RESTARTS), name="keep-mosquitto")
            if cluster is not None:
                tg.create_task(
                    keep_running("PostgreSQL", cluster, RESTARTS), name="keep-postgresql"
                )


def _print_endpoints(settings: Settings, ca_file: Path, stack_file: Path, elapsed: float) -> None:
    mqtt = settings.mqtt
    seed = settings.seed
    print(
        f"fleetgate is ready ({elapsed:.1f} s)\n"
        f"  REST API                  {settings.api.base_url()}"
        f" (browse it: {settings.api.base_url()}/docs)\n"
        f"  MQTT, client certificate  mqtts://{mqtt.public_host}:{mqtt.cert_port}\n"
        f"  MQTT, username/password   mqtts://{mqtt.public_host}:{mqtt.password_port}\n"
        f"  broker CA for devices     {ca_file.resolve()}\n"
        f"  admin                     {seed.tenant}/{seed.admin_username}"
        f" (password in {stack_file})\n"
        f"  bootstrap account         {seed.tenant}/{seed.bootstrap_username}\n"
        "Stop with Ctrl-C.",
        file=sys.stdout,
        flush=True,
    )
