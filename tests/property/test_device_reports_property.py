"""Whatever reason the application gives, the SDK's status and connectivity reports are
read by fleetgate as reports, never refused (the reason shortened or mended instead)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.device import Connectivity, Status
from fleetgate.device.messages import encode_connectivity, encode_status
from fleetgate.domain.device_messages import (
    ConnectivityReport,
    StatusReport,
    parse_device_message,
)

#: Any text, long ones, and the characters fleetgate refuses (NUL, lone surrogates).
reasons = st.one_of(
    st.text(),
    st.text(st.characters(codec=None), min_size=1),
    st.builds(
        lambda c, n: c * n,
        st.sampled_from(["é", "\x01", '"', "\\", "😀", "\x00", "\ud800"]),
        st.integers(1, 20_000),
    ),
)


@given(reason=reasons, op_id=st.integers(1, 2**63 - 1))
def test_a_failure_reason_never_gets_a_status_refused(reason: str, op_id: int) -> None:
    payload = encode_status(str(op_id), Status.FAILED, reason)
    read = parse_device_message("fg/d/gw/c/plc-1/op/status", payload)
    assert isinstance(read, StatusReport), read
    assert read.operation_id == op_id
    assert read.status is Status.FAILED
    kept = read.failure_reason or ""
    mended = re.sub("[\x00\ud800-\udfff]", "\ufffd", reason)
    assert kept == mended or (kept.endswith("…") and mended.startswith(kept[:-1]))


@given(reason=reasons, status=st.sampled_from(Connectivity))
def test_a_reason_never_gets_a_connectivity_report_refused(
    reason: str, status: Connectivity
) -> None:
    read = parse_device_message("fg/d/gw/c/plc-1/connection", encode_connectivity(status, reason))
    assert isinstance(read, ConnectivityReport), read
    assert read.connected is (status is Connectivity.CONNECTED)
