"""The operations world with bulk operations: the service, its scheduler's steps, groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from fleetgate.api.services import services_of
from fleetgate.db.bulk_operations import PgBulkOperations
from fleetgate.db.groups import PgGroups
from fleetgate.db.inventory import PgInventory
from fleetgate.db.rollout_steps import PgRolloutSteps
from fleetgate.services.bulk_operations import BulkOperations

from operations_world import ADMIN, World, world

__all__ = ["world"]

PATH = "/devicecontrol/bulkoperations"
NOW = "2020-01-01T00:00:00Z"


@dataclass
class BulkWorld:
    w: World
    bulk: BulkOperations
    pool: asyncpg.Pool

    async def group(self, name: str, members: list[str], *, parent: str | None = None) -> str:
        inventory = PgInventory(self.pool)
        fragment = "c8y_IsDeviceSubgroup" if parent else "c8y_IsDeviceGroup"
        group = await inventory.create(
            "t1", name=name, type="c8y_DeviceGroup", owner=None, fragments={fragment: {}}
        )
        for member in members:
            assert await inventory.add_child("t1", group.id, "childAssets", int(member))
        if parent is not None:
            assert await inventory.add_child("t1", int(parent), "childAssets", group.id)
        return str(group.id)

    async def post(self, body: dict[str, Any], auth: tuple[str, str] = ADMIN) -> Any:
        return await self.w.api.post(PATH, json=body, auth=auth)

    async def get(self, bulk_id: str) -> dict[str, Any]:
        response = await self.w.api.get(f"{PATH}/{bulk_id}", auth=ADMIN)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def run(self, *, rounds: int = 100, keep_rate: bool = False) -> None:
        """Step every bulk operation, round after round, until a round changes nothing
        (each rate made instant, unless ``keep_rate``: then one round)."""
        for _ in range(rounds):
            await self.pool.execute(
                "UPDATE bulk_operation SET next_step_at = now(),"
                " next_creation_at = CASE WHEN $1 THEN next_creation_at"
                " ELSE least(next_creation_at, now()) END",
                keep_rate,
            )
            active = False
            while (report := await self.bulk.step()) is not None:
                active = active or bool(report.created or report.refused or report.changed)
            if keep_rate or not active:
                return

    async def operations(self, bulk_id: str) -> list[dict[str, Any]]:
        response = await self.w.api.get(
            f"/devicecontrol/operations?bulkOperationId={bulk_id}&pageSize=2000", auth=ADMIN
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["operations"]
        return found


def prototype(url: str = "http://x/fw.bin") -> dict[str, Any]:
    return {"c8y_Firmware": {"name": "fw", "version": "2.0", "url": url}}


def bulk_body(group: str, **extra: Any) -> dict[str, Any]:
    return {
        "groupId": group,
        "startDate": NOW,
        "creationRamp": 0,
        "operationPrototype": prototype(),
        **extra,
    }


@pytest.fixture
async def bulk_world(world: World, pool: asyncpg.Pool) -> BulkWorld:
    bulk = BulkOperations(
        PgBulkOperations(pool), PgRolloutSteps(pool), PgGroups(pool), world.operations
    )
    services_of(world.app).bulk_operations = bulk
    return BulkWorld(world, bulk, pool)
