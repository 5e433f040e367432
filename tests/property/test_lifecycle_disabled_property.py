"""The two writers of a device's lifecycle agree (decision 0012): what a connection
change writes (:meth:`Connection.lifecycle`, with the device's and its gateway's flags)
is exactly what disabling or enabling the device recomputes from the fragments that
connection wrote (:func:`shown_lifecycle`) — so neither undoes the other, in any order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.connections import (
    Connection,
    ConnectionStatus,
    Reported,
    child_connection,
    detached_from,
    own_connection,
    shown_lifecycle,
)

NOW = datetime(2026, 12, 2, tzinfo=UTC)
ids = st.sampled_from(["gw-1", "gw-2", "a b"])

connections = st.one_of(
    st.sampled_from(ConnectionStatus).map(own_connection),
    st.builds(
        child_connection,
        ids,
        st.booleans(),
        st.none() | st.builds(Reported, st.booleans(), st.none() | st.text(max_size=20)),
    ),
    ids.map(lambda g: Connection(ConnectionStatus.DISCONNECTED, detached_from(g))),
)


@given(connections, st.booleans(), st.booleans())
def test_a_connection_change_and_a_switch_write_the_same_lifecycle(
    connection: Connection, disabled: bool, gateway_disabled: bool
) -> None:
    gateway = connection.gateway if gateway_disabled else None
    flagged = replace(connection, disabled=disabled, disabled_gateway=gateway)
    written = flagged.fragments(NOW)
    assert written["fleetgate_Lifecycle"] == shown_lifecycle(
        written, disabled=disabled, disabled_gateway=gateway
    )
    is_disabled = written["fleetgate_Lifecycle"]["status"] == "DISABLED"
    assert is_disabled == (disabled or gateway is not None)
    # The connection fragments tell the truth whatever the flags.
    assert written["c8y_Connection"] == connection.fragments(NOW)["c8y_Connection"]
