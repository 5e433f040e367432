"""Gateways and their children: who may speak for a child, and when a gateway's message
registers one (docs/protocol.md, "Gateways and their children").

A child is a device whose only connection is its gateway's: the gateway publishes for it
inside its own namespace, ``fg/d/<gateway>/c/<child>/…``. The first valid declaration of
an unknown child registers it — unless that would take a device from someone (another
gateway, the tenant's own plain devices, another tenant), bring back a child an operator
removed, or the gateway or tenant switched child auto-registration off. The rules are a
pure function of what the store found under the child id's lock (:class:`ChildClaim`),
so the database adapter and the in-memory one decide alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from fleetgate.domain.devices import device_username
from fleetgate.domain.enablement import CHILD_DISABLED, child_disabled_reason

#: The reference kind that makes a device a gateway's child (Cumulocity's).
CHILD_DEVICES = "childDevices"
#: The type a child gets when its first declaration names none.
CHILD_DEVICE_TYPE = "c8y_MQTTChildDevice"
#: The operator's per-gateway settings: ``{"childAutoRegistration": bool}``.
GATEWAY_FRAGMENT = "fleetgate_Gateway"
AUTO_REGISTRATION = "childAutoRegistration"
#: The tenant option (category, key) that switches child auto-registration for a tenant.
TENANT_OPTION = ("fleetgate.gateways", AUTO_REGISTRATION)
#: Why a gateway's message about a child is refused (the code its gateway receives).
CHILD_REFUSED = "devices/childRefused"
NOT_A_CHILD = "devices/notAChild"


def gateway_auto_registration(fragments: dict[str, Any]) -> bool:
    """Whether a gateway's own settings let it register children (on unless switched off)."""
    settings = fragments.get(GATEWAY_FRAGMENT)
    if isinstance(settings, dict):
        return settings.get(AUTO_REGISTRATION) is not False
    return True


@dataclass(frozen=True, slots=True)
class Holder:
    """The device of the gateway's tenant that holds a child's id already."""

    object_id: int
    #: The device id of its gateway (None: it has none).
    gateway: str | None
    #: An operator disabled it (decision 0012).
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class Removal:
    """An operator took this child from this gateway."""

    how: str  # "detached" | "deleted"
    at: datetime


@dataclass(frozen=True, slots=True)
class ChildClaim:
    """What deciding a gateway's declaration of a child needs, read under the lock of the
    child's id (nobody registers or takes that id meanwhile)."""

    gateway: str
    tenant_id: str
    gateway_object_id: int
    #: The device id of the gateway's own gateway (children have no children).
    gateway_parent: str | None
    #: A device or new device request of another tenant holds the child's id.
    held_elsewhere: bool
    #: The device of the gateway's tenant that holds it.
    holder: Holder | None
    removal: Removal | None
    auto_registration: bool


class Verdict(StrEnum):
    KNOWN = "known"  # the gateway's child already: apply the declaration
    REGISTER = "register"  # new: register it as the gateway's child, then apply
    REFUSED = "refused"  # nothing is created or changed; ``reason`` says why


@dataclass(frozen=True, slots=True)
class ChildDecision:
    verdict: Verdict
    reason: str | None = None
    #: The code the gateway receives with a refusal.
    code: str = CHILD_REFUSED


def decide_child(claim: ChildClaim, child: str) -> ChildDecision:
    """Whether ``claim.gateway`` may speak for ``child`` (and register it when unknown)."""
    gateway = claim.gateway

    def refused(reason: str) -> ChildDecision:
        return ChildDecision(Verdict.REFUSED, reason)

    if child == gateway:
        return refused(f"gateway {gateway} cannot be its own child")
    if claim.gateway_parent is not None:
        return refused(
            f"gateway {gateway} is itself a child of gateway {claim.gateway_parent}:"
            " a child cannot have children"
        )
    if claim.held_elsewhere:
        return refused(f"device id {child} is held by a device of another tenant")
    if claim.removal is not None:
        # Detached (the device stays) or deleted: either way the operator's word holds.
        return refused(
            f"an operator removed child {child} from gateway {gateway}"
            f" ({claim.removal.how} at {claim.removal.at.isoformat()}); it is not registered"
            " or taken back until an operator attaches it to this gateway again"
        )
    holder = claim.holder
    if holder is not None:
        if holder.gateway == gateway:
            if holder.disabled:
                return ChildDecision(
                    Verdict.REFUSED, child_disabled_reason(child, gateway), CHILD_DISABLED
                )
            return ChildDecision(Verdict.KNOWN)
        if holder.gateway is not None:
            return refused(f"device {child} is a child of gateway {holder.gateway}")
        return refused(
            f"device {child} is a device of this tenant, not a child of gateway {gateway};"
            " an operator may attach it (POST /inventory/managedObjects/"
            f"{claim.gateway_object_id}/childDevices)"
        )
    if not claim.auto_registration:
        return refused(
            f"child auto-registration is switched off for gateway {gateway}: an operator"
            " must create and attach the child"
        )
    return ChildDecision(Verdict.REGISTER)


def child_registration(child: str, gateway: str, plain: dict[str, str | None]) -> dict[str, Any]:
    """The new child's name, type and owner (before its declaration is merged)."""
    return {
        "name": plain.get("name") or child,
        "type": plain.get("type") or CHILD_DEVICE_TYPE,
        "owner": device_username(gateway),
    }


@dataclass(frozen=True, slots=True)
class ChildDeclared:
    """What a gateway's declaration of a child did."""

    decision: ChildDecision
    tenant_id: str
    #: The child's managed object (None when refused).
    object_id: int | None = None

    @property
    def created(self) -> bool:
        return self.decision.verdict is Verdict.REGISTER
