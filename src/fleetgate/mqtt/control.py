"""The control protocol between the service and the broker plugin, as pure text.

The service publishes a control message to :data:`CONTROL_TOPIC`; the plugin applies it
and, when the message held a ``sync``/``clients`` line or a bad line, answers on
:data:`RESPONSE_TOPIC` to the sender's client id. Grammar (docs/decisions/0001, 0002)::

    message  = line *( "\\n" line )            ; empty lines are skipped
    line     = command *( " " field )
    reset                                      ; accounts, CAs, devices (not live sessions)
    account <kind> <username> <password hash>  ; kind: "bootstrap"
    account-remove <username>
    ca <fingerprint> <tenant> <enabled 0|1> <autoreg 0|1> <der hex>
    ca-remove <fingerprint>
    device <client id> <tenant> <enabled 0|1>
    device-remove <client id>
    clients <token>
    sync <token>                               ; also re-validates live sessions

    response = *( ( "ok " field / "error " line-number " " text
                  / "client " client-id " " tenant " " fingerprint " " connection-id ) "\\n" )

The plugin publishes one event per message on :data:`EVENTS_TOPIC` (readable by the
service account only)::

    connected <client id> <tenant> <ca fingerprint> <new 0|1> <connection id>
    disconnected <client id> <tenant> <connection id>

Fields are percent-encoded: ``%`` followed by two hex digits stands for that byte, and
every space, newline and ``%`` in a field must be written that way. This module only
builds and parses the text; sending it is the MQTT adapter's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ACCOUNT_KINDS",
    "CONTROL_TOPIC",
    "EVENTS_TOPIC",
    "RESPONSE_TOPIC",
    "Connected",
    "ControlResponse",
    "Disconnected",
    "LiveClient",
    "account",
    "account_remove",
    "ca",
    "ca_remove",
    "clients",
    "decode_field",
    "device",
    "device_remove",
    "encode_event",
    "encode_field",
    "message",
    "parse_event",
    "parse_response",
    "reset",
    "sync",
]

CONTROL_TOPIC = "$CONTROL/fleetgate/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
#: Where the plugin publishes connect/disconnect events of certificate devices.
EVENTS_TOPIC = "fleetgate/v1/events"
#: Account kinds the plugin understands.
ACCOUNT_KINDS = frozenset({"bootstrap"})

# Bytes written as themselves: printable ASCII except space and "%". Everything else,
# control characters and non-ASCII UTF-8 bytes included, becomes %XX, so a field is
# always one run of visible ASCII whatever it holds.
_PLAIN = frozenset(range(0x21, 0x7F)) - {ord("%")}


def encode_field(value: str) -> str:
    """Percent-encode ``value`` (as UTF-8) into one field. Empty fields are not allowed."""
    if not value:
        raise ValueError("a control field cannot be empty")
    if "\0" in value:
        raise ValueError("a control field cannot contain NUL")
    return "".join(chr(b) if b in _PLAIN else f"%{b:02X}" for b in value.encode("utf-8"))


def decode_field(field: str) -> str:
    """Inverse of :func:`encode_field`; raises ValueError on a malformed escape."""
    out = bytearray()
    data = field.encode("utf-8")
    i = 0
    while i < len(data):
        if data[i] != ord("%"):
            out.append(data[i])
            i += 1
            continue
        escape = data[i + 1 : i + 3]
        if len(escape) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in escape):
            raise ValueError(f"bad percent-escape at offset {i} in {field!r}")
        out.append(int(escape, 16))
        i += 3
    return out.decode("utf-8")


def _line(*fields: str) -> str:
    return " ".join(encode_field(f) for f in fields)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def reset() -> str:
    """Drop every pushed account, CA and device (the start of a full sync).

    Live certificate sessions stay until the ``sync`` that ends the full sync
    re-validates them.
    """
    return "reset"


def account(kind: str, username: str, password_hash: str) -> str:
    """Add or replace the account ``username``."""
    if kind not in ACCOUNT_KINDS:
        raise ValueError(f"unknown account kind {kind!r}")
    return " ".join(("account", kind, encode_field(username), encode_field(password_hash)))


def account_remove(username: str) -> str:
    """Remove the account ``username`` (idempotent)."""
    return "account-remove " + encode_field(username)


def ca(fingerprint: str, tenant: str, enabled: bool, auto_registration: bool, der: bytes) -> str:
    """Add or replace a trusted CA of ``tenant``; ``fingerprint`` is the lowercase hex
    SHA-1 of ``der``. Live sessions through it that no longer pass are kicked."""
    if not der:
        raise ValueError("a CA certificate cannot be empty")
    return _line("ca", fingerprint, tenant, _flag(enabled), _flag(auto_registration), der.hex())


def ca_remove(fingerprint: str) -> str:
    """Forget a trusted CA (idempotent); its live sessions are kicked."""
    return _line("ca-remove", fingerprint)


def device(client_id: str, tenant: str, enabled: bool) -> str:
    """Add or replace a registered certificate device; disabling it kicks its session."""
    return _line("device", client_id, tenant, _flag(enabled))


def device_remove(client_id: str) -> str:
    """Forget a certificate device (idempotent) and kick its live session."""
    return _line("device-remove", client_id)


def clients(token: str) -> str:
    """Ask for ``client ...`` lines for every live certificate session, then ``ok <token>``."""
    return _line("clients", token)


def sync(token: str) -> str:
    """Re-validate live sessions, then answer ``ok <token>`` once the whole message is applied."""
    return "sync " + encode_field(token)


def message(lines: Iterable[str]) -> bytes:
    """Join command lines into one control message payload."""
    parts = list(lines)
    for line in parts:
        if "\n" in line:
            raise ValueError(f"a control line cannot contain a newline: {line!r}")
    return "\n".join(parts).encode("utf-8")


@dataclass(frozen=True)
class LiveClient:
    """A live certificate session, as listed by ``clients``."""

    client_id: str
    tenant: str
    ca_fingerprint: str
    connection_id: str


@dataclass(frozen=True)
class ControlResponse:
    """The plugin's answer to one control message."""

    synced: tuple[str, ...]
    #: (1-based line number in the control message, error message)
    errors: tuple[tuple[int, str], ...]
    #: ``client`` lines (the answer to ``clients``), in the plugin's order.
    clients: tuple[LiveClient, ...] = ()


