"""Whether a device may log in and take its commands: the one rule (decision 0012).

A device is kept from the broker when an operator disabled **the device itself** (the
managed object's ``disabled`` flag, ``POST /inventory/managedObjects/{id}/disable``) or
**its device user** (``device_<id>``, ``enabled: false``). fleetgate keeps the two
consistent (each change writes both), but what is pushed to the broker is computed from
both, here, so that one stale flag never lets a device in. Further reasons to keep a
device out (a suspended tenant) join :class:`Enablement` as fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetgate.domain.users import User


@dataclass(frozen=True, slots=True)
class Enablement:
    """What decides whether a device may log in."""

    #: Its ``device_<id>`` user is enabled (True for a device without a user).
    user_enabled: bool = True
    #: An operator disabled the device itself.
    device_disabled: bool = False

    @property
    def enabled(self) -> bool:
        """The device may log in (the broker's ``device <id> <tenant> <enabled>``)."""
        return self.user_enabled and not self.device_disabled


def effective_enabled(user_enabled: bool, device_disabled: bool) -> bool:
    """:attr:`Enablement.enabled` of these facts."""
    return Enablement(user_enabled, device_disabled).enabled


#: Why a gateway's message about a disabled child is refused (the code it receives).
CHILD_DISABLED = "devices/childDisabled"


def child_disabled_reason(child: str, gateway: str) -> str:
    """What the gateway is told when it speaks for a disabled child."""
    return (
        f"device {child} is disabled: gateway {gateway}'s messages for it are not applied"
        " until an operator enables it"
    )


@dataclass(frozen=True, slots=True)
class Switched:
    """What disabling or enabling a managed object did (committed)."""

    object_id: int
    #: Its device id (``c8y_Serial``), if it has one.
    device_id: str | None
    #: The device id of the gateway it is a child of, if any.
    gateway: str | None
    #: It is a device (``c8y_IsDevice``); nothing was changed otherwise.
    is_device: bool
    #: The flag changed (False: it was so already; the request changed nothing).
    changed: bool
    #: Its ``device_<id>`` user as it is now, if it has one.
    user: User | None
