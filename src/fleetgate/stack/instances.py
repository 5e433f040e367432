"""``fleetgate up --instances N``: N service processes (``fleetgate serve``) beside the
embedded PostgreSQL and mosquitto, all equal (decision 0018).

Instance ``i`` serves the REST API on ``api_port + i`` (distinct ports, not one shared
with ``SO_REUSEPORT``: a load balancer in front is the operator's choice, and tests and
benchmarks must reach one instance on purpose). Each is tethered to ``up`` (SIGTERM when
``up`` dies), records its pid in ``<home>/instances/<i>.pid`` and is started again by
:func:`fleetgate.stack.supervision.keep_running` when it dies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from fleetgate.config import Settings, reveal
from fleetgate.domain.errors import ConfigurationError
from fleetgate.stack.processes import RunAs, tethered

log = logging.getLogger(__name__)

_LOG_TAIL = 50


def instance_environment(settings: Settings, index: int) -> dict[str, str]:
    """The environment of instance ``index``: every setting the service reads, as ``up``
    resolved it, with the instance's own API port."""
    db, mqtt, api, seed, files = (
        settings.database,
        settings.mqtt,
        settings.api,
        settings.seed,
        settings.files,
    )
    values: Mapping[str, object | None] = {
        "DATABASE_URL": reveal(db.url),
        "DATABASE_POOL_MAX_SIZE": db.pool_max_size,
        "MQTT_HOST": mqtt.host,
        "MQTT_SERVICE_PORT": mqtt.service_port,
        "MQTT_SERVICE_USERNAME": mqtt.service_username,
        "MQTT_SERVICE_PASSWORD": reveal(mqtt.service_password),
        "MQTT_DEVICE_LINK_CLIENT_ID": mqtt.device_link_client_id,
        "MQTT_CERT_PORT": mqtt.cert_port,
        "MQTT_PASSWORD_PORT": mqtt.password_port,
        "MQTT_CAPATH": mqtt.capath,
        "MQTT_PUBLIC_HOST": mqtt.public_host,
        "API_HOST": api.host,
        "API_PORT": api.port + index,
        "SEED_MANAGEMENT_TENANT": seed.management_tenant,
        "SEED_TENANT": seed.tenant,
        "SEED_ADMIN_USERNAME": seed.admin_username,
        "SEED_ADMIN_PASSWORD": reveal(seed.admin_password),
        "SEED_MANAGEMENT_ADMIN_PASSWORD": reveal(seed.management_admin_password),
        "SEED_BOOTSTRAP_USERNAME": seed.bootstrap_username,
        "SEED_BOOTSTRAP_PASSWORD": reveal(seed.bootstrap_password),
        "FILES_URL_SECRET": reveal(files.url_secret),
        "FILES_STORE": files.store,
        "LOG_LEVEL": settings.log_level,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETGATE_")}
    env.update({f"FLEETGATE_{k}": str(v) for k, v in values.items() if v is not None})
    return env


class ServiceInstance:
    """One ``fleetgate serve`` child; a :class:`fleetgate.stack.supervision.Server`."""

    def __init__(
        self, settings: Settings, index: int, run_dir: Path, *, start_timeout: float = 120.0
    ) -> None:
        self.index = index
        self.api_url = f"http://{settings.api.host}:{settings.api.port + index}"
        self._env = instance_environment(settings, index)
        self.pid_file = run_dir / f"{index}.pid"
        self._run_dir = run_dir
        self._start_timeout = start_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        """Spawn it and return once ``/health/ready`` answers 200."""
        self._run_dir.mkdir(parents=True, exist_ok=True)
        self._tail.clear()
        command = [sys.executable, "-m", "fleetgate.cli", "serve"]
        me = RunAs(None, os.getuid(), os.getgid())
        self._process = await asyncio.create_subprocess_exec(
            *tethered(command, me, signal.SIGTERM),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._env,
            start_new_session=True,
        )
        self.pid_file.write_text(f"{self._process.pid}\n")
        self._pump = asyncio.create_task(
            self._pump_log(self._process), name=f"service-{self.index}"
        )
        try:
            await asyncio.wait_for(self._wait_ready(self._process), self._start_timeout)
        except TimeoutError:
            await self.stop()
            raise ConfigurationError(
                f"service instance {self.index} was not ready within {self._start_timeout:.0f} s;"
                f" last output:\n{self.last_output()}"
            ) from None
        except BaseException:
            await self.stop()
            raise
        log.info("service instance %d running (pid %s) at %s", self.index, self.pid, self.api_url)

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while process.returncode is None:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.api_url}/health/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise ConfigurationError(
            f"service instance {self.index} exited (status {process.returncode});"
            f" last output:\n{self.last_output()}"
        )

    async def wait(self) -> int | None:
        if self._process is None:
            return None
        return await self._process.wait()

    async def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the service shuts down cleanly), SIGKILL after ``timeout``."""
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._pump is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._pump, 5)
        self.pid_file.unlink(missing_ok=True)

    async def _pump_log(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._tail.append(line)
                print(f"[{self.index}] {line}", file=sys.stderr, flush=True)

    def last_output(self) -> str:
        return "\n".join(self._tail) or "(no output)"
