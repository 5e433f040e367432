"""The service's own connection to mosquitto, kept alive for as long as the service runs.

On every (re)connect it pushes the broker plugin's whole state — the broker keeps
nothing that cannot be rebuilt from PostgreSQL — and waits for the plugin to confirm
it (``sync`` → ``ok``) before it calls the broker ready. Between attempts it backs off
with jitter, up to ``reconnect_max`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable

import aiomqtt

from fleetgate.config import MqttSettings
from fleetgate.mqtt import control

log = logging.getLogger(__name__)

#: Produces the plugin's full state as control lines (read from the database each time).
StateSource = Callable[[], Awaitable[list[str]]]

# Lines per control message while pushing the full state: bounded messages, few round trips.
_LINES_PER_MESSAGE = 500


class BrokerBridge:
    def __init__(self, settings: MqttSettings, state: StateSource) -> None:
        self._settings = settings
        self._state = state
        self._client_id = f"fleetgate-service-{secrets.token_hex(4)}"
        #: Set while connected and the plugin has confirmed the full state.
        self.synced = asyncio.Event()

    async def run(self) -> None:
        """Connect, sync, serve; reconnect for ever. Returns only by cancellation."""
        delay = self._settings.reconnect_min
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                if self.synced.is_set():
                    log.warning("lost the broker connection: %s", exc)
                    delay = self._settings.reconnect_min
                else:
                    log.info("broker not reachable yet: %s", exc)
            finally:
                self.synced.clear()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 — jitter only
            delay = min(delay * 2, self._settings.reconnect_max)

    async def _session(self) -> None:
        password = self._settings.service_password
        async with aiomqtt.Client(
            self._settings.host,
            self._settings.service_port,
            username=self._settings.service_username,
            password=password.get_secret_value() if password else None,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=30,
        ) as client:
            await client.subscribe(control.RESPONSE_TOPIC, qos=1)
            token = secrets.token_hex(8)
            lines = [control.reset(), *await self._state()]
            for start in range(0, len(lines), _LINES_PER_MESSAGE):
                chunk = lines[start : start + _LINES_PER_MESSAGE]
                await client.publish(control.CONTROL_TOPIC, control.message(chunk), qos=1)
            await client.publish(
                control.CONTROL_TOPIC, control.message([control.sync(token)]), qos=1
            )
            async for msg in client.messages:
                if not msg.topic.matches(control.RESPONSE_TOPIC):
                    continue
                payload = msg.payload if isinstance(msg.payload, bytes) else b""
                response = control.parse_response(payload)
                for line_no, message in response.errors:
                    log.error("broker plugin refused control line %d: %s", line_no, message)
                if token in response.synced and not self.synced.is_set():
                    log.info("broker plugin synced (%d state lines)", len(lines) - 1)
                    self.synced.set()
