"""A gateway's tree as operators shape it: which device may become whose child device.

A child device is a managed object referenced as a ``childDevices`` child of its gateway
(docs/protocol.md, "Gateways and their children"). The rules of attaching one, decided
here on what the store found under its locks (:func:`decide_attach`):

- both ends are devices that connect: a ``c8y_Serial`` (the child's id is a topic level
  of ``fg/d/<gateway>/c/<child>/…``, the gateway's the connection the child speaks on);
- one gateway at a time: a device that has a parent is refused with a
  :class:`~fleetgate.domain.errors.Conflict` naming that parent;
- one level: a gateway cannot become a child and a child cannot become a gateway (the
  topic scheme has no room for a grandchild);
- attaching a child again to its own gateway changes nothing.

An operator's per-gateway setting ``fleetgate_Gateway {"childAutoRegistration": bool}`` is
checked here (:func:`check_gateway_settings`); what it means for a gateway's own
registrations is :mod:`fleetgate.domain.gateways`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from fleetgate.domain.errors import Conflict, NotFound, ValidationFailed
from fleetgate.domain.gateways import AUTO_REGISTRATION, GATEWAY_FRAGMENT

_ONE_LEVEL = (
    "fleetgate has one level of gateways: a child speaks through its gateway's connection"
    " (fg/d/<gateway>/c/<child>/…) and cannot have children of its own"
)


class HowRemoved(StrEnum):
    """How an operator took a child from its gateway (``removed_child.how``)."""

    DETACHED = "detached"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class RemovedChild:
    """A child an operator took from a gateway: the gateway's next message about it must
    not bring it back until an operator attaches it again (``removed_child``)."""

    gateway_id: int
    #: The child's device id (``c8y_Serial``), which the gateway names it by.
    device_id: str
    removed_at: datetime
    #: The operator's user name (None when no user did it).
    removed_by: str | None
    how: HowRemoved


@dataclass(frozen=True, slots=True)
class Attached:
    """What attaching a child did, with the device ids the broker knows the two by."""

    #: False: the child was this gateway's already (nothing changed).
    made: bool
    child_device_id: str
    gateway_device_id: str


@dataclass(frozen=True, slots=True)
class Detached:
    """A child taken from its gateway: its device id (None if it has lost it since)."""

    child_device_id: str | None


@dataclass(frozen=True, slots=True)
class Gateway:
    """The gateway a device is a child of: its object id and device id (``c8y_Serial``)."""

    object_id: int
    device_id: str | None


@dataclass(frozen=True, slots=True)
class TreeEnd:
    """One end of a ``childDevices`` reference to be made, as the store found it (locked)."""

    object_id: int
    is_device: bool
    #: Its ``c8y_Serial``, the id it connects with (None: not a device that connects).
    device_id: str | None
    #: Its gateway, when it is a child.
    gateway: Gateway | None
    #: How many child devices it has (a gateway has some).
    children: int


def _shown(end: TreeEnd) -> str:
    return f"managed object {end.object_id}" + (
        f" (device {end.device_id})" if end.device_id else ""
    )


def already_a_child(child_id: int, child_device_id: str | None, gateway: Gateway) -> Conflict:
    """The refusal of a second gateway: it names the one the device has."""
    device = f" (device {child_device_id})" if child_device_id else ""
    parent = f" (device {gateway.device_id})" if gateway.device_id else ""
    return Conflict(
        f"Managed object {child_id}{device} is already a child device of gateway"
        f" {gateway.object_id}{parent}: a device belongs to one gateway at a time; detach it"
        f" there first (DELETE /inventory/managedObjects/{gateway.object_id}/childDevices/"
        f"{child_id})",
        code="inventory/Conflict",
    )


def decide_attach(
    gateway_id: int, child_id: int, gateway: TreeEnd | None, child: TreeEnd | None
) -> bool:
    """Whether to make the reference (False: the child is this gateway's already), or the
    error that refuses it: 404 for an end not in the tenant, 409 for a child that has
    another gateway, 422 for every other rule (see the module)."""
    if gateway is None or child is None:
        missing = gateway_id if gateway is None else child_id
        raise NotFound(f"Managed object {missing} not found", code="inventory/Not Found")
    if gateway.object_id == child.object_id:
        raise ValidationFailed("a device cannot be its own child device")
    for role, end in (("gateway", gateway), ("child device", child)):
        if not end.is_device or end.device_id is None:
            raise ValidationFailed(
                f"{_shown(end)} cannot be a {role}: it is not a device that connects (a"
                " managed object with c8y_IsDevice and a c8y_Serial external id)"
            )
    if child.gateway is not None:
        if child.gateway.object_id == gateway.object_id:
            return False
        raise already_a_child(child.object_id, child.device_id, child.gateway)
    if gateway.gateway is not None:
        raise ValidationFailed(
            f"{_shown(gateway)} is a child device of gateway {gateway.gateway.object_id}, so it"
            f" cannot be a gateway: {_ONE_LEVEL}"
        )
    if child.children:
        raise ValidationFailed(
            f"{_shown(child)} is a gateway with {child.children} child device(s), so it cannot"
            f" be a child device: {_ONE_LEVEL}"
        )
    return True


def check_gateway_settings(fragments: dict[str, Any]) -> None:
    """An operator's ``fleetgate_Gateway`` (in a managed object body) is
    ``{"childAutoRegistration": true|false}`` or null (removed); else 422."""
    if GATEWAY_FRAGMENT not in fragments or fragments[GATEWAY_FRAGMENT] is None:
        return
    value = fragments[GATEWAY_FRAGMENT]
    if (
        not isinstance(value, dict)
        or set(value) != {AUTO_REGISTRATION}
        or not isinstance(value[AUTO_REGISTRATION], bool)
    ):
        raise ValidationFailed(
            f'{GATEWAY_FRAGMENT} must be {{"{AUTO_REGISTRATION}": true}} or'
            f' {{"{AUTO_REGISTRATION}": false}} (or null to remove it)'
        )
