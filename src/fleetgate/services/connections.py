"""The broker's connect and disconnect events: devices registered on their first
certificate connection, and online/offline kept true.

Every change the broker must know (a device registered) is pushed to the plugin right
after it is committed, one push per batch of events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from fleetgate.domain import broker_control as control
from fleetgate.domain.devices import (
    ConnectionStatus,
    connection_fragments,
    registration_fragments,
)
from fleetgate.domain.errors import Conflict
from fleetgate.services.ports import BrokerPush, DeviceRegistry, Inventory, TransientCheck

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: Devices whose events are applied at the same time (each holds a database connection).
_PARALLEL = 8


def _now() -> datetime:
    return datetime.now(UTC)


class Connections:
    def __init__(
        self,
        inventory: Inventory,
        registrar: DeviceRegistry,
        broker: BrokerPush,
        clock: Clock = _now,
        *,
        is_transient: TransientCheck,
    ) -> None:
        self._inventory = inventory
        self._registrar = registrar
        self._broker = broker
        self._clock = clock
        self._is_transient = is_transient

    async def on_events(self, events: list[control.Connected | control.Disconnected]) -> None:
        """Apply a batch of broker events, then tell the broker about new devices at once.

        Events of one device are applied in order; different devices in parallel (bounded
        by ``_PARALLEL``). One control push per batch: a round trip to the plugin costs
        far more than a registration, so a connect storm must not pay it per device.
        One device's failure does not hold back the others'. A device id that another
        tenant holds (the plugin's state was behind the database) makes the whole state be
        pushed again, which closes that session; any other lasting failure to register a
        new device closes its session (``device-remove``), so that no device stays connected
        and unknown. A transient failure (the database away) is raised once the batch is
        done: the caller retries the whole batch, and every step is idempotent.
        """
        by_device: dict[tuple[str, str], list[control.Connected | control.Disconnected]] = {}
        for event in events:
            by_device.setdefault((event.tenant, event.client_id), []).append(event)
        lines: list[str] = []
        transient: list[BaseException] = []
        stale_state = False
        gate = asyncio.Semaphore(_PARALLEL)

        async def apply(device_events: list[control.Connected | control.Disconnected]) -> None:
            nonlocal stale_state
            async with gate:
                for event in device_events:
                    try:
                        if isinstance(event, control.Connected):
                            line = await self._register(event)
                            if line is not None:
                                lines.append(line)
                        else:
                            await self.on_disconnected(event)
                    except Conflict as exc:
                        log.warning(
                            "device %s of tenant %s: %s", event.client_id, event.tenant, exc
                        )
                        stale_state = True
                        return
                    except Exception as exc:
                        if self._is_transient(exc):
                            transient.append(exc)
                            return
                        log.exception(
                            "broker event of device %s of tenant %s failed",
                            event.client_id,
                            event.tenant,
                        )
                        if isinstance(event, control.Connected) and event.new:
                            lines.append(control.device_remove(event.client_id))
                        return

        async with asyncio.TaskGroup() as tg:
            for device_events in by_device.values():
                tg.create_task(apply(device_events))
        if lines:
            await self._broker.push(lines)
        if stale_state:
            await self._broker.resync()
        if transient:
            raise transient[0]

    async def on_connected(self, event: control.Connected) -> None:
        """A certificate device connected: register it if new, mark it CONNECTED."""
        await self.on_events([event])

    async def _register(self, event: control.Connected) -> str | None:
        """Register/mark connected; the control line the broker then needs, if any."""
        now = self._clock()
        registration = await self._registrar.register(
            event.tenant,
            event.client_id,
            fragments=registration_fragments(event.ca_fingerprint),
            connection=connection_fragments(ConnectionStatus.CONNECTED, now),
            connection_id=event.connection_id,
            at=now,
        )
        if registration.created:
            log.info(
                "registered device %s in tenant %s (CA %s)",
                event.client_id,
                event.tenant,
                event.ca_fingerprint,
            )
        if registration.user_created or event.new:
            return control.device(event.client_id, event.tenant, registration.user_enabled)
        return None

    async def on_disconnected(self, event: control.Disconnected) -> None:
        await self._inventory.set_connection(
            event.tenant,
            event.client_id,
            connection_fragments(ConnectionStatus.DISCONNECTED, self._clock()),
            connection_id=None,
            only_if_connection=event.connection_id,
            at=self._clock(),
        )

    async def reconcile(self, live: tuple[control.LiveClient, ...]) -> None:
        """After (re)connecting to the broker: the database's online/offline follows the
        broker's live sessions (events may have been missed while we were away)."""
        live_keys = {(c.tenant, c.client_id) for c in live}
        for client in live:
            await self.on_connected(
                control.Connected(
                    client.client_id,
                    client.tenant,
                    client.ca_fingerprint,
                    False,
                    client.connection_id,
                )
            )
        for tenant_id, device_id in await self._inventory.connected_devices():
            if (tenant_id, device_id) not in live_keys:
                await self._inventory.set_connection(
                    tenant_id,
                    device_id,
                    connection_fragments(ConnectionStatus.DISCONNECTED, self._clock()),
                    connection_id=None,
                    at=self._clock(),
                )
