"""The bootstrap use cases on in-memory ports: new device requests and their moves, a
device asking for its credentials (once), over HTTP and MQTT, with its rate limit."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain.bootstrap import Answer, NewDeviceRequest, RateLimit, RequestStatus
from fleetgate.domain.errors import Conflict, NotFound, ValidationFailed
from fleetgate.domain.passwords import verify_password
from fleetgate.domain.topics import BootstrapTopic
from fleetgate.services.bootstrap import Bootstrap, IssuedCredentials

from fakes import RecordingBroker
from memory import MemoryStores

W, P, A = (
    RequestStatus.WAITING_FOR_CONNECTION,
    RequestStatus.PENDING_ACCEPTANCE,
    RequestStatus.ACCEPTED,
)


class Ticks:
    """The rate limit's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    stores: MemoryStores
    broker: RecordingBroker
    ticks: Ticks
    bootstrap: Bootstrap

    async def accepted(self, device_id: str, tenant: str = "t1") -> None:
        """A request the device asked about and an operator accepted."""
        await self.bootstrap.register(tenant, {"id": device_id})
        assert await self.bootstrap.ask(tenant, device_id) is Answer.PENDING
        await self.bootstrap.update(tenant, device_id, {"status": "ACCEPTED"})

    async def over_mqtt(
        self, device_id: str, payload: bytes = b"", tenant: str = "t1"
    ) -> tuple[str, dict[str, Any]]:
        topic = BootstrapTopic(tenant, device_id, BootstrapTopic.REQUEST)
        reply_topic, reply = await self.bootstrap.ask_over_mqtt(topic, payload)
        body: dict[str, Any] = json.loads(reply)
        return reply_topic, body


@pytest.fixture
def world() -> World:
    stores = MemoryStores.make("t1", "t2")
    broker = RecordingBroker()
    ticks = Ticks()
    rate = RateLimit(interval=2.0, burst=3, clock=ticks)
    return World(stores, broker, ticks, Bootstrap(stores.requests, broker, rate))


# --- operators ------------------------------------------------------------------------


async def test_a_request_is_registered_listed_and_deleted(world: World) -> None:
    for i in range(3):
        created = await world.bootstrap.register("t1", {"id": f"dev-{i}"})
        assert created == NewDeviceRequest("t1", f"dev-{i}", W)
    await world.bootstrap.register("t2", {"id": "other"})
    page, total = await world.bootstrap.page("t1", 1, 5, count=True)
    assert ([r.id for r in page], total) == (["dev-1", "dev-2"], 3)
    assert await world.bootstrap.get("t1", "dev-0") == NewDeviceRequest("t1", "dev-0", W)
    await world.bootstrap.delete("t1", "dev-0")
    for gone in (world.bootstrap.get, world.bootstrap.delete):
        with pytest.raises(NotFound) as missing:
            await gone("t1", "dev-0")
        assert (missing.value.code, missing.value.message) == (
            "devicecontrol/Not Found", "New device request dev-0 not found",
        )  # fmt: skip
    with pytest.raises(NotFound):
        await world.bootstrap.get("t1", "other")  # another tenant's


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({}, "id is required and must be a string"),
        ({"id": 1234}, "id is required and must be a string"),
        ({"id": "x" * 129}, "a device id must have 1 to 128 characters"),
        ({"id": "a/b"}, "this one holds '/'"),
    ],
)
async def test_a_request_needs_a_device_id(world: World, body: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationFailed, match=why):
        await world.bootstrap.register("t1", body)
    assert await world.bootstrap.page("t1", 0, 5, count=True) == ([], 0)


async def test_a_request_is_refused_for_an_id_held_twice_or_elsewhere(world: World) -> None:
    await world.bootstrap.register("t1", {"id": "x" * 128})
    await world.bootstrap.register("t1", {"id": "dup"})
    with pytest.raises(Conflict) as twice:
        await world.bootstrap.register("t1", {"id": "dup"})
    assert (twice.value.code, twice.value.message) == (
        "devicecontrol/Duplicate", "New device request dup already exists",
    )  # fmt: skip
    await world.stores.registry.register(
        "t1", "registered", fragments={}, connection={}, connection_id=None,
        at=world.stores.db.clock(),
    )  # fmt: skip
    for held in ("dup", "registered"):  # by t1's request, by t1's device
        with pytest.raises(Conflict) as elsewhere:
            await world.bootstrap.register("t2", {"id": held})
        assert elsewhere.value.code == "identity/Duplicate"
        assert "in use in another tenant" in elsewhere.value.message
    # The tenant that holds the device may ask for its credentials again.
    assert (await world.bootstrap.register("t1", {"id": "registered"})).status is W


