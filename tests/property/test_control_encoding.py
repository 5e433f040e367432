"""Control-protocol fields survive encoding, and never break the line/field structure."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.mqtt import control

fields = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1)
_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def reference_decode(field: str) -> str:
    """An independent decoder: what the plugin does, written the obvious way."""
    out = bytearray()
    i = 0
    while i < len(field):
        if field[i] == "%":
            out.append(int(field[i + 1 : i + 3], 16))
            i += 3
        else:
            out += field[i].encode("ascii")
            i += 1
    return out.decode("utf-8")


@given(fields)
def test_encoded_field_has_no_separators_and_only_escape_percents(value: str) -> None:
    encoded = control.encode_field(value)
    assert " " not in encoded
    assert "\n" not in encoded
    assert encoded.isascii()
    assert encoded.isprintable()
    assert "%" not in _ESCAPE.sub("", encoded)


@given(fields)
def test_reference_decoder_round_trips(value: str) -> None:
    encoded = control.encode_field(value)
    assert reference_decode(encoded) == value
    assert control.decode_field(encoded) == value


@given(st.lists(fields, min_size=1, max_size=5))
def test_a_message_keeps_one_command_per_line(tokens: list[str]) -> None:
    payload = control.message([control.sync(t) for t in tokens]).decode("utf-8")
    lines = payload.split("\n")
    assert len(lines) == len(tokens)
    assert [reference_decode(line.split(" ")[1]) for line in lines] == tokens


@given(st.lists(fields, max_size=5), st.lists(st.integers(1, 10_000), max_size=5))
def test_parse_response_reads_what_the_plugin_writes(tokens: list[str], lines: list[int]) -> None:
    payload = "".join(f"ok {control.encode_field(t)}\n" for t in tokens)
    payload += "".join(f"error {n} unknown command\n" for n in lines)
    response = control.parse_response(payload.encode("utf-8"))
    assert response.synced == tuple(tokens)
    assert response.errors == tuple((n, "unknown command") for n in lines)


@pytest.mark.parametrize("bad", ["", "a\0b"])
def test_unencodable_fields_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="cannot"):
        control.encode_field(bad)


def test_commands() -> None:
    assert control.reset() == "reset"
    assert control.account("bootstrap", "a b", "scrypt:1") == "account bootstrap a%20b scrypt:1"
    assert control.account_remove("x%") == "account-remove x%25"
    assert control.message(["reset", "sync t"]) == b"reset\nsync t"
    with pytest.raises(ValueError, match="unknown account kind"):
        control.account("robot", "a", "h")
