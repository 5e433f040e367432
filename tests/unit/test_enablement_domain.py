"""The pure rules of disabling a device (decision 0012): whether it may log in, what its
lifecycle shows once disabled or enabled, how a child's connection shows its disabled
gateway, and a gateway speaking for a disabled child."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from fleetgate.domain.connections import (
    ConnectionFacts,
    ConnectionStatus,
    Reported,
    decide,
    own_connection,
    shown_lifecycle,
)
from fleetgate.domain.enablement import CHILD_DISABLED, Enablement, effective_enabled
from fleetgate.domain.gateways import ChildClaim, Holder, Verdict, decide_child

NOW = datetime(2026, 12, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("user_enabled", "device_disabled", "enabled"),
    [(True, False, True), (True, True, False), (False, False, False), (False, True, False)],
)
def test_a_device_logs_in_only_while_its_user_is_enabled_and_it_is_not_disabled(
    user_enabled: bool, device_disabled: bool, enabled: bool
) -> None:
    assert effective_enabled(user_enabled, device_disabled) is enabled
    assert Enablement(user_enabled, device_disabled).enabled is enabled
    assert Enablement().enabled  # a device without a user, never disabled


def test_enabling_restores_what_the_connection_says() -> None:
    never: dict[str, object] = {"c8y_IsDevice": {}}
    online = own_connection(ConnectionStatus.CONNECTED).fragments(NOW)
    offline = own_connection(ConnectionStatus.DISCONNECTED).fragments(NOW)
    assert shown_lifecycle(never, disabled=False) == {"status": "INACTIVE"}
    assert shown_lifecycle(online, disabled=False) == {"status": "ONLINE"}
    assert shown_lifecycle(offline, disabled=False) == {
        "status": "OFFLINE",
        "reason": "connection closed",
    }
    for shown in (never, online, offline):
        assert shown_lifecycle(shown, disabled=True) == {"status": "DISABLED", "reason": "disabled"}
        assert shown_lifecycle(shown, disabled=False, disabled_gateway="gw") == {
            "status": "DISABLED",
            "reason": "gateway gw disabled",
        }
    # The device's own flag wins over its gateway's.
    assert shown_lifecycle(online, disabled=True, disabled_gateway="gw")["reason"] == "disabled"


def test_a_child_of_a_disabled_gateway_shows_its_connection_and_the_gateways_reason() -> None:
    facts = ConnectionFacts(shown={}, gateway="gw", gateway_connected=False, gateway_disabled=True)
    wanted = decide(facts)
    assert wanted is not None
    shown = wanted.fragments(NOW)
    assert shown["fleetgate_Connection"] == {
        "status": "DISCONNECTED",
        "gateway": "gw",
        "reason": "gateway gw disconnected",
    }
    assert shown["fleetgate_Lifecycle"] == {"status": "DISABLED", "reason": "gateway gw disabled"}
    # Shown already: nothing to write; enabled again: it changes back to OFFLINE.
    assert decide(replace(facts, shown=json.loads(json.dumps(shown)))) is None
    enabled = decide(replace(facts, shown=shown, gateway_disabled=False))
    assert enabled is not None
    assert enabled.lifecycle() == {"status": "OFFLINE", "reason": "gateway gw disconnected"}


def test_a_disabled_child_stays_disabled_whatever_its_gateway_reports() -> None:
    facts = ConnectionFacts(
        shown={}, gateway="gw", gateway_connected=True, reported=Reported(True), disabled=True
    )
    wanted = decide(facts)
    assert wanted is not None
    assert wanted.connected
    assert wanted.lifecycle() == {"status": "DISABLED", "reason": "disabled"}


def test_a_detached_disabled_device_stays_disabled() -> None:
    facts = ConnectionFacts(
        shown={"fleetgate_Connection": {"status": "CONNECTED", "gateway": "gw"}}, disabled=True
    )
    wanted = decide(facts)
    assert wanted is not None
    assert wanted.reason == "detached from gateway gw"
    assert wanted.lifecycle()["status"] == "DISABLED"


def test_a_gateway_cannot_speak_for_its_disabled_child() -> None:
    claim = ChildClaim(
        gateway="gw",
        tenant_id="t1",
        gateway_object_id=7,
        gateway_parent=None,
        held_elsewhere=False,
        holder=Holder(9, "gw", disabled=True),
        removal=None,
        auto_registration=True,
    )
    decision = decide_child(claim, "ch")
    assert decision.verdict is Verdict.REFUSED
    assert decision.code == CHILD_DISABLED
    assert decision.reason is not None
    assert "device ch is disabled" in decision.reason
    # Another gateway's disabled child is refused for being another's, as before.
    other = decide_child(replace(claim, holder=Holder(9, "gw-2", disabled=True)), "ch")
    assert other.code != CHILD_DISABLED
