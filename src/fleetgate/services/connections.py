"""The broker's connect and disconnect events: devices registered on their first
certificate connection, and online/offline kept true — for devices on their own
connection and for gateways' children (decision 0008).

Every change the broker must know (a device registered, a child attached or detached) is
pushed to the plugin right after it is committed, one push per batch.

A child's connection follows its gateway's and what the gateway reported of it
(:mod:`fleetgate.domain.connections`): after every batch of broker events the children of
the devices in it are brought up to date (set-based, one transaction however many
children), and so are they after a reconcile, a connectivity report or an attachment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from fleetgate.domain import broker_control as control
from fleetgate.domain.connections import ConnectionStatus, connection_fragments
from fleetgate.domain.device_messages import ConnectivityReport, DeviceError
from fleetgate.domain.devices import ca_fragment, registration_fragments
from fleetgate.domain.errors import Conflict
from fleetgate.domain.gateways import NOT_A_CHILD
from fleetgate.domain.topics import DeviceLeaf, DeviceTopic
from fleetgate.services.ports import (
    BrokerPush,
    ChildConnections,
    DeviceRegistry,
    Inventory,
    TransientCheck,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: Devices whose events are applied at the same time (each holds a database connection).
_PARALLEL = 8


def _now() -> datetime:
    return datetime.now(UTC)


def not_a_child(report: ConnectivityReport) -> DeviceError:
    """The answer to a connectivity report about a device that is not (or no longer) the
    reporting gateway's child, on the child's ``error`` topic under the gateway."""
    topic = DeviceTopic(report.device_id, DeviceLeaf.CONNECTION, report.gateway)
    return DeviceError(
        report.device_id,
        NOT_A_CHILD,
        f"device {report.device_id} is not a child of gateway {report.gateway}",
        str(topic),
        gateway=report.gateway,
    )


class Connections:
    def __init__(
        self,
        inventory: Inventory,
        registrar: DeviceRegistry,
        broker: BrokerPush,
        clock: Clock = _now,
        *,
        is_transient: TransientCheck,
        child_connections: ChildConnections | None = None,
    ) -> None:
        """``child_connections``: None only where no gateway has children (tests of devices
        alone)."""
        self._inventory = inventory
        self._registrar = registrar
        self._broker = broker
        self._clock = clock
        self._is_transient = is_transient
        self._children = child_connections

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

        Then the children of the devices in the batch (and those of them that are
        children) are brought up to date in one go: a gateway that left takes its
        children offline, one that came back brings them online.
        """
        await self._apply_events(events)
        if self._children is not None:
            await self._children.refresh(
                sorted({(e.tenant, e.client_id) for e in events}), self._clock()
            )

    async def _apply_events(self, events: list[control.Connected | control.Disconnected]) -> None:
        """What :meth:`on_events` does to the devices themselves (``reconcile`` brings
        the children up to date once, for all, afterwards)."""
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
                            await self._disconnected(event)
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
            # The CA of every certificate login is kept (a migration checks that the
            # target tenant trusts it: decision 0014).
            connection=connection_fragments(ConnectionStatus.CONNECTED, now)
            | ca_fragment(event.ca_fingerprint),
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
        """A device's connection ended: mark it DISCONNECTED (unless it is on a newer one)."""
        await self.on_events([event])

    async def _disconnected(self, event: control.Disconnected) -> None:
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
        broker's live sessions (events may have been missed while we were away), and then
        every child's follows its gateway's."""
        live_keys = {(c.tenant, c.client_id) for c in live}
        await self._apply_events(
            [
                control.Connected(
                    client.client_id,
                    client.tenant,
                    client.ca_fingerprint,
                    False,
                    client.connection_id,
                )
                for client in live
            ]
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
        if self._children is not None:
            await self._children.refresh_all(self._clock())

    # -- gateways' children ------------------------------------------------------------

    async def on_connectivity(self, reports: Sequence[ConnectivityReport]) -> list[DeviceError]:
        """Apply what gateways reported of their children's connectivity
        (``fg/d/<gateway>/c/<child>/connection``), in order, in one transaction: each
        child's last report is kept and its connection brought up to date. A report about
        a device that is not the reporting gateway's child (in the gateway's tenant)
        changes nothing and is answered with ``devices/notAChild``: the errors to send.
        Idempotent: a redelivered report changes nothing more. Raises what the database
        raises (the caller retries a transient failure)."""
        if not reports:
            return []
        refused = await self._store().report(reports, self._clock())
        for report in refused:
            log.info(
                "gateway %s reported the connectivity of %s, which is not its child",
                report.gateway,
                report.device_id,
            )
        return [not_a_child(r) for r in refused]

    async def children_changed(
        self, tenant_id: str, changes: Sequence[tuple[str, str | None]]
    ) -> None:
        """Children were attached or detached (committed): ``changes`` holds (child device
        id, its gateway's device id, or None when it was detached).

        The broker learns it in one push, so that an attached child's own login is refused
        from now on and a live one closed at once, and a detached child may log in by
        itself again (decision 0008). Then the children's connection is brought up to
        date: an attached one follows its gateway's, a detached one without a connection
        of its own is DISCONNECTED ("detached from gateway <id>"). Idempotent; raises
        only what the database raises (the broker's part is done by then)."""
        if not changes:
            return
        await self._broker.push(
            [
                control.child_remove(child) if gateway is None else control.child(child, gateway)
                for child, gateway in changes
            ]
        )
        await self._store().refresh([(tenant_id, child) for child, _ in changes], self._clock())

    async def broker_state(self) -> list[str]:
        """The ``child`` lines of the plugin's full state: every attached child. (A pair
        the plugin would refuse — not device ids — is left out with a warning rather than
        keep the whole state from the broker.)"""
        if self._children is None:
            return []
        lines: list[str] = []
        for child, gateway in await self._children.attached():
            try:
                lines.append(control.child(child, gateway))
            except ValueError as exc:
                log.warning(
                    "child %r of gateway %r left out of the broker's state: %s", child, gateway, exc
                )
        return lines

    def _store(self) -> ChildConnections:
        if self._children is None:
            raise RuntimeError("Connections was made without its children's store")
        return self._children
