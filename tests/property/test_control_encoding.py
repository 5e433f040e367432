"""Control-protocol fields survive encoding, and never break the line/field structure."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain import broker_control as control

from strategies import device_ids

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


flags = st.booleans()


def decoded(line: str) -> list[str]:
    """The fields of a command line as the plugin sees them."""
    return [reference_decode(part) for part in line.split(" ")]


@given(fields, fields, flags, flags, st.binary(min_size=1, max_size=64))
def test_ca_fields_round_trip(
    fingerprint: str, tenant: str, enabled: bool, autoreg: bool, der: bytes
) -> None:
    line = control.ca(fingerprint, tenant, enabled, autoreg, der)
    assert "\n" not in line
    assert decoded(line) == [
        "ca",
        fingerprint,
        tenant,
        str(int(enabled)),
        str(int(autoreg)),
        der.hex(),
    ]


@given(device_ids, fields, flags)
def test_device_fields_round_trip(client_id: str, tenant: str, enabled: bool) -> None:
    assert decoded(control.device(client_id, tenant, enabled)) == [
        "device",
        client_id,
        tenant,
        str(int(enabled)),
    ]


@given(device_ids, device_ids)
def test_child_fields_round_trip(client_id: str, gateway: str) -> None:
    if client_id == gateway:
        with pytest.raises(ValueError, match="its own gateway"):
            control.child(client_id, gateway)
        return
    line = control.child(client_id, gateway)
    assert "\n" not in line
    assert decoded(line) == ["child", client_id, gateway]


@pytest.mark.parametrize(("client_id", "gateway"), [("c/1", "gw"), ("c", "g w"), ("", "g")])
def test_a_child_and_its_gateway_are_device_ids(client_id: str, gateway: str) -> None:
    with pytest.raises(ValueError, match="not a device id"):
        control.child(client_id, gateway)


@given(fields)
def test_single_argument_commands_round_trip(value: str) -> None:
    assert decoded(control.ca_remove(value)) == ["ca-remove", value]
    assert decoded(control.device_remove(value)) == ["device-remove", value]
    assert decoded(control.child_remove(value)) == ["child-remove", value]
    assert decoded(control.clients(value)) == ["clients", value]
    assert decoded(control.sync(value)) == ["sync", value]
    assert decoded(control.account_remove(value)) == ["account-remove", value]


#: Any CA fingerprint Python may hold: none (a password device), the literal "-" (which
#: must not be confused with none), anything else.
fingerprints = st.one_of(st.just(control.NO_CA), st.just("-"), fields)

events = st.one_of(
    st.builds(control.Connected, fields, fields, fingerprints, flags, fields),
    st.builds(control.Disconnected, fields, fields, fields),
)


@given(events)
def test_events_round_trip(event: control.Connected | control.Disconnected) -> None:
    assert control.parse_event(control.encode_event(event)) == event


def plugin_fingerprint(fingerprint: str) -> str:
    """What the plugin writes: ``-`` for a password session, else the encoded CA fingerprint
    (a real one is 40 hex digits, never ``-``)."""
    return "-" if fingerprint == control.NO_CA else control.encode_field(fingerprint)


plugin_fingerprints = st.one_of(st.just(control.NO_CA), fields.filter(lambda f: f != "-"))


@given(st.lists(st.tuples(fields, fields, plugin_fingerprints, fields), max_size=5), fields)
def test_clients_response_round_trips(rows: list[tuple[str, str, str, str]], token: str) -> None:
    payload = "".join(
        " ".join(
            (
                "client",
                control.encode_field(client_id),
                control.encode_field(tenant),
                plugin_fingerprint(fingerprint),
                control.encode_field(connection_id),
            )
        )
        + "\n"
        for client_id, tenant, fingerprint, connection_id in rows
    )
    payload += f"ok {control.encode_field(token)}\n"
    response = control.parse_response(payload.encode("utf-8"))
    assert response.clients == tuple(control.LiveClient(*row) for row in rows)
    assert response.synced == (token,)


def test_password_sessions_have_no_ca_fingerprint() -> None:
    """The plugin's own lines for a password device, byte for byte."""
    event = control.parse_event(b"connected dev-1 t1 - 0 0123456789abcdef-7")
    assert event == control.Connected("dev-1", "t1", control.NO_CA, False, "0123456789abcdef-7")
    assert control.encode_event(event) == b"connected dev-1 t1 - 0 0123456789abcdef-7"
    response = control.parse_response(b"client dev-1 t1 - e-7\nok x\n")
    assert response.clients == (control.LiveClient("dev-1", "t1", control.NO_CA, "e-7"),)
    # A fingerprint that is literally "-" stays distinct from "none".
    literal = control.Connected("d", "t", "-", False, "c")
    assert control.encode_event(literal) == b"connected d t %2D 0 c"
    assert control.parse_event(b"connected d t %2D 0 c") == literal


#: A tenant or device id as the plugin accepts them: one topic level.
topic_levels = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/+#"),
    min_size=1,
    max_size=50,
)


@given(topic_levels, device_ids, fields)
def test_device_account_round_trips(tenant: str, device_id: str, password_hash: str) -> None:
    line = control.device_account(tenant, device_id, password_hash)
    username = control.device_username(tenant, device_id)
    assert username == f"{tenant}/device_{device_id}"
    assert "\n" not in line
    assert decoded(line) == ["account", "device", username, password_hash]
    # What the plugin parses back out of the username: split at the first "/".
    parsed_tenant, _, rest = username.partition("/")
    assert (parsed_tenant, rest.removeprefix("device_")) == (tenant, device_id)
    assert decoded(control.account_remove(username)) == ["account-remove", username]


@pytest.mark.parametrize(
    ("tenant", "device_id"),
    [("", "d"), ("t", ""), ("t/1", "d"), ("t", "d/1"), ("t+", "d"), ("t", "#"), ("t", "a\0")],
)
def test_device_username_needs_a_tenant_level_and_a_device_id(tenant: str, device_id: str) -> None:
    with pytest.raises(ValueError, match=r"single topic level|not a device id"):
        control.device_username(tenant, device_id)
    with pytest.raises(ValueError, match=r"single topic level|not a device id"):
        control.device_account(tenant, device_id, "scrypt:1")


def test_device_account_commands() -> None:
    assert {"bootstrap", "device"} == control.ACCOUNT_KINDS
    assert control.device_username("t1", "d%1") == "t1/device_d%1"
    assert (
        control.device_account("t1", "d%1", "scrypt:10")
        == "account device t1/device_d%251 scrypt:10"
    )
    assert control.device_username("t", "x" * 128) == "t/device_" + "x" * 128
    for bad in ("x" * 129, "d 1", "$SYS", "a:b"):
        with pytest.raises(ValueError, match="not a device id"):
            control.device_username("t", bad)


@pytest.mark.parametrize(
    "payload",
    [b"", b"connected a b c 2 d", b"connected a b c 1", b"disconnected a b", b"kicked a", b"\xff"],
)
def test_parse_event_rejects_anything_else(payload: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        control.parse_event(payload)


def test_new_commands() -> None:
    assert control.ca("ab", "t1", True, False, b"\x01\xff") == "ca ab t1 1 0 01ff"
    assert control.device("d%1", "t1", False) == "device d%251 t1 0"
    assert control.child("c%1", "gw-1") == "child c%251 gw-1"
    assert control.child_remove("c%1") == "child-remove c%251"
    assert control.EVENTS_TOPIC == "fleetgate/v1/events"