@pytest.mark.parametrize(
    ("start", "wanted", "why"),
    [
        (W, A, "illegal move WAITING_FOR_CONNECTION → ACCEPTED: the device has not asked"),
        (W, P, "only the device moves a request to PENDING_ACCEPTANCE"),
        (P, W, "a request cannot go back to WAITING_FOR_CONNECTION"),
        (A, P, "an accepted request cannot go back"),
    ],
)
async def test_operators_cannot_make_illegal_moves(
    world: World, start: RequestStatus, wanted: RequestStatus, why: str
) -> None:
    await world.bootstrap.register("t1", {"id": "d"})
    if start is not W:
        await world.bootstrap.ask("t1", "d")
    if start is A:
        await world.bootstrap.update("t1", "d", {"status": "ACCEPTED"})
    with pytest.raises(ValidationFailed, match=why):
        await world.bootstrap.update("t1", "d", {"status": wanted.value})
    assert (await world.bootstrap.get("t1", "d")).status is start
    same = await world.bootstrap.update("t1", "d", {"status": start.value, "id": "d"})
    assert same.status is start  # staying is always fine


async def test_update_refusals(world: World) -> None:
    await world.bootstrap.register("t1", {"id": "d"})
    for body, why in (
        ({}, "status is required"),
        ({"status": "ACCEPTED", "id": "e"}, "id cannot be changed"),
        ({"status": "DONE"}, "status must be one of"),
    ):
        with pytest.raises(ValidationFailed, match=why):
            await world.bootstrap.update("t1", "d", body)
    with pytest.raises(NotFound):
        await world.bootstrap.update("t1", "nope", {"status": "ACCEPTED"})


# --- devices --------------------------------------------------------------------------


async def test_the_whole_flow_issues_credentials_once(world: World) -> None:
    await world.bootstrap.register("t1", {"id": "1234"})
    assert await world.bootstrap.ask("t1", "1234") is Answer.PENDING
    assert (await world.bootstrap.get("t1", "1234")).status is P
    assert await world.bootstrap.ask("t1", "1234") is Answer.PENDING
    accepted = await world.bootstrap.update("t1", "1234", {"status": "ACCEPTED"})
    assert accepted == NewDeviceRequest("t1", "1234", A)
    assert world.broker.lines == []

    issued = await world.bootstrap.ask("t1", "1234")
    assert isinstance(issued, IssuedCredentials)
    assert (issued.id, issued.tenant_id, issued.username) == ("1234", "t1", "device_1234")
    assert len(issued.password) >= 22  # 192 random bits, URL-safe base64
    found = await world.stores.users.find_user("t1", "device_1234")
    assert found is not None
    user = found[1]
    assert user.enabled
    assert issued.password not in user.password_hash
    assert verify_password(issued.password, user.password_hash)
    assert world.broker.lines == [
        control.device_account("t1", "1234", user.password_hash),
        control.device("1234", "t1", True),
    ]
    device = await world.stores.identity.device("1234")
    assert device is not None
    assert device.tenant_id == "t1"
    # Handed out once: the request is gone.
    with pytest.raises(NotFound):
        await world.bootstrap.get("t1", "1234")
    assert await world.bootstrap.ask("t1", "1234") is Answer.NO_REQUEST


async def test_a_device_without_a_request_learns_nothing(world: World) -> None:
    assert await world.bootstrap.ask("t1", "stranger") is Answer.NO_REQUEST
    await world.bootstrap.register("t2", {"id": "theirs"})
    assert await world.bootstrap.ask("t1", "theirs") is Answer.NO_REQUEST
    assert (await world.bootstrap.get("t2", "theirs")).status is W


async def test_asks_at_once_get_the_credentials_once(world: World) -> None:
    await world.accepted("race")
    answers = await asyncio.gather(*(world.bootstrap.ask("t1", "race") for _ in range(5)))
    issued = [a for a in answers if isinstance(a, IssuedCredentials)]
    assert len(issued) == 1
    assert answers.count(Answer.NO_REQUEST) == 4
    assert len(world.broker.lines) == 2


