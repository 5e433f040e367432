"""What the broker plugin must know, computed from the database.

The plugin decides nothing that needs the database: the service computes the accounts
the broker must accept and pushes them as control lines (see docs/decisions/0001).
"""

from __future__ import annotations

from fleetgate.domain.users import Role, mqtt_username
from fleetgate.mqtt import control
from fleetgate.services.ports import UserStore


async def full_state(users: UserStore) -> list[str]:
    """Every control line that rebuilds the plugin's state after a ``reset``."""
    lines: list[str] = []
    for user in await users.users_with_role(Role.DEVICE_BOOTSTRAP):
        if user.enabled:
            name = mqtt_username(user.tenant_id, user.username)
            lines.append(control.account("bootstrap", name, user.password_hash))
    return lines
