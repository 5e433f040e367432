"""Online and offline: what a device's managed object says about its connection, and when
a gateway's child is online (docs/protocol.md "Online and offline", decision 0008).

A device that has a connection — its own, or its gateway's — carries:

- ``c8y_Connection``: ``{"status": "CONNECTED" | "DISCONNECTED"}`` (Cumulocity's);
- ``c8y_Availability``: ``{"status": "AVAILABLE", "lastMessage": <when it last came
  online>}``, written when it comes online (Cumulocity's);
- ``fleetgate_Connection``: ``{"status": …, "gateway": <gateway id>, "reason": <why it
  is offline>}`` — ``status`` as in ``c8y_Connection``, ``gateway`` only for a child (the
  gateway it connects through), ``reason`` only while it is DISCONNECTED;
- ``fleetgate_Lifecycle``: ONLINE or OFFLINE (with the same reason), as
  :func:`fleetgate.domain.lifecycle.lifecycle` says of a device that has a connection.

A device on its own connection is online while the broker has its session (the broker's
events and live sessions say so). A **child** is online exactly while its gateway is and
the gateway has not reported it lost: :func:`child_connection`. What the database knows
of one device is :class:`ConnectionFacts`, and :func:`decide` says what to show — or
nothing, when what is shown is already right, so that applying the same facts twice
writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from fleetgate.domain import lifecycle

#: The fleetgate fragment that says through what, and why not, a device is online.
FRAGMENT = "fleetgate_Connection"
C8Y_CONNECTION = "c8y_Connection"
C8Y_AVAILABILITY = "c8y_Availability"
#: Why a device on its own connection is offline: its session ended (it left, the
#: network dropped it, or the broker closed it).
CONNECTION_CLOSED = "connection closed"


class ConnectionStatus(StrEnum):
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"


def gateway_disconnected(gateway: str) -> str:
    """The reason a child is offline while its gateway is."""
    return f"gateway {gateway} disconnected"


def reported_by_gateway(gateway: str, reason: str | None) -> str:
    """The reason a child is offline that its gateway reported (with the gateway's own
    words when it gave some)."""
    said = f"reported by gateway {gateway}"
    return f"{said}: {reason}" if reason else said


def detached_from(gateway: str) -> str:
    """The reason a device that was a child, and has no connection of its own, is offline."""
    return f"detached from gateway {gateway}"


@dataclass(frozen=True, slots=True)
class Connection:
    """What a device's managed object shows of its connection."""

    status: ConnectionStatus
    #: Why it is offline (DISCONNECTED only).
    reason: str | None = None
    #: The gateway it connects through (children only).
    gateway: str | None = None
    #: An operator disabled the device (its lifecycle shows DISABLED; the connection
    #: fragments keep telling the truth).
    disabled: bool = False
    #: The device id of its gateway, when that gateway is disabled (children only).
    disabled_gateway: str | None = None

    def __post_init__(self) -> None:
        if self.reason is not None and self.status is ConnectionStatus.CONNECTED:
            raise ValueError("a connected device has no reason to be offline")

    @property
    def connected(self) -> bool:
        return self.status is ConnectionStatus.CONNECTED

    def fragment(self) -> dict[str, str]:
        """``fleetgate_Connection``."""
        shown = {"status": self.status.value}
        if self.gateway is not None:
            shown["gateway"] = self.gateway
        if self.reason is not None:
            shown["reason"] = self.reason
        return shown

    def lifecycle(self) -> dict[str, str]:
        """``fleetgate_Lifecycle`` of a device with this connection."""
        facts = lifecycle.LifecycleFacts(
            self.connected, self.reason, self.disabled, self.disabled_gateway
        )
        return lifecycle.lifecycle(facts).fragment()

    def fragments(self, at: datetime) -> dict[str, Any]:
        """Every connection fragment to merge into the managed object; ``at`` is when the
        device came online (``c8y_Availability.lastMessage``), for a CONNECTED one."""
        fragments: dict[str, Any] = {
            C8Y_CONNECTION: {"status": self.status.value},
            FRAGMENT: self.fragment(),
            lifecycle.FRAGMENT: self.lifecycle(),
        }
        if self.connected:
            fragments[C8Y_AVAILABILITY] = {
                "status": "AVAILABLE",
                "lastMessage": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            }
        return fragments

    def is_shown_by(self, fragments: dict[str, Any]) -> bool:
        """Whether a managed object with these fragments already shows this connection."""
        return (
            fragments.get(C8Y_CONNECTION) == {"status": self.status.value}
            and fragments.get(FRAGMENT) == self.fragment()
            and fragments.get(lifecycle.FRAGMENT) == self.lifecycle()
        )


