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

    async def disabled_children(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (child, gateway) pairs name a gateway's child that is disabled."""


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

    async def declare_children(
        self, declarations: Sequence[tuple[Declaration, bool]]
    ) -> list[bool | ValidationFailed]:
        """Apply gateways' declarations of their children (each with whether it is its
        last try), each in its own transaction; for each: True when applied, False when
        its gateway is not registered yet (its registration on connect may not be
        committed), or the ValidationFailed (``devices/childRefused``) saying why nothing
        was done. The children registered are then pushed to the broker in one push per
        tenant — their own logins are refused from then on (decision 0008) — however many
        a batch registers (a gateway declaring a thousand children after its first
        connect)."""
        results: list[bool | ValidationFailed] = []
        registered: dict[str, list[tuple[str, str | None]]] = {}
        for declaration, last_try in declarations:
            try:
                outcome = await self._declare(declaration, last_try)
            except ValidationFailed as refused:
                results.append(refused)
                continue
            if isinstance(outcome, str):
                registered.setdefault(outcome, []).append(
                    (declaration.device_id, declaration.gateway)
                )
            results.append(outcome is not False)
        for tenant_id, changes in registered.items():
            await self._connectivity.children_changed(tenant_id, changes)
        return results

    async def declare_child(self, declaration: Declaration, last_try: bool) -> bool:
        """:meth:`declare_children` for one declaration (a refusal is raised)."""
        [result] = await self.declare_children([(declaration, last_try)])
        if isinstance(result, ValidationFailed):
            raise result
        return result

    async def _declare(self, declaration: Declaration, last_try: bool) -> str | bool:
        """Apply one declaration: the tenant of a child it registered, True when it
        applied to a known child, False when its gateway is unknown yet."""
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
            raise ValidationFailed(done.decision.reason, code=done.decision.code)
        if not done.created:
            return True
        log.info(
            "registered child %s of gateway %s in tenant %s",
            declaration.device_id,
            gateway,
            done.tenant_id,
        )
        return done.tenant_id

    async def on_connectivity(self, reports: Sequence[ConnectivityReport]) -> list[DeviceError]:
        """What gateways report of reaching their children: applied; the errors to send."""
        return await self._connectivity.on_connectivity(reports)

    async def attached(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (child, gateway) pairs are a gateway and its child now."""
        return await self._children.attached(pairs)

    async def disabled_children(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (child, gateway) pairs name a gateway's child that an operator disabled:
        the gateway's messages for it are refused (decision 0012)."""
        return await self._children.disabled_children(pairs)