def _fields(rest: str, count: int, line: str) -> list[str]:
    parts = rest.split(" ")
    if len(parts) != count or not all(parts):
        raise ValueError(f"expected {count} fields in line {line!r}")
    return [decode_field(p) for p in parts]


def parse_response(payload: bytes) -> ControlResponse:
    """Parse a response payload; raises ValueError when it is not in the grammar."""
    synced: list[str] = []
    errors: list[tuple[int, str]] = []
    live: list[LiveClient] = []
    for line in payload.decode("utf-8").split("\n"):
        if not line:
            continue
        verb, _, rest = line.partition(" ")
        if verb == "ok" and rest and " " not in rest:
            synced.append(decode_field(rest))
        elif verb == "client":
            live.append(LiveClient(*_fields(rest, 4, line)))
        elif verb == "error":
            number, _, text = rest.partition(" ")
            if not (number.isascii() and number.isdigit()):
                raise ValueError(f"bad line number in control response line {line!r}")
            errors.append((int(number), text))
        else:
            raise ValueError(f"unexpected control response line {line!r}")
    return ControlResponse(tuple(synced), tuple(errors), tuple(live))


@dataclass(frozen=True)
class Connected:
    """A certificate device was let in; ``new``: it was unknown and auto-registered."""

    client_id: str
    tenant: str
    ca_fingerprint: str
    new: bool
    connection_id: str


@dataclass(frozen=True)
class Disconnected:
    """The connection ``connection_id`` of a certificate device ended (or was kicked)."""

    client_id: str
    tenant: str
    connection_id: str


def encode_event(event: Connected | Disconnected) -> bytes:
    """The payload the plugin publishes for ``event`` (for tests and fakes)."""
    fields: tuple[str, ...]
    if isinstance(event, Connected):
        fields = ("connected", event.client_id, event.tenant, event.ca_fingerprint)
        fields += (_flag(event.new), event.connection_id)
    else:
        fields = ("disconnected", event.client_id, event.tenant, event.connection_id)
    return _line(*fields).encode("utf-8")


def parse_event(payload: bytes) -> Connected | Disconnected:
    """Parse one event from :data:`EVENTS_TOPIC`; raises ValueError on anything else."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"event is not UTF-8: {payload!r}") from exc
    verb, _, rest = text.partition(" ")
    if verb == "connected":
        client_id, tenant, fingerprint, new, connection_id = _fields(rest, 5, text)
        if new not in ("0", "1"):
            raise ValueError(f"bad new flag in event {text!r}")
        return Connected(client_id, tenant, fingerprint, new == "1", connection_id)
    if verb == "disconnected":
        return Disconnected(*_fields(rest, 3, text))
    raise ValueError(f"unexpected event {text!r}")
