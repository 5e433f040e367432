"""Command parsing: unknown fields never change the meaning; nothing but BadCommand
ever comes out of a bad message."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.device import BadCommand, Command, parse_command

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
extra_fields = st.dictionaries(
    st.text(max_size=8).filter(
        lambda k: k not in {"id", "type", "description", "payload", "upload"}
    ),
    json_values,
    max_size=4,
)
FILE = {"url": "http://f/1", "sha256": "a" * 64, "size": 3}
COMMANDS: list[dict[str, Any]] = [
    {"id": "1", "type": "c8y_Firmware", "payload": {"name": "f", "version": "1", "file": FILE}},
    {"id": "2", "type": "c8y_SoftwareUpdate", "payload": [{"name": "s", "action": "delete"}]},
    {"id": "3", "type": "c8y_DownloadConfigFile", "payload": {"type": "ssh", "file": FILE}},
    {"id": "4", "type": "c8y_UploadConfigFile", "payload": {"type": "ssh"}, "upload": {"url": "u"}},
]


@given(command=st.sampled_from(COMMANDS), extra=extra_fields)
def test_unknown_fields_change_nothing(command: dict[str, Any], extra: dict[str, Any]) -> None:
    plain = parse_command(json.dumps(command))
    assert parse_command(json.dumps({**extra, **command})) == plain


@given(data=st.binary(max_size=60) | json_values.map(lambda v: json.dumps(v).encode()))
def test_anything_else_is_a_bad_command_or_a_command(data: bytes) -> None:
    outcome: object
    try:
        outcome = parse_command(data)
    except BadCommand as exc:
        outcome = exc
    assert isinstance(outcome, Command) or str(outcome).startswith("Bad command")
