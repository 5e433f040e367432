"""A device's lifecycle status as the domain decides it (fleetgate.domain.lifecycle): the
one rule, the fragment's shape, the first status of a created device, and the filters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.inventory_query import QueryTarget, matches
from fleetgate.domain.lifecycle import (
    Lifecycle,
    LifecycleFacts,
    LifecycleStatus,
    devices_in,
    lifecycle,
    parse_status,
    with_initial_lifecycle,
)

INACTIVE, ONLINE, OFFLINE, DISABLED = (
    LifecycleStatus.INACTIVE,
    LifecycleStatus.ONLINE,
    LifecycleStatus.OFFLINE,
    LifecycleStatus.DISABLED,
)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (LifecycleFacts(None), Lifecycle(INACTIVE)),
        (LifecycleFacts(True), Lifecycle(ONLINE)),
        (LifecycleFacts(False, "connection closed"), Lifecycle(OFFLINE, "connection closed")),
        (LifecycleFacts(True, disabled=True), Lifecycle(DISABLED, "disabled")),
        (LifecycleFacts(None, disabled=True), Lifecycle(DISABLED, "disabled")),
        (
            LifecycleFacts(False, "gateway gw-1 disconnected", disabled_gateway="gw-1"),
            Lifecycle(DISABLED, "gateway gw-1 disabled"),
        ),
        # The device's own switch is the reason before its gateway's.
        (
            LifecycleFacts(True, disabled=True, disabled_gateway="gw-1"),
            Lifecycle(DISABLED, "disabled"),
        ),
    ],
)
def test_the_rule(facts: LifecycleFacts, expected: Lifecycle) -> None:
    assert lifecycle(facts) == expected


@given(st.none() | st.booleans(), st.booleans(), st.none() | st.just("gw-1"))
def test_disabled_wins_and_never_connected_is_inactive(
    connected: bool | None, disabled: bool, gateway: str | None
) -> None:
    status = lifecycle(LifecycleFacts(connected, None, disabled, gateway)).status
    if disabled or gateway is not None:
        assert status is DISABLED
    else:
        assert status is {None: INACTIVE, True: ONLINE, False: OFFLINE}[connected]


def test_the_fragment() -> None:
    assert Lifecycle(ONLINE).fragment() == {"status": "ONLINE"}
    assert Lifecycle(OFFLINE, "why").fragment() == {"status": "OFFLINE", "reason": "why"}


def test_a_device_is_created_inactive_unless_it_shows_a_connection() -> None:
    assert with_initial_lifecycle({"c8y_IsDevice": {}}) == {
        "c8y_IsDevice": {},
        "fleetgate_Lifecycle": {"status": "INACTIVE"},
    }
    connected = {"c8y_IsDevice": {}, "c8y_Connection": {"status": "CONNECTED"}}
    assert with_initial_lifecycle(connected) == connected
    shown = {"c8y_IsDevice": {}, "fleetgate_Lifecycle": {"status": "ONLINE"}}
    assert with_initial_lifecycle(shown) == shown
    assert with_initial_lifecycle({"c8y_Thing": {}}) == {"c8y_Thing": {}}


def test_the_filter_finds_devices_in_that_status_only() -> None:
    def target(fragments: dict[str, object]) -> QueryTarget:
        return QueryTarget(1, None, None, None, fragments)

    def no_assets(_: int) -> frozenset[int]:
        return frozenset()

    online = {"c8y_IsDevice": {}, "fleetgate_Lifecycle": {"status": "ONLINE"}}
    assert matches(devices_in(ONLINE), target(online), no_assets)
    assert not matches(devices_in(OFFLINE), target(online), no_assets)
    not_a_device = target({"fleetgate_Lifecycle": {"status": "ONLINE"}})
    assert not matches(devices_in(ONLINE), not_a_device, no_assets)


def test_a_status_is_named_exactly() -> None:
    assert parse_status("DISABLED") is DISABLED
    with pytest.raises(ValidationFailed, match="lifecycleStatus: 'online' is not a lifecycle"):
        parse_status("online")
