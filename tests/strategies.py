"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from fleetgate.domain.devices import DEVICE_ID_FORBIDDEN, DEVICE_ID_MAX

#: Every device id (fleetgate.domain.devices.is_device_id), short ones more often.
device_ids = st.text(
    alphabet=st.characters(
        min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=DEVICE_ID_FORBIDDEN
    ),
    min_size=1,
    max_size=DEVICE_ID_MAX,
)
