"""The control protocol between the service and the broker plugin, as pure text.

The service publishes a control message to :data:`CONTROL_TOPIC`; the plugin applies it
and, when the message held a ``sync``/``clients`` line or a bad line, answers on
:data:`RESPONSE_TOPIC` to the sender's client id. Grammar (docs/decisions/0001, 0002,
0003, 0008, 0013)::

    message  = line *( "\\n" line )            ; empty lines are skipped
    line     = command *( " " field )
    reset                                      ; accounts, CAs, devices (not live sessions)
    account <kind> <username> <password hash>  ; kind: "bootstrap" or "device"; a device
                                               ; account's username is <tenant>/device_<id>
    account-remove <username>                  ; a device account: kicks its live session
    ca <fingerprint> <tenant> <enabled 0|1> <autoreg 0|1> <der hex>
    ca-remove <fingerprint>
    device <client id> <tenant> <enabled 0|1>
    device-remove <client id>
    child <client id> <gateway id>             ; attached to that gateway: no login of its
                                               ; own (a live one is kicked)
    child-remove <client id>                   ; detached: may log in by itself again
    tenant <tenant> <active 0|1>               ; 0: suspended: every login of the tenant
                                               ; is refused, its live sessions (devices,
                                               ; bootstrap clients) kicked; 1: lifted
    clients <token>
    sync <token>                               ; also re-validates live sessions
    trace <client id> <0|1>                    ; report (or stop reporting) what the broker
                                               ; does with this client (decision 0016)
    trace-stats <token>                        ; answers "tracing <traced> <events>", then ok

    response = *( ( "ok " field / "error " line-number " " text
                  / "client " client-id " " tenant " " fingerprint " " connection-id
                  / "tracing " traced-count " " events-published ) "\\n" )

The plugin publishes one event per message on :data:`EVENTS_TOPIC` (readable by the
service account only)::

    connected <client id> <tenant> <ca fingerprint> <new 0|1> <connection id>
    disconnected <client id> <tenant> <connection id>

A device that logged in with a password (a ``device`` account) has no CA: its fingerprint
field, in ``connected`` events and ``client`` lines, is the bare field ``-``. In Python
that is ``ca_fingerprint == ""`` (:data:`NO_CA`), both ways; a fingerprint that really is
the string ``"-"`` is written ``%2D`` so that it still round-trips.

Fields are percent-encoded: ``%`` followed by two hex digits stands for that byte, and
every space, newline and ``%`` in a field must be written that way. This module only
builds and parses the text; sending it is the MQTT adapter's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fleetgate.domain.devices import is_device_id

__all__ = [
    "ACCOUNT_KINDS",
    "CONTROL_TOPIC",
    "EVENTS_TOPIC",
    "MAX_TOPIC_LEVEL_BYTES",
    "NO_CA",
    "RESPONSE_TOPIC",
    "Connected",
    "ControlResponse",
    "Disconnected",
    "LiveClient",
    "account",
    "account_remove",
    "ca",
    "ca_remove",
    "child",
    "child_remove",
    "clients",
    "decode_field",
    "device",
    "device_account",
    "device_remove",
    "device_username",
    "encode_event",
    "encode_field",
    "message",
    "parse_event",
    "parse_response",
    "reset",
    "sync",
    "tenant",
    "trace",
    "trace_stats",
]

CONTROL_TOPIC = "$CONTROL/fleetgate/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
#: Where the plugin publishes connect/disconnect events of devices.
EVENTS_TOPIC = "fleetgate/v1/events"
#: Account kinds the plugin understands.
ACCOUNT_KINDS = frozenset({"bootstrap", "device"})
#: ``ca_fingerprint`` of a password device's session: it has no CA (``-`` on the wire).
NO_CA = ""
_NO_CA_FIELD = "-"
#: Longest client id / topic level the plugin accepts, in UTF-8 bytes.
MAX_TOPIC_LEVEL_BYTES = 1000

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
    return percent_decode(field).decode("utf-8")


def percent_decode(field: str) -> bytes:
    """The bytes of a percent-escaped field; raises ValueError on a malformed escape."""
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
    return bytes(out)


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
    """Remove the account ``username`` (idempotent); a device account's live session is
    kicked."""
    return "account-remove " + encode_field(username)


def _require_topic_level(what: str, value: str) -> None:
    if (
        not value
        or any(c in value for c in "/+#\0")
        or len(value.encode("utf-8")) > MAX_TOPIC_LEVEL_BYTES
    ):
        raise ValueError(f"{what} must be a single topic level: {value!r}")


def device_username(tenant: str, device_id: str) -> str:
    """The MQTT username of a password device: ``<tenant>/device_<device id>``.

    The tenant must be a single topic level, the device id a device id
    (:func:`fleetgate.domain.devices.is_device_id`), as the plugin requires; otherwise
    ValueError.
    """
    _require_topic_level("tenant", tenant)
    _require_device_id(device_id)
    return f"{tenant}/device_{device_id}"


def _require_device_id(value: str) -> None:
    if not is_device_id(value):
        raise ValueError(f"not a device id: {value!r}")


def device_account(tenant: str, device_id: str, password_hash: str) -> str:
    """Add or replace the account of a password device (``account device ...``).

    The device logs in with :func:`device_username` and client id ``device_id``. A new
    ``password_hash`` kicks its live session; the identical one pushed again does not.
    """
    return account("device", device_username(tenant, device_id), password_hash)


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
    _require_device_id(client_id)
    return _line("device", client_id, tenant, _flag(enabled))


def device_remove(client_id: str) -> str:
    """Forget a certificate device (idempotent) and kick its live session."""
    return _line("device-remove", client_id)


def child(client_id: str, gateway: str) -> str:
    """The device ``client_id`` is attached to the gateway ``gateway`` (both device ids):
    it connects through its gateway only, so the plugin refuses every login of its own and
    kicks a live one (docs/decisions/0008)."""
    _require_device_id(client_id)
    _require_device_id(gateway)
    if client_id == gateway:
        raise ValueError(f"a device cannot be its own gateway: {client_id!r}")
    return _line("child", client_id, gateway)


def child_remove(client_id: str) -> str:
    """The device ``client_id`` is no gateway's child (any more): it may log in by itself
    again, if it has a login (idempotent)."""
    return _line("child-remove", client_id)


def tenant(tenant_id: str, active: bool) -> str:
    """Suspend (``active`` False) or reactivate a tenant in the broker (decision 0013):
    while suspended, every login of the tenant — certificate and password devices,
    auto-registration under its CAs, its bootstrap accounts — is refused with the reason
    "tenant <t> is suspended" and its live sessions are kicked. ``reset`` lifts it."""
    _require_topic_level("tenant", tenant_id)
    return _line("tenant", tenant_id, _flag(active))


def clients(token: str) -> str:
    """Ask for ``client ...`` lines for every live device session, then ``ok <token>``."""
    return _line("clients", token)


def sync(token: str) -> str:
    """Re-validate live sessions, then answer ``ok <token>`` once the whole message is applied."""
    return "sync " + encode_field(token)


def trace(client_id: str, traced: bool) -> str:
    """Start (``traced``) or stop reporting what the broker does with ``client_id`` on
    :data:`fleetgate.domain.broker_trace.TRACE_TOPIC` (idempotent both ways)."""
    _require_topic_level("client id", client_id)
    return _line("trace", client_id, _flag(traced))


def trace_stats(token: str) -> str:
    """Ask for ``tracing <traced clients> <trace events published>``, then ``ok <token>``."""
    return _line("trace-stats", token)


def message(lines: Iterable[str]) -> bytes:
    """Join command lines into one control message payload."""
    parts = list(lines)
    for line in parts:
        if "\n" in line:
            raise ValueError(f"a control line cannot contain a newline: {line!r}")
    return "\n".join(parts).encode("utf-8")


@dataclass(frozen=True)
class LiveClient:
    """A live device session, as listed by ``clients``; ``ca_fingerprint`` is
    :data:`NO_CA` for a device that logged in with a password."""

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
    #: The answer to ``trace-stats``: (traced clients, trace events published so far).
    tracing: tuple[int, int] | None = None


def _split(rest: str, count: int, line: str) -> list[str]:
    parts = rest.split(" ")
    if len(parts) != count or not all(parts):
        raise ValueError(f"expected {count} fields in line {line!r}")
    return parts


def _fields(rest: str, count: int, line: str) -> list[str]:
    return [decode_field(p) for p in _split(rest, count, line)]


def _encode_fingerprint(fingerprint: str) -> str:
    if fingerprint == NO_CA:
        return _NO_CA_FIELD
    if fingerprint == _NO_CA_FIELD:
        return "%2D"
    return encode_field(fingerprint)


def _decode_fingerprint(field: str) -> str:
    return NO_CA if field == _NO_CA_FIELD else decode_field(field)


def _with_fingerprint(rest: str, count: int, index: int, line: str) -> list[str]:
    """The decoded fields of ``rest``; the one at ``index`` is a CA fingerprint."""
    parts = _split(rest, count, line)
    return [_decode_fingerprint(p) if i == index else decode_field(p) for i, p in enumerate(parts)]


def parse_response(payload: bytes) -> ControlResponse:
    """Parse a response payload; raises ValueError when it is not in the grammar."""
    synced: list[str] = []
    errors: list[tuple[int, str]] = []
    live: list[LiveClient] = []
    tracing: tuple[int, int] | None = None
    for line in payload.decode("utf-8").split("\n"):
        if not line:
            continue
        verb, _, rest = line.partition(" ")
        if verb == "ok" and rest and " " not in rest:
            synced.append(decode_field(rest))
        elif verb == "client":
            live.append(LiveClient(*_with_fingerprint(rest, 4, 2, line)))
        elif verb == "tracing":
            counts = _split(rest, 2, line)
            if not all(c.isascii() and c.isdigit() for c in counts):
                raise ValueError(f"bad counts in control response line {line!r}")
            tracing = (int(counts[0]), int(counts[1]))
        elif verb == "error":
            number, _, text = rest.partition(" ")
            if not (number.isascii() and number.isdigit()):
                raise ValueError(f"bad line number in control response line {line!r}")
            errors.append((int(number), text))
        else:
            raise ValueError(f"unexpected control response line {line!r}")
    return ControlResponse(tuple(synced), tuple(errors), tuple(live), tracing)


@dataclass(frozen=True)
class Connected:
    """A device was let in; ``new``: it was unknown and auto-registered (certificate
    devices only). ``ca_fingerprint`` is :data:`NO_CA` for a password device."""

    client_id: str
    tenant: str
    ca_fingerprint: str
    new: bool
    connection_id: str


@dataclass(frozen=True)
class Disconnected:
    """The connection ``connection_id`` of a device ended (or was kicked)."""

    client_id: str
    tenant: str
    connection_id: str


def encode_event(event: Connected | Disconnected) -> bytes:
    """The payload the plugin publishes for ``event`` (for tests and fakes)."""
    if isinstance(event, Connected):
        line = " ".join(
            (
                _line("connected", event.client_id, event.tenant),
                _encode_fingerprint(event.ca_fingerprint),
                _line(_flag(event.new), event.connection_id),
            )
        )
    else:
        line = _line("disconnected", event.client_id, event.tenant, event.connection_id)
    return line.encode("utf-8")


def parse_event(payload: bytes) -> Connected | Disconnected:
    """Parse one event from :data:`EVENTS_TOPIC`; raises ValueError on anything else."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"event is not UTF-8: {payload!r}") from exc
    verb, _, rest = text.partition(" ")
    if verb == "connected":
        client_id, tenant, fingerprint, new, connection_id = _with_fingerprint(rest, 5, 2, text)
        if new not in ("0", "1"):
            raise ValueError(f"bad new flag in event {text!r}")
        return Connected(client_id, tenant, fingerprint, new == "1", connection_id)
    if verb == "disconnected":
        return Disconnected(*_fields(rest, 3, text))
    raise ValueError(f"unexpected event {text!r}")
