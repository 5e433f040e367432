"""Tenant options on in-memory ports: what may be stored, fleetgate's own options, the
round trip of a PUT, and the gateway setting the gateway use cases read."""

from __future__ import annotations

import pytest

from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.tenant_options import MAX_NAME, MAX_VALUE, TenantOption, check_option
from fleetgate.services.tenant_options import TenantOptions

from memory import MemoryStores


@pytest.fixture
def options() -> TenantOptions:
    return TenantOptions(MemoryStores.make("t1", "t2").options)


def body(category: object = "c", key: object = "k", value: object = "v") -> dict[str, object]:
    return {"category": category, "key": key, "value": value}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("", "k", "v"), "category must have 1 to 256 characters"),
        (("c" * (MAX_NAME + 1), "k", "v"), "category must have 1 to 256"),
        (("c", "", "v"), "key must have 1 to 256"),
        (("a/b", "k", "v"), "category cannot hold '/'"),
        (("c", "k/", "v"), "key cannot hold '/'"),
        (("c\x00", "k", "v"), "category holds a NUL"),
        (("c", "k", "v\x00"), "value holds a NUL"),
        ((1, "k", "v"), "category must be a string"),
        (("c", None, "v"), "key must be a string"),
        (("c", "k", True), 'value must be a string \\(send "true", not true\\)'),
        (("c", "k", "x" * (MAX_VALUE + 1)), "value must have at most 65536"),
        (("c", "credentials.secret", "s"), "fleetgate does not encrypt option values"),
        (("fleetgate.gateways", "childAutoRegistration", "yes"), "must be 'true' or 'false'"),
        (("fleetgate.gateways", "childAutoRegistration", "True"), "not 'True'"),
        (("fleetgate.gateways", "autoRegistration", "true"), "'autoRegistration' is none of"),
    ],
)
def test_options_that_cannot_be_stored_are_refused_with_the_reason(
    option: tuple[object, object, object], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        check_option(*option)


def test_any_other_category_is_stored_as_given() -> None:
    assert check_option("alarm.type.mapping", "temp_too_high", "CRITICAL|hot") == TenantOption(
        "alarm.type.mapping", "temp_too_high", "CRITICAL|hot"
    )
    assert check_option("c", "k", "").value == ""
    assert check_option("c" * MAX_NAME, "k", "x" * MAX_VALUE).category == "c" * MAX_NAME


async def test_a_post_stores_or_replaces_and_needs_every_field(options: TenantOptions) -> None:
    assert await options.create("t1", body()) == TenantOption("c", "k", "v")
    assert await options.create("t1", body(value="w")) == TenantOption("c", "k", "w")
    assert await options.get("t1", "c", "k") == TenantOption("c", "k", "w")
    for missing in ("category", "key", "value"):
        incomplete = body()
        del incomplete[missing]
        with pytest.raises(ValidationFailed, match=f"{missing} is required"):
            await options.create("t1", incomplete)
    with pytest.raises(ValidationFailed, match="unknown properties: valeu"):
        await options.create("t1", {**body(), "valeu": "x"})
    with pytest.raises(NotFound, match="Option c/k not found"):
        await options.get("t2", "c", "k")


async def test_a_put_changes_the_value_of_an_option_that_exists(options: TenantOptions) -> None:
    with pytest.raises(NotFound) as missing:
        await options.update("t1", "c", "k", {"value": "v"})
    assert missing.value.code == "options/Not Found"
    await options.create("t1", body())
    assert await options.update("t1", "c", "k", {"value": "w"}) == TenantOption("c", "k", "w")
    # A GET's body sent back with a new value (the round trip) is fine.
    round_trip = {"self": "http://x/tenant/options/c/k", **body(value="z")}
    assert (await options.update("t1", "c", "k", round_trip)).value == "z"
    with pytest.raises(ValidationFailed, match="key cannot change"):
        await options.update("t1", "c", "k", body(key="other"))
    with pytest.raises(ValidationFailed, match="value is required"):
        await options.update("t1", "c", "k", {})
    await options.delete("t1", "c", "k")
    with pytest.raises(NotFound):
        await options.delete("t1", "c", "k")


async def test_child_auto_registration_follows_the_option(options: TenantOptions) -> None:
    assert await options.child_auto_registration("t1")
    await options.create("t1", body("fleetgate.gateways", "childAutoRegistration", "false"))
    assert not await options.child_auto_registration("t1")
    assert await options.child_auto_registration("t2")
    await options.delete("t1", "fleetgate.gateways", "childAutoRegistration")
    assert await options.child_auto_registration("t1")


async def test_lists_are_paged_and_categories_read_whole(options: TenantOptions) -> None:
    for key in ("b", "a", "c"):
        await options.create("t1", body("cat", key, key.upper()))
    await options.create("t1", body("other", "x", "y"))
    found, total = await options.find("t1", 0, 2, count=True)
    assert ([o.key for o in found], total) == (["a", "b"], 4)
    assert [o.value for o in await options.of_category("t1", "cat")] == ["A", "B", "C"]
    with pytest.raises(ValidationFailed):
        await options.of_category("t1", "x" * 300)
