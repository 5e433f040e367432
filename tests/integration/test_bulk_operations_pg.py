"""Bulk operations and rollouts on the real PostgreSQL: the REST API, the scheduler's
steps (two schedulers at once included), and the operations they create."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from bulk_world import PATH, BulkWorld, bulk_body, bulk_world, prototype

from fleetgate.db.bulk_operations import PgBulkOperations
from fleetgate.db.groups import PgGroups
from fleetgate.db.rollout_steps import PgRolloutSteps
from fleetgate.services.bulk_operations import BulkOperations

from operations_world import ADMIN, OTHER, world

__all__ = ["bulk_world", "world"]

pytestmark = pytest.mark.integration


async def _devices(bw: BulkWorld, n: int, prefix: str = "d") -> list[str]:
    return [await bw.w.device(f"{prefix}-{i:02d}") for i in range(n)]


async def test_a_group_gets_one_operation_per_device_subgroups_included(
    bulk_world: BulkWorld,
) -> None:
    bw = bulk_world
    ids = await _devices(bw, 5)
    top = await bw.group("top", ids[:3])
    await bw.group("sub", ids[3:], parent=top)
    created = await bw.post(bulk_body(top, note="all of them"))
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith(
        "application/vnd.com.nsn.cumulocity.bulkoperation+json"
    )
    body = created.json()
    assert body["status"] == "ACTIVE"
    assert body["groupId"] == top
    assert body["note"] == "all of them"
    assert body["fleetgate_RolloutStatus"]["targets"] == 5
    await bw.run()
    ops = await bw.operations(body["id"])
    assert sorted(o["deviceId"] for o in ops) == sorted(ids)
    assert {o["bulkOperationId"] for o in ops} == {body["id"]}
    assert all(o["status"] == "PENDING" for o in ops)
    for i in range(5):  # dispatched
        assert len(bw.w.link.take(f"fg/d/d-{i:02d}/op/cmd")) == 1
    for i, op in enumerate(ops):
        serial = f"d-{ids.index(op['deviceId']):02d}"
        await bw.w.report(serial, op["id"], "SUCCESSFUL" if i else "FAILED", "broken")
    await bw.run()
    done = await bw.get(body["id"])
    assert done["status"] == "COMPLETED"
    assert done["progress"] == {
        "all": 5, "pending": 0, "executing": 0, "successful": 4, "failed": 1
    }  # fmt: skip
    assert done["generalStatus"] == "FAILED"

    retry = await bw.post(
        {"failedParentId": body["id"], "startDate": body["startDate"], "creationRamp": 0,
         "operationPrototype": prototype()}
    )  # fmt: skip
    assert retry.status_code == 201, retry.text
    assert retry.json()["fleetgate_RolloutStatus"]["targets"] == 1
    await bw.run()
    [again] = await bw.operations(retry.json()["id"])
    assert again["deviceId"] == ops[0]["deviceId"]


async def test_devices_that_refuse_are_skipped_with_the_reason(bulk_world: BulkWorld) -> None:
    bw = bulk_world
    good = await bw.w.device("ok-1")
    bad = await bw.w.device("no-fw", supported=["c8y_Restart"])
    group = await bw.group("g", [good, bad])
    bulk_id = (await bw.post(bulk_body(group))).json()["id"]
    await bw.run()
    [op] = await bw.operations(bulk_id)
    assert op["deviceId"] == good
    targets = await bw.w.api.get(f"{PATH}/{bulk_id}/targets?state=SKIPPED", auth=ADMIN)
    [skipped] = targets.json()["targets"]
    assert skipped["deviceId"] == bad
    assert "does not support c8y_Firmware" in skipped["reason"]
    status = (await bw.get(bulk_id))["fleetgate_RolloutStatus"]
    assert status["skipped"] == 1


async def test_bad_requests_are_422_and_roles_are_checked(
    bulk_world: BulkWorld, pool: asyncpg.Pool
) -> None:
    bw = bulk_world
    group = await bw.group("g", [await bw.w.device("d-1")])
    both = bulk_body(group, failedParentId="1")
    for body, words in [
        (both, "not both"),
        ({**bulk_body(group), "startDate": None}, "startDate is mandatory"),
        ({**bulk_body(group), "creationRamp": -1}, "creationRamp"),
        ({**bulk_body(group), "operationPrototype": {"description": "x"}}, "no command"),
        ({**bulk_body(group), "fleetgate_Rollout": {"rate": {"perMinute": 0}}}, "perMinute"),
        ({**bulk_body(group), "fleetgate_Rollout": {"canary": {}}}, "size or groupId"),
        ({**bulk_body(group), "startDate": "yesterday"}, "ISO 8601"),
        ({**bulk_body(group), "groupId": "x1"}, "group id"),
    ]:
        response = await bw.post(body)
        assert response.status_code == 422, (body, response.text)
        assert words in response.json()["message"], response.text
    device = await bw.w.device("d-2")
    assert (await bw.post(bulk_body(device))).status_code == 422  # not a group
    assert (await bw.post(bulk_body("999999"))).status_code == 404
    assert (await bw.post(bulk_body(group), auth=OTHER)).status_code == 404
    assert (await bw.w.api.get(f"{PATH}/999", auth=ADMIN)).status_code == 404
    assert (await bw.w.api.get(f"{PATH}/abc", auth=ADMIN)).status_code == 422
    await pool.execute(
        "UPDATE app_user SET roles = array_remove(roles, 'ROLE_BULK_OPERATION_ADMIN')"
        " WHERE tenant_id = 't1'"
    )
    assert (await bw.post(bulk_body(group))).status_code == 403
    assert (await bw.w.api.get(PATH, auth=ADMIN)).status_code == 200


async def test_list_paging_put_and_delete(bulk_world: BulkWorld) -> None:
    bw = bulk_world
    ids = await _devices(bw, 4)
    group = await bw.group("g", ids)
    later = bulk_body(group, startDate="2999-01-01T00:00:00Z")
    scheduled = (await bw.post(later)).json()
    assert scheduled["generalStatus"] == "SCHEDULED"
    page = (await bw.w.api.get(f"{PATH}?pageSize=1&withTotalPages=true", auth=ADMIN)).json()
    assert page["statistics"]["totalPages"] == 1
    assert [b["id"] for b in page["bulkOperations"]] == [scheduled["id"]]
    # not started: changed in place
    moved = await bw.w.api.put(f"{PATH}/{scheduled['id']}", json={"creationRamp": 5.5}, auth=ADMIN)
    assert moved.status_code == 200, moved.text
    assert moved.json()["id"] == scheduled["id"]
    assert moved.json()["creationRamp"] == 5.5
    # started (rate of 1 a minute: one created): cancelled, a new one takes the rest
    slow = bulk_body(group, fleetgate_Rollout={"rate": {"perMinute": 1}})
    started = (await bw.post(slow)).json()
    await bw.run(keep_rate=True)
    assert len(await bw.operations(started["id"])) == 1
    replaced = await bw.w.api.put(f"{PATH}/{started['id']}", json={"creationRamp": 0}, auth=ADMIN)
    assert replaced.status_code == 200, replaced.text
    new = replaced.json()
    assert new["id"] != started["id"]
    assert new["fleetgate_RolloutStatus"]["targets"] == 3
    old = await bw.get(started["id"])
    assert old["status"] == "DELETED"
    assert f"bulk operation {new['id']}" in old["fleetgate_RolloutStatus"]["reason"]
    # DELETE cancels: nothing more is created
    assert (await bw.w.api.delete(f"{PATH}/{new['id']}", auth=ADMIN)).status_code == 204
    await bw.run()
    assert await bw.operations(new["id"]) == []
    assert (await bw.get(new["id"]))["generalStatus"] == "CANCELED"
    assert (await bw.get(started["id"]))["progress"]["pending"] == 1  # the created one goes on


async def test_abort_threshold_pauses_with_the_reason_then_resumes(bulk_world: BulkWorld) -> None:
    bw = bulk_world
    ids = await _devices(bw, 10)
    group = await bw.group("g", ids)
    rollout = {
        "rate": {"perMinute": 60000},
        "abort": [{"minFinished": 2, "thresholdPercentage": 10, "action": "PAUSE"}],
    }
    bulk_id = (await bw.post(bulk_body(group, fleetgate_Rollout=rollout))).json()["id"]
    await bw.pool.execute("UPDATE bulk_operation SET creation_ramp = 0.5")  # 1 per step
    await bw.bulk.step()
    await bw.pool.execute(
        "UPDATE bulk_operation SET next_creation_at = now(), next_step_at = now()"
    )
    await bw.bulk.step()
    first = await bw.operations(bulk_id)
    assert len(first) == 2
    for op in first:
        serial = f"d-{ids.index(op['deviceId']):02d}"
        await bw.w.report(serial, op["id"], "FAILED", "bricked")
    await bw.run()
    paused = await bw.get(bulk_id)
    state = paused["fleetgate_RolloutStatus"]
    assert state["state"] == "PAUSED"
    assert "2 of 2 finished devices failed" in state["reason"]
    assert len(await bw.operations(bulk_id)) == 2
    resumed = await bw.w.api.post(f"{PATH}/{bulk_id}/resume", auth=ADMIN)
    assert resumed.status_code == 200, resumed.text
    await bw.pool.execute("UPDATE bulk_operation SET creation_ramp = 0")
    await bw.run()
    assert len(await bw.operations(bulk_id)) == 10
    assert (await bw.get(bulk_id))["status"] == "COMPLETED"


async def test_a_failing_canary_stops_the_rest(bulk_world: BulkWorld) -> None:
    bw = bulk_world
    ids = await _devices(bw, 6)
    group = await bw.group("g", ids)
    rollout = {"canary": {"size": 2, "successThreshold": 100}}
    bulk_id = (await bw.post(bulk_body(group, fleetgate_Rollout=rollout))).json()["id"]
    await bw.run()
    canary = await bw.operations(bulk_id)
    assert sorted(o["deviceId"] for o in canary) == sorted(ids[:2])
    await bw.w.report(
        "d-00",
        canary[0]["id"] if canary[0]["deviceId"] == ids[0] else canary[1]["id"],
        "FAILED",
        "x",
    )
    await bw.run()
    state = (await bw.get(bulk_id))["fleetgate_RolloutStatus"]
    assert state["state"] == "PAUSED"
    assert state["reason"].startswith("Canary failed")
    assert len(await bw.operations(bulk_id)) == 2


async def test_a_passing_canary_lets_the_rest_go(bulk_world: BulkWorld) -> None:
    bw = bulk_world
    ids = await _devices(bw, 5)
    group = await bw.group("g", ids)
    canary_group = await bw.group("canary", [ids[4]])
    rollout = {"canary": {"groupId": canary_group}}
    bulk_id = (await bw.post(bulk_body(group, fleetgate_Rollout=rollout))).json()["id"]
    await bw.run()
    [first] = await bw.operations(bulk_id)
    assert first["deviceId"] == ids[4]
    await bw.w.report("d-04", first["id"], "SUCCESSFUL")
    await bw.run()
    assert len(await bw.operations(bulk_id)) == 5


async def test_retries_make_new_linked_operations(bulk_world: BulkWorld) -> None:
    bw = bulk_world
    ids = await _devices(bw, 2)
    group = await bw.group("g", ids)
    rollout = {"retries": {"max": 2}}
    bulk_id = (await bw.post(bulk_body(group, fleetgate_Rollout=rollout))).json()["id"]
    await bw.run()
    for attempt in range(3):
        ops = [o for o in await bw.operations(bulk_id) if o["status"] == "PENDING"]
        mine = [o for o in ops if o["deviceId"] == ids[0]]
        assert len(mine) == 1, (attempt, ops)
        if attempt:
            assert mine[0]["fleetgate_Retry"]["attempt"] == attempt + 1
        await bw.w.report("d-00", mine[0]["id"], "FAILED", f"try {attempt}")
        other = [o for o in ops if o["deviceId"] == ids[1]]
        for o in other:
            await bw.w.report("d-01", o["id"], "SUCCESSFUL")
        await bw.run()
    ops = await bw.operations(bulk_id)
    assert len(ops) == 4  # d-00: 3 attempts, d-01: 1
    done = await bw.get(bulk_id)
    assert done["status"] == "COMPLETED"
    assert done["progress"]["failed"] == 1
    assert done["progress"]["successful"] == 1
    assert done["fleetgate_RolloutStatus"]["retried"] == 2


async def test_two_schedulers_on_one_database_create_each_operation_once(
    bulk_world: BulkWorld, pool: asyncpg.Pool
) -> None:
    bw = bulk_world
    ids = await _devices(bw, 30)
    group = await bw.group("g", ids)
    for _ in range(3):
        assert (await bw.post(bulk_body(group))).status_code == 201
    await pool.execute("UPDATE bulk_operation SET next_step_at = now()")
    other = BulkOperations(
        PgBulkOperations(pool), PgRolloutSteps(pool), PgGroups(pool), bw.w.operations
    )

    async def drain(bulk: BulkOperations) -> None:
        while await bulk.step() is not None:
            pass

    await asyncio.gather(drain(bw.bulk), drain(other), drain(bw.bulk), drain(other))
    counts = await pool.fetch(
        "SELECT bulk_operation_id, device_id, count(*) AS n FROM operation"
        " GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert counts == []
    assert await pool.fetchval("SELECT count(*) FROM operation") == 90


async def test_the_unique_index_refuses_a_second_operation_per_attempt(
    bulk_world: BulkWorld, pool: asyncpg.Pool
) -> None:
    bw = bulk_world
    ids = await _devices(bw, 1)
    group = await bw.group("g", ids)
    bulk_id = (await bw.post(bulk_body(group))).json()["id"]
    await bw.run()
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(
            "INSERT INTO operation (tenant_id, device_id, serial, fragment_type,"
            " bulk_operation_id, bulk_attempt) VALUES ('t1', $1, 'd-00', 'c8y_Firmware', $2, 1)",
            int(ids[0]),
            int(bulk_id),
        )


async def test_the_stream_shows_bulk_progress(bulk_world: BulkWorld) -> None:
    bw = bulk_world
    ids = await _devices(bw, 2)
    group = await bw.group("g", ids)
    feed = bw.w.operations.feed
    from fleetgate.services.operation_feed import FeedFilter

    watcher = feed.watch(FeedFilter("t1"))
    pending = asyncio.ensure_future(anext(watcher))
    await asyncio.sleep(0)
    bulk_id = (await bw.post(bulk_body(group))).json()["id"]
    _, first = await asyncio.wait_for(pending, 5)
    assert getattr(first, "id", None) == int(bulk_id)
    await bw.run()
    seen = []
    while True:
        try:
            seen.append((await asyncio.wait_for(anext(watcher), 0.2))[1])
        except TimeoutError:
            break
    bulk_states = [s for s in seen if type(s).__name__ == "BulkOperation"]
    assert bulk_states
    assert bulk_states[-1].tally.pending == 2
    await watcher.aclose()


NOT_APPLIED = "not(c8y_Profile.profileName eq 'thermo 2' and c8y_Profile.profileExecuted eq true)"


async def test_a_query_narrows_the_group_to_the_devices_that_have_not_applied_a_profile(
    bulk_world: BulkWorld,
) -> None:
    bw = bulk_world
    ids = await _devices(bw, 5)
    top = await bw.group("top", ids[:3])
    await bw.group("sub", ids[3:], parent=top)
    applied = {"profileName": "thermo 2", "profileId": "1", "profileExecuted": True}
    for device, profile in (
        (ids[0], applied),
        (ids[3], applied),
        (ids[1], {**applied, "profileExecuted": False}),  # tried, not finished
        (ids[2], {**applied, "profileName": "thermo 1"}),  # another profile
    ):  # ids[4] never applied one
        await bw.pool.execute(
            "UPDATE managed_object SET fragments = fragments || jsonb_build_object("
            "'c8y_Profile', $2::jsonb) WHERE id = $1",
            int(device),
            json.dumps(profile),
        )
    targets = {"query": f"$filter=({NOT_APPLIED})"}
    created = await bw.post(bulk_body(top, fleetgate_Targets=targets))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["fleetgate_Targets"] == targets
    assert body["fleetgate_RolloutStatus"]["targets"] == 3
    await bw.run()
    ops = await bw.operations(body["id"])
    assert sorted(o["deviceId"] for o in ops) == sorted([ids[1], ids[2], ids[4]])
    assert (await bw.get(body["id"]))["fleetgate_Targets"] == targets

    # The query stays with the bulk operation: a PUT may repeat it (here refused only
    # because this one is COMPLETED), never change it.
    same = await bw.w.api.put(
        f"{PATH}/{body['id']}", json={"note": "n", "fleetgate_Targets": targets}, auth=ADMIN
    )
    assert same.status_code == 422
    assert "is COMPLETED" in same.json()["message"]
    changed = await bw.w.api.put(
        f"{PATH}/{body['id']}", json={"fleetgate_Targets": {"query": "has(x)"}}, auth=ADMIN
    )
    assert changed.status_code == 422
    assert "fleetgate_Targets" in changed.json()["message"]

    nobody = await bw.post(bulk_body(top, fleetgate_Targets={"query": "has(c8y_Nothing)"}))
    assert nobody.status_code == 201, nobody.text
    assert nobody.json()["fleetgate_RolloutStatus"]["targets"] == 0
    await bw.run()
    assert (await bw.get(nobody.json()["id"]))["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({"query": "name eq 'a' and type gt 3"}, "fleetgate_Targets.query: at position 22: gt"),
        ({"query": "not(has(a)"}, "fleetgate_Targets.query: at position 11"),
        ({"query": ""}, "fleetgate_Targets.query: at position 1: the query is empty"),
        ({"query": 7}, "fleetgate_Targets.query must be a string"),
        ("has(a)", 'fleetgate_Targets must be {"query"'),
        ({"query": "has(a)", "type": "x"}, 'fleetgate_Targets must be {"query"'),
    ],
)
async def test_a_bad_target_query_is_a_422_naming_its_position(
    bulk_world: BulkWorld, targets: object, message: str
) -> None:
    bw = bulk_world
    group = await bw.group("g", [await bw.w.device("q-1")])
    response = await bw.post(bulk_body(group, fleetgate_Targets=targets))
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(message), response.json()["message"]
    assert await bw.pool.fetchval("SELECT count(*) FROM bulk_operation") == 0


async def test_a_target_query_needs_a_group(bulk_world: BulkWorld) -> None:
    response = await bulk_world.post(
        {"failedParentId": "1", "startDate": "2020-01-01T00:00:00Z", "creationRamp": 0,
         "operationPrototype": prototype(), "fleetgate_Targets": {"query": "has(a)"}}
    )  # fmt: skip
    assert response.status_code == 422
    assert "needs groupId" in response.json()["message"]