def own_connection(status: ConnectionStatus) -> Connection:
    """A device on its own broker connection: online while its session lives."""
    if status is ConnectionStatus.CONNECTED:
        return Connection(status)
    return Connection(status, CONNECTION_CLOSED)


def connection_fragments(status: ConnectionStatus, at: datetime) -> dict[str, Any]:
    """The fragments of a device on its own connection (``c8y_Availability.lastMessage``
    = ``at`` when it connects)."""
    return own_connection(status).fragments(at)


@dataclass(frozen=True, slots=True)
class Reported:
    """What a gateway last said of its child's connectivity (``connection`` message)."""

    connected: bool
    reason: str | None = None


def child_connection(
    gateway: str, gateway_connected: bool, reported: Reported | None
) -> Connection:
    """A child is CONNECTED exactly while its gateway is connected and the gateway's last
    report about it (if any) was not DISCONNECTED. An offline gateway is the reason before
    any report: the child cannot be reached either way, and the gateway's word about it
    is as old as the gateway's last connection."""
    if not gateway_connected:
        return Connection(ConnectionStatus.DISCONNECTED, gateway_disconnected(gateway), gateway)
    if reported is not None and not reported.connected:
        reason = reported_by_gateway(gateway, reported.reason)
        return Connection(ConnectionStatus.DISCONNECTED, reason, gateway)
    return Connection(ConnectionStatus.CONNECTED, gateway=gateway)


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What the database knows of one device, to decide what its connection shows."""

    #: Its fragments as stored (what it shows now).
    shown: dict[str, Any]
    #: The device id of the gateway it is attached to, or None.
    gateway: str | None = None
    gateway_connected: bool = False
    #: That gateway's last report about it (a report of another gateway does not count).
    reported: Reported | None = None
    #: It is on a broker connection of its own.
    own_connection: bool = False
    #: An operator disabled it.
    disabled: bool = False
    #: Its gateway (``gateway``) is disabled.
    gateway_disabled: bool = False


def decide(facts: ConnectionFacts) -> Connection | None:
    """What the device's connection must show, or None when nothing is to change.

    - A child: :func:`child_connection`.
    - A device that is no child but still shows a gateway (it was detached, or its
      gateway deleted) and has no connection of its own: DISCONNECTED, "detached from
      gateway <id>".
    - Anything else is the broker's events' business (its own connection) or none at all.

    The lifecycle shown with it says DISABLED when the device, or its gateway, is.
    """
    if facts.gateway is not None:
        wanted = replace(
            child_connection(facts.gateway, facts.gateway_connected, facts.reported),
            disabled=facts.disabled,
            disabled_gateway=facts.gateway if facts.gateway_disabled else None,
        )
    else:
        shown = facts.shown.get(FRAGMENT)
        former = shown.get("gateway") if isinstance(shown, dict) else None
        if facts.own_connection or not isinstance(former, str):
            return None
        wanted = Connection(
            ConnectionStatus.DISCONNECTED, detached_from(former), disabled=facts.disabled
        )
    return None if wanted.is_shown_by(facts.shown) else wanted


def shown_lifecycle(
    shown: dict[str, Any], *, disabled: bool, disabled_gateway: str | None = None
) -> dict[str, str]:
    """The ``fleetgate_Lifecycle`` of a device whose managed object shows ``shown`` (its
    connection fragments as written), once it is (or no longer is) disabled, or its
    gateway: DISABLED while either is; otherwise what its connection says — never
    connected (no ``c8y_Connection``) INACTIVE, CONNECTED ONLINE, else OFFLINE with
    ``fleetgate_Connection.reason``. Enabling a device restores exactly this."""
    c8y = shown.get(C8Y_CONNECTION)
    status = c8y.get("status") if isinstance(c8y, dict) else None
    connected = None if status is None else status == ConnectionStatus.CONNECTED.value
    reason = None
    own = shown.get(FRAGMENT)
    if connected is False and isinstance(own, dict) and isinstance(own.get("reason"), str):
        reason = own["reason"]
    facts = lifecycle.LifecycleFacts(connected, reason, disabled, disabled_gateway)
    return lifecycle.lifecycle(facts).fragment()


def disabled_lifecycle() -> dict[str, str]:
    """The ``fleetgate_Lifecycle`` of a device an operator disabled (whatever its
    connection): what a connection event of a disabled device writes."""
    return lifecycle.lifecycle(lifecycle.LifecycleFacts(None, disabled=True)).fragment()
