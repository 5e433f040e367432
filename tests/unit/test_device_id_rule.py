"""The device id rule is written twice, in Python and in the broker plugin's C: the two
must say the same (the broker test drives the plugin with the same corpus)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.devices import (
    DEVICE_ID_FORBIDDEN,
    DEVICE_ID_MAX,
    check_device_id,
    is_device_id,
)
from fleetgate.domain.errors import ValidationFailed

from plugin_source import defines
from strategies import device_ids

PLUGIN = defines()


def test_the_plugin_defines_the_same_rule() -> None:
    assert PLUGIN["FG_MAX_DEVICE_ID"] == DEVICE_ID_MAX
    assert PLUGIN["FG_DEVICE_ID_FORBIDDEN"] == DEVICE_ID_FORBIDDEN


def test_the_plugins_refusal_states_the_same_rule() -> None:
    forbidden = " ".join(DEVICE_ID_FORBIDDEN)
    rule = f"1-{DEVICE_ID_MAX} printable ASCII characters, no space, none of {forbidden}"
    assert PLUGIN["FG_NOT_A_DEVICE_ID"] == f"not a device id ({rule})"


def _plugin_rule(value: str) -> bool:
    """fg_is_device_id, transcribed: over the UTF-8 bytes."""
    raw = value.encode("utf-8", "surrogatepass")
    return (
        0 < len(raw) <= DEVICE_ID_MAX
        and b"\0" not in raw
        and all(0x21 <= b <= 0x7E and chr(b) not in DEVICE_ID_FORBIDDEN for b in raw)
    )


@given(st.text(max_size=140) | device_ids)
def test_python_and_the_plugin_agree(value: str) -> None:
    assert is_device_id(value) == _plugin_rule(value)


@given(device_ids)
def test_device_ids_pass(value: str) -> None:
    assert check_device_id(value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "1 to 128 characters"),
        ("x" * 129, "1 to 128 characters"),
        ("$SYS", "'$'"),
        (" sp", "' '"),
        ("a:b", "':'"),
        ("a/b", "'/'"),
        ("a+b", "'+'"),
        ("#", "'#'"),
        ("café", "'é'"),
        ("a\x00b", "'\\x00'"),
        ("a\tb", "'\\t'"),
    ],
)
def test_refusals_say_why(value: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_device_id(value)
    assert reason in caught.value.message
