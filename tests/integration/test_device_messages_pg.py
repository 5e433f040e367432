"""Bad device messages against the real PostgreSQL: every one answered and kept as a dead
letter, none in the way of another device's statuses; operators read them over REST."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgate.db.dead_letters import PER_DEVICE
from fleetgate.domain.device_messages import Incoming
from fleetgate.domain.topics import DeviceLeaf, DeviceTopic

from corpora.device_payloads import BY_LEAF
from operations_world import ADMIN, OTHER, World, world

__all__ = ["world"]  # the fixture

pytestmark = pytest.mark.integration

MANAGEMENT = ("management/admin", "mgmt-pw")
BAD = [(leaf, name, payload) for leaf, corpus in BY_LEAF.items() for name, payload in corpus]


def status(device: str, op_id: str, value: str) -> Incoming:
    body = json.dumps({"id": op_id, "status": value}).encode()
    return Incoming(f"fg/d/{device}/op/status", body)


async def restart(world: World) -> str:
    """A restart operation for the good device; its id."""
    device = await world.object_id("good")
    created = await world.create({"deviceId": device, "c8y_Restart": {}})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_every_bad_payload_is_answered_and_kept_and_holds_no_one_back(world: World) -> None:
    await world.device("good")
    await world.device("hd1")
    op = await restart(world)
    bad = [Incoming(str(DeviceTopic("hd1", leaf)), payload) for leaf, _, payload in BAD]
    batch = [status("good", op, "EXECUTING"), *bad, status("good", op, "SUCCESSFUL")]

    assert await world.messages.handle(batch) == []

    assert (await world.op(op))["status"] == "SUCCESSFUL"
    errors = world.link.take("fg/d/hd1/error")
    assert len(errors) == len(bad)
    assert [e["topic"] for e in errors] == [m.topic for m in bad]
    kept = await world.pool.fetchval("SELECT count(*) FROM dead_letter WHERE device_id = 'hd1'")
    assert kept == min(len(bad), PER_DEVICE)  # the newest ones
    newest = await world.pool.fetchval("SELECT payload FROM dead_letter ORDER BY id DESC LIMIT 1")
    assert bytes(newest) == bad[-1].payload[: len(newest)]
    binaries = (await world.api.get("/inventory/binaries", auth=ADMIN)).json()
    assert binaries["managedObjects"] == []  # hd1 did not make itself a binary


async def test_operators_read_and_clear_dead_letters(world: World) -> None:
    await world.device("hd1")
    await world.device("other", tenant="t2")
    nul = b'{"c8y_X":"a\\u0000b"}'
    await world.messages.handle(
        [
            Incoming("fg/d/hd1/inventory", nul),
            Incoming("fg/d/hd1/op/status", b"\x00\xff not json"),
            Incoming("fg/d/other/op/sync", b"[]"),
            Incoming("fg/d/nobody/op/sync", b"[]"),
        ]
    )
    listed = await world.api.get("/devicecontrol/deadLetters?withTotalPages=true", auth=ADMIN)
    assert listed.status_code == 200
    assert listed.headers["content-type"].startswith(
        "application/vnd.fleetgate.deadLetterCollection+json"
    )
    body = listed.json()
    assert body["statistics"]["totalElements"] == 2  # t1's only, newest first
    second, first = body["deadLetters"]
    assert first["externalId"] == "hd1"
    assert first["topic"] == "fg/d/hd1/inventory"
    assert first["error"] == "inventory/badRequest"
    assert "NUL character" in first["reason"]
    assert first["deviceId"] == await world.object_id("hd1")
    assert first["payloadSize"] == len(nul)
    assert second["payloadPreview"] == "\\x00\\xff not json"
    one = await world.api.get(f"/devicecontrol/deadLetters/{second['id']}", auth=ADMIN)
    assert base64.b64decode(one.json()["payloadBase64"]) == b"\x00\xff not json"
    assert one.json()["payloadTruncated"] is False

    theirs = (await world.api.get("/devicecontrol/deadLetters", auth=OTHER)).json()
    assert [d["externalId"] for d in theirs["deadLetters"]] == ["other"]
    forbidden = await world.api.get(f"/devicecontrol/deadLetters/{second['id']}", auth=OTHER)
    assert forbidden.status_code == 404
    unowned = (await world.api.get("/devicecontrol/deadLetters", auth=MANAGEMENT)).json()
    assert [d["externalId"] for d in unowned["deadLetters"]] == ["nobody"]
    assert "deviceId" not in unowned["deadLetters"][0]

    by_device = await world.api.get(
        "/devicecontrol/deadLetters", params={"externalId": "hd1", "pageSize": 1}, auth=ADMIN
    )
    assert len(by_device.json()["deadLetters"]) == 1
    assert (
        await world.api.delete(f"/devicecontrol/deadLetters/{first['id']}", auth=ADMIN)
    ).status_code == 204
    assert (
        await world.api.delete("/devicecontrol/deadLetters?externalId=hd1", auth=ADMIN)
    ).status_code == 204
    left = (await world.api.get("/devicecontrol/deadLetters", auth=ADMIN)).json()
    assert left["deadLetters"] == []
    assert (
        await world.api.delete(f"/devicecontrol/deadLetters/{first['id']}", auth=ADMIN)
    ).status_code == 404


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


payloads = st.one_of(
    st.binary(max_size=48),
    json_values.map(_dumps),
    st.fixed_dictionaries({"id": json_values, "status": json_values}).map(_dumps),
    st.sampled_from([payload for _, _, payload in BAD]),
)
leaves = st.sampled_from([DeviceLeaf.OP_STATUS, DeviceLeaf.OP_SYNC, DeviceLeaf.INVENTORY])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(noise=st.lists(st.tuples(leaves, payloads), max_size=12), position=st.integers(0, 12))
async def test_arbitrary_messages_beside_a_valid_device_never_stop_its_statuses(
    world: World, noise: list[tuple[DeviceLeaf, bytes]], position: int
) -> None:
    if not await world.pool.fetchval("SELECT 1 FROM external_id WHERE value = 'good'"):
        await world.device("good")
        await world.device("hd1")
    op = await restart(world)
    batch = [Incoming(str(DeviceTopic("hd1", leaf)), payload) for leaf, payload in noise]
    batch.insert(min(position, len(batch)), status("good", op, "EXECUTING"))
    batch.append(status("good", op, "SUCCESSFUL"))
    assert await world.messages.handle(batch) == []
    assert (await world.op(op))["status"] == "SUCCESSFUL"
