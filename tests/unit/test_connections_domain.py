"""Online and offline as the domain decides it (fleetgate.domain.connections): the child
rule, the fragments and their exact shape, and deciding nothing when nothing changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.connections import (
    Connection,
    ConnectionFacts,
    ConnectionStatus,
    Reported,
    child_connection,
    connection_fragments,
    decide,
)

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONNECTED, DISCONNECTED = ConnectionStatus.CONNECTED, ConnectionStatus.DISCONNECTED


def test_a_device_on_its_own_connection() -> None:
    assert connection_fragments(CONNECTED, AT) == {
        "c8y_Connection": {"status": "CONNECTED"},
        "c8y_Availability": {"status": "AVAILABLE", "lastMessage": "2026-03-01T12:00:00.000Z"},
        "fleetgate_Connection": {"status": "CONNECTED"},
        "fleetgate_Lifecycle": {"status": "ONLINE"},
    }
    # Offline: c8y_Availability keeps the time it last came online (not written).
    assert connection_fragments(DISCONNECTED, AT) == {
        "c8y_Connection": {"status": "DISCONNECTED"},
        "fleetgate_Connection": {"status": "DISCONNECTED", "reason": "connection closed"},
        "fleetgate_Lifecycle": {"status": "OFFLINE", "reason": "connection closed"},
    }


@pytest.mark.parametrize(
    ("gateway_connected", "reported", "expected"),
    [
        (True, None, Connection(CONNECTED, gateway="gw-1")),
        (True, Reported(True), Connection(CONNECTED, gateway="gw-1")),
        (True, Reported(True, "back"), Connection(CONNECTED, gateway="gw-1")),
        (
            True,
            Reported(False, "BLE link lost"),
            Connection(DISCONNECTED, "reported by gateway gw-1: BLE link lost", "gw-1"),
        ),
        (True, Reported(False), Connection(DISCONNECTED, "reported by gateway gw-1", "gw-1")),
        (False, None, Connection(DISCONNECTED, "gateway gw-1 disconnected", "gw-1")),
        (False, Reported(True), Connection(DISCONNECTED, "gateway gw-1 disconnected", "gw-1")),
        # The gateway being away is the reason first: its word is as old as its connection.
        (
            False,
            Reported(False, "x"),
            Connection(DISCONNECTED, "gateway gw-1 disconnected", "gw-1"),
        ),
    ],
)
def test_the_child_rule(
    gateway_connected: bool, reported: Reported | None, expected: Connection
) -> None:
    assert child_connection("gw-1", gateway_connected, reported) == expected


@given(st.booleans(), st.none() | st.builds(Reported, st.booleans(), st.none() | st.text()))
def test_a_child_is_online_exactly_while_its_gateway_is_and_has_not_lost_it(
    gateway_connected: bool, reported: Reported | None
) -> None:
    connection = child_connection("gw-1", gateway_connected, reported)
    assert connection.connected == (gateway_connected and (reported is None or reported.connected))
    assert connection.gateway == "gw-1"
    assert (connection.reason is None) == connection.connected


def test_the_child_fragments() -> None:
    assert Connection(DISCONNECTED, "gateway gw-1 disconnected", "gw-1").fragments(AT) == {
        "c8y_Connection": {"status": "DISCONNECTED"},
        "fleetgate_Connection": {
            "status": "DISCONNECTED",
            "gateway": "gw-1",
            "reason": "gateway gw-1 disconnected",
        },
        "fleetgate_Lifecycle": {"status": "OFFLINE", "reason": "gateway gw-1 disconnected"},
    }
    online = Connection(CONNECTED, gateway="gw-1").fragments(AT)
    assert online["fleetgate_Connection"] == {"status": "CONNECTED", "gateway": "gw-1"}
    assert online["c8y_Availability"]["lastMessage"] == "2026-03-01T12:00:00.000Z"
    assert online["fleetgate_Lifecycle"] == {"status": "ONLINE"}


def test_a_connected_device_has_no_reason_to_be_offline() -> None:
    with pytest.raises(ValueError, match="no reason"):
        Connection(CONNECTED, "why")


def shown(connection: Connection) -> dict[str, Any]:
    return {k: v for k, v in connection.fragments(AT).items() if k != "c8y_Availability"}


def test_decide_writes_only_a_change() -> None:
    online = Connection(CONNECTED, gateway="gw-1")
    facts = ConnectionFacts(shown={}, gateway="gw-1", gateway_connected=True)
    assert decide(facts) == online
    assert decide(ConnectionFacts(shown(online), "gw-1", True)) is None
    # Another gateway shown, or the same status for another reason, is a change.
    assert decide(ConnectionFacts(shown(Connection(CONNECTED, gateway="gw-0")), "gw-1", True))
    offline = Connection(DISCONNECTED, "gateway gw-1 disconnected", "gw-1")
    assert decide(ConnectionFacts(shown(offline), "gw-1", True, Reported(False))) == Connection(
        DISCONNECTED, "reported by gateway gw-1", "gw-1"
    )


def test_a_child_shown_on_a_connection_of_its_own_is_shown_as_a_child() -> None:
    own = shown(Connection(CONNECTED))
    assert decide(ConnectionFacts(own, "gw-1", False, own_connection=True)) == Connection(
        DISCONNECTED, "gateway gw-1 disconnected", "gw-1"
    )


def test_a_former_child() -> None:
    was = shown(Connection(CONNECTED, gateway="gw-1"))
    assert decide(ConnectionFacts(was)) == Connection(DISCONNECTED, "detached from gateway gw-1")
    # On a connection of its own now: the broker's events say what it is.
    assert decide(ConnectionFacts(was, own_connection=True)) is None
    # Told once; a device that never was a child is none of this rule's business.
    assert (
        decide(ConnectionFacts(shown(Connection(DISCONNECTED, "detached from gateway gw-1"))))
        is None
    )
    assert decide(ConnectionFacts(shown(Connection(DISCONNECTED, "connection closed")))) is None
    assert decide(ConnectionFacts({})) is None
    assert decide(ConnectionFacts({"fleetgate_Connection": "operator junk"})) is None
