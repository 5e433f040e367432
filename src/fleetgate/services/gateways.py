"""Gateways speaking for their children (docs/protocol.md, "Gateways and their children").

A gateway's declaration of a child registers the child the first time (when the rules of
:mod:`fleetgate.domain.gateways` allow) and updates it afterwards; every other message
about a child counts only while the child is that gateway's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from fleetgate.domain.connections import child_connection
from fleetgate.domain.device_messages import ConnectivityReport, Declaration, DeviceError
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.gateways import CHILD_REFUSED, ChildDeclared, Verdict

log = logging.getLogger(__name__)


class ChildStore(Protocol):
    """Gateways' children (``fleetgate.db.gateways``)."""

    async def declare_child(
        self, declaration: Declaration, connection: dict[str, Any], at: datetime
    ) -> ChildDeclared | None:
        """Decide and apply a gateway's declaration of a child in one transaction (a new
        child gets ``connection``'s fragments); None when the gateway is unknown."""

    async def attached(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (child, gateway) pairs are a gateway and its child now."""


class ChildConnectivity(Protocol):
    """Children's connections and the broker's view of them (``services.connections``)."""

    async def children_changed(
        self, tenant_id: str, changes: Sequence[tuple[str, str | None]]
    ) -> None:
        """Children were attached (child, gateway) or detached (child, None): committed."""

    async def on_connectivity(self, reports: Sequence[ConnectivityReport]) -> list[DeviceError]:
        """Apply gateways' reports of their children's connectivity; the errors to send."""


def _now() -> datetime:
    return datetime.now(UTC)


class Gateways:
    def __init__(
        self,
        children: ChildStore,
        connectivity: ChildConnectivity,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._children = children
        self._connectivity = connectivity
        self._clock = clock

    async def declare_child(self, declaration: Declaration, last_try: bool) -> bool:
        """Apply a gateway's declaration of one of its children. False when the gateway
        is not registered yet (its registration on connect may not be committed); a
        ValidationFailed (``devices/childRefused``) says why nothing was done."""
        gateway = declaration.gateway
        assert gateway is not None
        now = self._clock()
        # The gateway is speaking for the child: it reaches it now.
        connection = child_connection(gateway, True, None).fragments(now)
        done = await self._children.declare_child(declaration, connection, now)
        if done is None:
            if not last_try:
                return False
            raise ValidationFailed(f"Gateway {gateway} is not registered", code=CHILD_REFUSED)
        if done.decision.verdict is Verdict.REFUSED:
            assert done.decision.reason is not None
            raise ValidationFailed(done.decision.reason, code=CHILD_REFUSED)
        if done.created:
            log.info(
                "registered child %s of gateway %s in tenant %s",
                declaration.device_id,
                gateway,
                done.tenant_id,
            )
            # The broker refuses the child's own login from now on (decision 0008).
            await self._connectivity.children_changed(
                done.tenant_id, [(declaration.device_id, gateway)]
            )
        return True

    async def on_connectivity(self, reports: Sequence[ConnectivityReport]) -> list[DeviceError]:
        """What gateways report of reaching their children: applied; the errors to send."""
        return await self._connectivity.on_connectivity(reports)

    async def attached(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (child, gateway) pairs are a gateway and its child now."""
        return await self._children.attached(pairs)
