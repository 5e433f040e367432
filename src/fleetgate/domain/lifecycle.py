"""A device's lifecycle status, as EnOS shows it: one of INACTIVE, ONLINE, OFFLINE,
DISABLED for every device, children included (docs/api.md "Lifecycle status").

It is shown on the managed object beside Cumulocity's ``c8y_Connection`` and
``c8y_Availability`` (which stay as they are) in fleetgate's fragment:

``fleetgate_Lifecycle``: ``{"status": …, "reason": …}`` — ``reason`` only for OFFLINE
(the connection's reason, as ``fleetgate_Connection.reason``) and DISABLED.

:func:`lifecycle` is the one rule that decides it from what is known of the device
(:class:`LifecycleFacts`); every writer of a device's connection writes it with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.inventory_query import Compare, Has, Query, all_of

#: The fleetgate fragment that shows a device's lifecycle status.
FRAGMENT = "fleetgate_Lifecycle"
#: What makes a managed object a device (it has a lifecycle).
DEVICE_FRAGMENT = "c8y_IsDevice"
#: Cumulocity's fragment of a device that has (had) a connection.
CONNECTION_FRAGMENT = "c8y_Connection"


class LifecycleStatus(StrEnum):
    #: Registered, never connected.
    INACTIVE = "INACTIVE"
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    DISABLED = "DISABLED"


#: Why a device disabled by an operator is DISABLED.
DISABLED = "disabled"


def gateway_disabled(gateway: str) -> str:
    """The reason a child of a disabled gateway is DISABLED."""
    return f"gateway {gateway} disabled"


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """What a device's ``fleetgate_Lifecycle`` shows."""

    status: LifecycleStatus
    reason: str | None = None

    def fragment(self) -> dict[str, str]:
        shown = {"status": self.status.value}
        if self.reason is not None:
            shown["reason"] = self.reason
        return shown


@dataclass(frozen=True, slots=True)
class LifecycleFacts:
    """What is known of one device, to decide its lifecycle status."""

    #: Whether it is connected now (its own connection, or its gateway's for a child);
    #: None when it has never been connected.
    connected: bool | None
    #: Why it is not connected (``fleetgate_Connection.reason``), when it is not.
    offline_reason: str | None = None
    #: An operator disabled the device itself.
    disabled: bool = False
    #: The device id of its gateway, when that gateway is disabled (children only).
    disabled_gateway: str | None = None


def lifecycle(facts: LifecycleFacts) -> Lifecycle:
    """The device's lifecycle status. Disabled wins over everything (the device itself
    first, then its gateway: "gateway <id> disabled"); then never connected is INACTIVE,
    connected ONLINE, else OFFLINE with the connection's reason."""
    if facts.disabled:
        return Lifecycle(LifecycleStatus.DISABLED, DISABLED)
    if facts.disabled_gateway is not None:
        return Lifecycle(LifecycleStatus.DISABLED, gateway_disabled(facts.disabled_gateway))
    if facts.connected is None:
        return Lifecycle(LifecycleStatus.INACTIVE)
    if facts.connected:
        return Lifecycle(LifecycleStatus.ONLINE)
    return Lifecycle(LifecycleStatus.OFFLINE, facts.offline_reason)


def with_initial_lifecycle(fragments: dict[str, Any]) -> dict[str, Any]:
    """The fragments of a managed object being created: a device (``c8y_IsDevice``) that
    shows neither a lifecycle nor a connection (``c8y_Connection``) gets INACTIVE: it has
    never connected. Anything else is kept as given (a device created connected carries
    its lifecycle with its connection fragments)."""
    if DEVICE_FRAGMENT not in fragments or any(
        fragments.get(shown) is not None for shown in (FRAGMENT, CONNECTION_FRAGMENT)
    ):
        return fragments
    return {**fragments, FRAGMENT: lifecycle(LifecycleFacts(connected=None)).fragment()}


def parse_status(raw: str, *, field: str = "lifecycleStatus") -> LifecycleStatus:
    """A lifecycle status named in a request; ValidationFailed (422) for anything else."""
    try:
        return LifecycleStatus(raw)
    except ValueError:
        names = ", ".join(s.value for s in LifecycleStatus)
        raise ValidationFailed(f"{field}: {raw!r} is not a lifecycle status ({names})") from None


def devices_in(status: LifecycleStatus) -> Query:
    """The inventory query of the devices in this lifecycle status (the same as
    ``has(c8y_IsDevice) and fleetgate_Lifecycle.status eq '<status>'``)."""
    found = all_of(Has((DEVICE_FRAGMENT,)), Compare((FRAGMENT, "status"), "eq", status.value))
    assert found is not None
    return found
