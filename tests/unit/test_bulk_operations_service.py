"""The bulk operations use cases on in-memory ports (no mocks): targets found through the
group store (subgroups included, narrowed by ``fleetgate_Targets``), the prototype
refused before anything is made, each device checked as a single POST is (refused ones
skipped with the reason), the scheduler's steps creating and dispatching the operations,
retries of the failed through ``failedParentId``, the operators' changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from test_operations_service import World, world

from fleetgate.domain.bulk_operations import BulkFilter, BulkStatus, TargetState
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.operations import OperationFilter, Status
from fleetgate.services.bulk_operations import BulkOperations

from memory.groups import MemoryGroups

__all__ = ["world"]

NOT_APPLIED = "not(c8y_Profile.profileName eq 'p' and c8y_Profile.profileExecuted eq true)"


@dataclass
class BulkWorld:
    w: World
    bulk: BulkOperations

    async def group(self, *members: int, parent: int | None = None) -> int:
        fragment = "c8y_IsDeviceSubgroup" if parent else "c8y_IsDeviceGroup"
        made = await self.w.stores.inventory.create(
            "t1", name="g", type="c8y_DeviceGroup", owner=None, fragments={fragment: {}}
        )
        for member in members:
            assert await self.w.stores.inventory.add_child("t1", made.id, "childAssets", member)
        if parent is not None:
            assert await self.w.stores.inventory.add_child("t1", parent, "childAssets", made.id)
        return made.id

    async def run(self) -> int:
        """Step until nothing is due (a second of the database's clock each round, so
        that waiting ones come due); the operations created."""
        created = 0
        for _ in range(20):
            active = False
            while (report := await self.bulk.step()) is not None:
                created += len(report.created)
                active = active or bool(report.created or report.refused or report.changed)
            if not active:
                return created
            self.w.clock.advance(1)
        return created


@pytest.fixture
def bw(world: World) -> BulkWorld:
    stores = world.stores
    bulk = BulkOperations(
        stores.bulk_operations, stores.rollout_steps, MemoryGroups(stores.db), world.operations
    )
    return BulkWorld(world, bulk)


def body(group: int | None = None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "startDate": "2020-01-01T00:00:00Z", "creationRamp": 0,
        "operationPrototype": {"c8y_Restart": {}}, **extra,
    }  # fmt: skip
    if group is not None:
        found["groupId"] = str(group)
    return found


async def test_a_group_and_its_subgroups_get_one_dispatched_operation_each(
    bw: BulkWorld,
) -> None:
    d1, d2, d3 = [await bw.w.device(f"s-{n}") for n in (1, 2, 3)]
    top = await bw.group(d1)
    await bw.group(d2, d3, parent=top)
    bulk = await bw.bulk.create("t1", body(top))
    assert (bulk.targets, bulk.status) == (3, BulkStatus.ACTIVE)
    assert bw.bulk.wake.is_set()
    assert await bw.run() == 3
    for serial in ("s-1", "s-2", "s-3"):
        [command] = bw.w.commands(serial)
        assert command["type"] == "c8y_Restart"
    done = await bw.bulk.get("t1", bulk.id)
    assert (done.status, done.tally.pending, done.created) == (BulkStatus.COMPLETED, 3, 3)
    ops = await bw.w.stores.operations.find("t1", OperationFilter(), 0, 10, revert=False)
    assert sorted(op.device_id for op in ops) == [d1, d2, d3]
    assert {op.bulk_operation_id for op in ops} == {bulk.id}


async def test_a_query_narrows_the_group_to_the_devices_that_have_not_applied_a_profile(
    bw: BulkWorld,
) -> None:
    done, tried, fresh = [await bw.w.device(f"q-{n}") for n in (1, 2, 3)]
    applied = {"profileName": "p", "profileId": "9", "profileExecuted": True}
    await bw.w.stores.inventory.update("t1", done, {}, {"c8y_Profile": applied})
    unfinished = {**applied, "profileExecuted": False}
    await bw.w.stores.inventory.update("t1", tried, {}, {"c8y_Profile": unfinished})
    group = await bw.group(done, tried, fresh)
    bulk = await bw.bulk.create("t1", body(group, fleetgate_Targets={"query": NOT_APPLIED}))
    assert (bulk.targets, bulk.target_query) == (2, NOT_APPLIED)
    targets = await bw.bulk.targets("t1", bulk.id, None, 0, 10)
    assert sorted(t.device_id for t in targets) == [tried, fresh]
    with pytest.raises(
        ValidationFailed, match=r"fleetgate_Targets\.query: at position 8: .* found 'xor'"
    ):
        await bw.bulk.create("t1", body(group, fleetgate_Targets={"query": "has(a) xor"}))


async def test_a_prototype_wrong_for_every_device_is_refused_before_anything_is_made(
    bw: BulkWorld,
) -> None:
    group = await bw.group(await bw.w.device("p-1"))
    with pytest.raises(ValidationFailed, match="no command fragment"):
        await bw.bulk.create("t1", body(group, operationPrototype={"description": "x"}))
    missing = {"c8y_Firmware": {"name": "fw", "version": "1",
                                "url": "http://fleetgate.test/inventory/binaries/999"}}  # fmt: skip
    with pytest.raises(ValidationFailed, match="No such file"):
        await bw.bulk.create("t1", body(group, operationPrototype=missing))
    with pytest.raises(NotFound):
        await bw.bulk.create("t2", body(group))
    assert await bw.w.stores.bulk_operations.count("t1", BulkFilter()) == 0


async def test_a_device_a_single_post_would_refuse_is_skipped_with_the_reason(
    bw: BulkWorld,
) -> None:
    able = await bw.w.device("k-1")
    unable = await bw.w.device("k-2", supported=["c8y_Firmware"])
    bulk = await bw.bulk.create("t1", body(await bw.group(able, unable)))
    assert await bw.run() == 1
    skipped = await bw.bulk.targets("t1", bulk.id, TargetState.SKIPPED, 0, 10)
    assert [t.device_id for t in skipped] == [unable]
    assert skipped[0].reason is not None
    assert "c8y_Restart" in skipped[0].reason
    after = await bw.bulk.get("t1", bulk.id)
    assert (after.skipped, after.created) == (1, 1)


async def test_failed_parent_retries_exactly_its_failed_devices(bw: BulkWorld) -> None:
    ids = [await bw.w.device(f"f-{n}") for n in range(3)]
    parent = await bw.bulk.create("t1", body(await bw.group(*ids)))
    await bw.run()
    ops = await bw.w.stores.operations.find(
        "t1", OperationFilter(bulk_operation_id=parent.id), 0, 10, revert=False
    )
    await bw.w.report("f-0", ops[0], Status.FAILED, "broken")
    await bw.w.report("f-1", ops[1], Status.SUCCESSFUL)
    retry = await bw.bulk.create("t1", {**body(), "failedParentId": str(parent.id)})
    assert retry.targets == 1
    await bw.run()
    [again] = await bw.w.stores.operations.find(
        "t1", OperationFilter(bulk_operation_id=retry.id), 0, 10, revert=False
    )
    assert again.device_id == ops[0].device_id
    with pytest.raises(NotFound):
        await bw.bulk.create("t1", {**body(), "failedParentId": "424242"})


async def test_operators_pause_resume_cancel_and_reschedule(bw: BulkWorld) -> None:
    ids = [await bw.w.device(f"o-{n}") for n in range(2)]
    group = await bw.group(*ids)
    bulk = await bw.bulk.create("t1", body(group))
    await bw.bulk.pause("t1", bulk.id)
    assert await bw.run() == 0
    assert (await bw.bulk.get("t1", bulk.id)).paused_reason == "Paused by an operator"
    edited = await bw.bulk.update("t1", bulk.id, {"note": "later"})
    assert (edited.id, edited.note) == (bulk.id, "later")
    await bw.bulk.resume("t1", bulk.id)
    assert await bw.run() == 2
    other = await bw.bulk.create("t1", body(group))
    cancelled = await bw.bulk.cancel("t1", other.id)
    assert (cancelled.status, cancelled.cancel_reason) == (
        BulkStatus.DELETED, "Cancelled by an operator",
    )  # fmt: skip
    assert await bw.run() == 0
    for action in (bw.bulk.pause, bw.bulk.resume, bw.bulk.cancel, bw.bulk.get):
        with pytest.raises(NotFound):
            await action("t2", bulk.id)
    with pytest.raises(ValidationFailed, match="cannot be changed"):
        await bw.bulk.update("t1", bulk.id, {"groupId": "1"})
