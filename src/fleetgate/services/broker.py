"""What the broker plugin must know, computed from the database.

The plugin decides nothing that needs the database: the service computes the accounts,
trusted CAs and devices the broker must know and pushes them as control lines
(docs/decisions/0001 and 0002).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from fleetgate.domain import broker_control as control
from fleetgate.domain.devices import NO_PASSWORD, device_id_of_user
from fleetgate.domain.enablement import Enablement
from fleetgate.domain.users import Role, User, mqtt_username
from fleetgate.services.ports import BrokerPush, UserStore

log = logging.getLogger(__name__)

#: Extra state sources (the trust store's CA lines, …), each returning control lines.
LineSource = Callable[[], Awaitable[list[str]]]
#: The disabled devices (decision 0012): device id -> tenant.
DisabledDevices = Callable[[], Awaitable[dict[str, str]]]


async def _none_disabled() -> dict[str, str]:
    return {}


async def full_state(
    users: UserStore, *extra: LineSource, disabled: DisabledDevices = _none_disabled
) -> list[str]:
    """Every control line that rebuilds the plugin's state after a ``reset``.

    CAs come before devices so that, inside the one message the bridge sends, the plugin
    knows every CA before it learns the devices. A device is enabled at the broker when
    its user is and the device itself is not disabled (:mod:`fleetgate.domain.enablement`).
    """
    lines: list[str] = []
    for source in extra:
        lines.extend(await source())
    for user in await users.users_with_role(Role.DEVICE_BOOTSTRAP):
        if user.enabled:
            name = mqtt_username(user.tenant_id, user.username)
            lines.append(control.account("bootstrap", name, user.password_hash))
    kept_out = await disabled()
    with_user: set[str] = set()
    for user in await users.users_with_role(Role.DEVICE):
        device_id = device_id_of_user(user.username)
        lines.extend(device_lines(user, device_id in kept_out))
        if device_id is not None:
            with_user.add(device_id)
    # A disabled device without a user (never logged in, a child) is known disabled too,
    # as services/enablement pushes it: its first login is refused as well.
    for device_id, tenant_id in sorted(kept_out.items()):
        if device_id not in with_user:
            lines.append(control.device(device_id, tenant_id, False))
    return lines


def device_lines(user: User, device_disabled: bool = False) -> list[str]:
    """What the broker must know of one device user: the device (any identity) and, for a
    device with a password, its account — absent while the device may not log in (its
    user disabled, or the device itself: :class:`Enablement`)."""
    device_id = device_id_of_user(user.username)
    if device_id is None or Role.DEVICE not in user.roles:
        return []
    enabled = Enablement(user_enabled=user.enabled, device_disabled=device_disabled).enabled
    lines = [control.device(device_id, user.tenant_id, enabled)]
    if user.password_hash != NO_PASSWORD:
        username = control.device_username(user.tenant_id, device_id)
        if enabled:
            lines.append(control.device_account(user.tenant_id, device_id, user.password_hash))
        else:
            lines.append(control.account_remove(username))
    return lines


def removed_user_lines(tenant_id: str, device_id: str) -> list[str]:
    """The broker forgets a device's login: its certificate identity and its account, if
    any. (The device itself stays, and so does its attachment to a gateway.)"""
    return [
        control.device_remove(device_id),
        control.account_remove(control.device_username(tenant_id, device_id)),
    ]


def removed_device_lines(tenant_id: str, device_id: str) -> list[str]:
    """The broker forgets a device (deleted, or its device id taken from it): its login
    and that it was a gateway's child, if it was (the id's next holder must not be
    refused for it)."""
    return [*removed_user_lines(tenant_id, device_id), control.child_remove(device_id)]


CapathWriter = Callable[[Mapping[str, bytes]], Awaitable[None]]


class TrustSync:
    """Carries committed trust-store changes to the broker (the ``BrokerChanges`` port).

    Two things must follow the store: the capath directory OpenSSL verifies handshakes
    against, and the plugin's CA table that decides live. Both are rebuilt whole from
    the database (CA changes are rare; whole is simplest to get right with several
    service instances), the plugin's in one atomic control message.
    """

    def __init__(
        self,
        certificates: Callable[[], Awaitable[Mapping[str, bytes]]],
        write_capath: CapathWriter,
        broker: BrokerPush,
    ) -> None:
        self._certificates = certificates
        self._write_capath = write_capath
        self._broker = broker

    async def write_capath(self) -> None:
        await self._write_capath(await self._certificates())

    async def trust_changed(self, tenant_id: str) -> None:
        try:
            await self.write_capath()
            await self._broker.resync()
        except Exception:
            # The change is committed; the next resync (at the latest the next reconnect)
            # carries it. The operator's request must not fail for it.
            log.exception("could not carry the trust change of tenant %s to the broker", tenant_id)
