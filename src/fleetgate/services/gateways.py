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
from fleetgate.domain.device_messages import Declaration
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


def _now() -> datetime:
    return datetime.now(UTC)


class Gateways:
    def __init__(self, children: ChildStore, clock: Callable[[], datetime] = _now) -> None:
        self._children = children
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
        return True

    async def attached(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (child, gateway) pairs are a gateway and its child now."""
        return await self._children.attached(pairs)
