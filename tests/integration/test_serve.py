"""`fleetgate serve`: the production mode, against an external PostgreSQL and mosquitto."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx
import pytest
from pydantic import SecretStr

from fleetgate.config import MqttSettings
from fleetgate.mqtt.bridge import BrokerBridge

from broker_support import RunningBroker, broker, can_connect, device_client
from conftest import free_port

__all__ = ["broker"]  # fixtures

pytestmark = pytest.mark.integration


async def start_serve(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleetgate.cli",
        "serve",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def stop_serve(process: asyncio.subprocess.Process) -> int:
    """SIGTERM, as an operator stops it; a service that ignores it fails the test and is
    killed rather than left running."""
    process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("fleetgate serve ignored SIGTERM for 30 s") from None


async def wait_for_api(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            if process.returncode is not None:
                break
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    assert process.stdout is not None
    output = (await process.stdout.read()).decode()
    pytest.fail(f"fleetgate serve did not come up:\n{output}")


async def test_serve_uses_the_external_database_and_broker(
    database_url: str, broker: RunningBroker
) -> None:
    api_port = free_port()
    env = {
        "FLEETGATE_DATABASE_URL": database_url,
        "FLEETGATE_MQTT_SERVICE_PORT": str(broker.config.service_port),
        "FLEETGATE_MQTT_SERVICE_PASSWORD": broker.service_password,
        "FLEETGATE_MQTT_CAPATH": str(broker.config.trusted_dir()),
        "FLEETGATE_API_PORT": str(api_port),
        "FLEETGATE_SEED_TENANT": "t42",
        "FLEETGATE_SEED_ADMIN_PASSWORD": "admin-secret",
        "FLEETGATE_SEED_MANAGEMENT_ADMIN_PASSWORD": "mgmt-secret",
        "FLEETGATE_SEED_BOOTSTRAP_PASSWORD": "boot-secret",
    }
    process = await start_serve(env)
    try:
        api = f"http://127.0.0.1:{api_port}"
        await wait_for_api(api, process)
        async with httpx.AsyncClient(base_url=api) as client:
            me = await client.get("/user/currentUser", auth=("t42/admin", "admin-secret"))
            assert me.status_code == 200
            assert me.json()["userName"] == "admin"
        # The service pushed the bootstrap account to the external broker's plugin.
        bootstrap = device_client(
            broker,
            identifier="serve-device-1",
            username="t42/devicebootstrap",
            password="boot-secret",
        )
        for _ in range(100):
            if await can_connect(bootstrap):
                break
            await asyncio.sleep(0.1)
            bootstrap = device_client(
                broker,
                identifier="serve-device-1",
                username="t42/devicebootstrap",
                password="boot-secret",
            )
        else:
            pytest.fail("the bootstrap account never reached the broker")
    finally:
        code = await stop_serve(process)
    assert code == 0


async def test_serve_without_a_database_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETGATE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleetgate.cli",
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert b"FLEETGATE_DATABASE_URL" in output


async def test_serve_with_wrong_broker_password_keeps_retrying_without_being_ready(
    database_url: str, broker: RunningBroker
) -> None:
    """The service does not call itself ready until the plugin has its state."""
    env = {
        "FLEETGATE_DATABASE_URL": database_url,
        "FLEETGATE_MQTT_SERVICE_PORT": str(broker.config.service_port),
        "FLEETGATE_MQTT_SERVICE_PASSWORD": "not-the-service-password",
        "FLEETGATE_MQTT_CAPATH": str(broker.config.trusted_dir()),
        "FLEETGATE_API_PORT": str(free_port()),
        "FLEETGATE_SEED_ADMIN_PASSWORD": "a",
        "FLEETGATE_SEED_MANAGEMENT_ADMIN_PASSWORD": "m",
        "FLEETGATE_SEED_BOOTSTRAP_PASSWORD": "b",
        "FLEETGATE_MQTT_RECONNECT_MAX": "0.5",
    }
    process = await start_serve(env)
    assert process.stdout is not None
    try:
        seen = b""
        while b"not authori" not in seen.lower() and b"broker not reachable" not in seen:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, seen.decode()
            seen += line
        assert b"fleetgate service ready" not in seen
    finally:
        await stop_serve(process)


async def test_a_refused_bridge_stops_whenever_it_is_cancelled(broker: RunningBroker) -> None:
    """Cancelled at any moment of its refused connection attempts, the bridge stops.

    (CI found `serve` ignoring SIGTERM: aiomqtt reported a cancellation that arrived with
    the broker's refusal as the refusal, and the retry loop went on.)
    """
    settings = MqttSettings(
        service_port=broker.config.service_port,
        service_password=SecretStr("not-the-service-password"),
        reconnect_min=0.01,
        reconnect_max=0.02,
    )

    async def no_state() -> list[str]:
        return []

    for step in range(40):
        bridge = BrokerBridge(settings, no_state)
        task = asyncio.create_task(bridge.run())
        await asyncio.sleep(0.005 * step)  # spread over several attempts
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=10)
        assert done, f"the bridge went on after being cancelled at {0.005 * step:.3f} s"
        assert task.cancelled()