async def test_an_accepted_request_for_an_id_another_tenant_holds_is_not_served(
    world: World,
) -> None:
    await world.accepted("x1")
    # A device of t2 holding the id (kept from before device ids were global: no path
    # gives it to t2 while t1's request holds it).
    other = await world.stores.inventory.create(
        "t2", name="x1", type=None, owner=None, fragments={"c8y_IsDevice": {}}
    )
    world.stores.db.external_ids[("t2", "c8y_Serial", "x1")] = other.id
    assert await world.bootstrap.ask("t1", "x1") is Answer.NO_REQUEST
    assert (await world.bootstrap.get("t1", "x1")).status is A  # the operator sees it
    assert await world.stores.users.find_user("t1", "device_x1") is None
    assert world.broker.lines == []


# --- over MQTT --------------------------------------------------------------------------


async def test_mqtt_asks_are_answered_on_the_credentials_topic(world: World) -> None:
    assert await world.over_mqtt("m1") == (
        "fg/bootstrap/t1/m1/credentials", {"status": "NOT_FOUND"},
    )  # fmt: skip
    await world.bootstrap.register("t1", {"id": "m1"})
    assert (await world.over_mqtt("m1", b"{}"))[1] == {"status": "PENDING_ACCEPTANCE"}
    await world.bootstrap.update("t1", "m1", {"status": "ACCEPTED"})
    topic, body = await world.over_mqtt("m1", b'{"any": "thing"}')
    assert topic == "fg/bootstrap/t1/m1/credentials"
    password = body.pop("password")
    assert body == {
        "status": "ACCEPTED", "id": "m1", "tenantId": "t1", "username": "device_m1",
        "mqttUsername": "t1/device_m1",
    }  # fmt: skip
    found = await world.stores.users.find_user("t1", "device_m1")
    assert found is not None
    assert verify_password(password, found[1].password_hash)


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1]", b'"x"', b"\xff", b'{"a": NaN}', b'{"\\u0000": 1}', b"{" * 5000],
)
async def test_a_payload_that_is_not_an_object_is_answered_on_the_error_topic(
    world: World, payload: bytes
) -> None:
    await world.bootstrap.register("t1", {"id": "m1"})
    assert await world.over_mqtt("m1", payload) == (
        "fg/bootstrap/t1/m1/error",
        {
            "error": "bootstrap/badRequest",
            "message": "the request payload must be a JSON object (or empty)",
        },
    )
    assert (await world.bootstrap.get("t1", "m1")).status is W  # not an ask


async def test_only_request_topics_of_device_ids_are_answered(world: World) -> None:
    await world.bootstrap.register("t1", {"id": "m1"})
    answer = world.bootstrap.answer_mqtt_request
    reply = await answer("fg/bootstrap/t1/m1/request", b"{}")
    assert reply is not None
    assert json.loads(reply[1]) == {"status": "PENDING_ACCEPTANCE"}
    for topic in ("fg/bootstrap/t1/m1/credentials", "fg/bootstrap/t1/$SYS/request", "fg/d/m1/x"):
        assert await answer(topic, b"{}") is None


async def test_mqtt_asks_are_rate_limited_per_device(world: World) -> None:
    await world.bootstrap.register("t1", {"id": "m1"})
    for _ in range(3):
        assert (await world.over_mqtt("m1"))[1] == {"status": "PENDING_ACCEPTANCE"}
    assert await world.over_mqtt("m1") == (
        "fg/bootstrap/t1/m1/credentials", {"status": "RATE_LIMITED", "retryAfter": 2.0},
    )  # fmt: skip
    for _ in range(3):  # bad payloads cost nothing
        assert (await world.over_mqtt("m1", b"nope"))[1]["error"] == "bootstrap/badRequest"
    assert (await world.over_mqtt("m2"))[1] == {"status": "NOT_FOUND"}  # another device
    assert (await world.over_mqtt("m1", tenant="t2"))[1] == {"status": "NOT_FOUND"}
    world.ticks.now += 1.5
    assert (await world.over_mqtt("m1"))[1] == {"status": "RATE_LIMITED", "retryAfter": 0.5}
    world.ticks.now += 0.5
    assert (await world.over_mqtt("m1"))[1] == {"status": "PENDING_ACCEPTANCE"}
