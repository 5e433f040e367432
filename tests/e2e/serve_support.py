"""`fleetgate serve` as its own process on a real PostgreSQL and a real mosquitto with the
plugin, for end-to-end tests: restartable and killable, its output kept in files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetgate.db.pool import drop_database, ensure_database
from fleetgate.device.enrolment import StackInfo
from fleetgate.device.simulator import Simulation, SimulationConfig
from integration.broker_support import RunningBroker, running_broker

from conftest import free_port, shared_tmpdir

TENANT = "t77"
ADMIN = (f"{TENANT}/admin", "admin-secret-77")
MANAGEMENT = ("management/admin", "mgmt-secret-77")


class Serve:
    """One `fleetgate serve` process, restartable, with its output kept in a file."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"serve-{self.starts}.log").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetgate.cli", "serve",
            env={**os.environ, **self.env}, stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        async with httpx.AsyncClient() as client:
            for _ in range(1200):
                if self.process.returncode is not None:
                    break
                with contextlib.suppress(httpx.TransportError):
                    if (
                        await client.get(f"{self.api_url}/user/currentUser", auth=ADMIN)
                    ).is_success:
                        return
                await asyncio.sleep(0.05)
        pytest.fail(f"fleetgate serve did not come up:\n{self.output}")

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['FLEETGATE_API_PORT']}"

    @property
    def output(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob("serve-*.log"))
        )

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


@dataclass
class Stack:
    serve: Serve
    broker: RunningBroker
    info: StackInfo
    workdir: Path
    api: httpx.AsyncClient

    def simulation(self, prefix: str, devices: int, **options: Any) -> Simulation:
        config = SimulationConfig(
            stack=self.info, devices=devices, state_dir=self.workdir / "simulator",
            prefix=prefix, **options,
        )  # fmt: skip
        return Simulation(config)

    async def object_id(self, device_id: str) -> str:
        ext = await self.api.get(f"/identity/externalIds/c8y_Serial/{device_id}", auth=ADMIN)
        assert ext.status_code == 200, ext.text
        return str(ext.json()["managedObject"]["id"])

    async def group(self, name: str, object_ids: list[str]) -> str:
        """A device group made through the REST API (``POST /inventory/managedObjects``,
        then a child asset reference for each member); its id."""
        made = await self.api.post(
            "/inventory/managedObjects",
            json={"name": name, "type": "c8y_DeviceGroup", "c8y_IsDeviceGroup": {}},
            auth=ADMIN,
        )
        assert made.status_code == 201, made.text
        group = str(made.json()["id"])
        for object_id in object_ids:
            added = await self.api.post(
                f"/inventory/managedObjects/{group}/childAssets",
                json={"managedObject": {"id": object_id}},
                auth=ADMIN,
            )
            assert added.status_code == 201, added.text
        return group

    async def create(self, device_id: str, fragments: dict[str, Any]) -> dict[str, Any]:
        body = {"deviceId": await self.object_id(device_id), **fragments}
        created = await self.api.post("/devicecontrol/operations", json=body, auth=ADMIN)
        assert created.status_code == 201, created.text
        result: dict[str, Any] = created.json()
        return result

    async def operation(self, op_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/devicecontrol/operations/{op_id}", auth=ADMIN)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def declared(self, device_ids: list[str]) -> bool:
        for device_id in device_ids:
            ext = await self.api.get(f"/identity/externalIds/c8y_Serial/{device_id}", auth=ADMIN)
            if ext.status_code != 200:
                return False
            mo = await self.api.get(
                f"/inventory/managedObjects/{ext.json()['managedObject']['id']}", auth=ADMIN
            )
            if "c8y_SupportedOperations" not in mo.json():
                return False
        return True

    async def statuses(self, op_ids: list[str]) -> dict[str, str]:
        """Every operation's status, read in pages of 2,000."""
        found: dict[str, str] = {}
        page = 1
        while True:
            response = await self.api.get(
                f"/devicecontrol/operations?pageSize=2000&currentPage={page}", auth=ADMIN
            )
            batch = response.json()["operations"]
            found.update({o["id"]: o["status"] for o in batch})
            if len(batch) < 2000:
                break
            page += 1
        return {i: found[i] for i in op_ids}


@contextlib.asynccontextmanager
async def running(simulation: Simulation) -> AsyncIterator[Simulation]:
    task = asyncio.create_task(simulation.run())
    try:
        await asyncio.wait_for(asyncio.shield(simulation.ready.wait()), timeout=180)
        yield simulation
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def serve_stack(
    postgres_admin_url: str, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Stack]:
    """A fresh database, a broker with the plugin and `fleetgate serve` on them
    (``extra_env``: more settings for the service)."""
    name = f"fleetgate_e2e_{secrets.token_hex(6)}"
    await ensure_database(postgres_admin_url, name)
    workdir = shared_tmpdir("fleetgate-e2e-ops-")
    try:
        async with running_broker() as broker:
            api_port = free_port()
            base, _, _ = postgres_admin_url.rpartition("/")
            env = {
                "FLEETGATE_DATABASE_URL": f"{base}/{name}",
                "FLEETGATE_MQTT_SERVICE_PORT": str(broker.config.service_port),
                "FLEETGATE_MQTT_SERVICE_PASSWORD": broker.service_password,
                "FLEETGATE_MQTT_CAPATH": str(broker.config.trusted_dir()),
                "FLEETGATE_MQTT_DEVICE_LINK_CLIENT_ID": f"fleetgate:e2e-{secrets.token_hex(3)}",
                "FLEETGATE_API_PORT": str(api_port),
                "FLEETGATE_SEED_TENANT": TENANT,
                "FLEETGATE_SEED_ADMIN_PASSWORD": ADMIN[1],
                "FLEETGATE_SEED_MANAGEMENT_ADMIN_PASSWORD": MANAGEMENT[1],
                "FLEETGATE_SEED_BOOTSTRAP_PASSWORD": "boot-secret-77",
                "FLEETGATE_FILES_STORE": str(workdir / "files"),
                "FLEETGATE_FILES_URL_SECRET": secrets.token_hex(32),
                "FLEETGATE_LOG_LEVEL": "INFO",
                "FLEETGATE_MQTT_CERT_PORT": str(broker.config.cert_port),
                "FLEETGATE_MQTT_PASSWORD_PORT": str(broker.config.password_port),
                "FLEETGATE_MQTT_BROKER_CA_FILE": str(broker.pki.ca_file),
                **(extra_env or {}),
            }
            serve = Serve(env, workdir)
            await serve.start()
            info = StackInfo(
                api_url=serve.api_url,
                mqtt_host="localhost",
                mqtt_cert_port=broker.config.cert_port,
                ca_file=broker.pki.ca_file,
                admin={"tenant": TENANT, "username": "admin", "password": ADMIN[1]},
            )
            try:
                async with httpx.AsyncClient(base_url=serve.api_url, timeout=30) as api:
                    yield Stack(serve, broker, info, workdir, api)
            finally:
                await serve.stop()
    finally:
        await drop_database(postgres_admin_url, name)
        shutil.rmtree(workdir, ignore_errors=True)
