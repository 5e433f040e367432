"""The control protocol between the service and the broker plugin, as pure text.

The service publishes a control message to :data:`CONTROL_TOPIC`; the plugin applies it
and, when the message held a ``sync`` line or a bad line, answers on
:data:`RESPONSE_TOPIC` to the sender's client id. Grammar (docs/decisions/0001)::

    message  = line *( "\\n" line )            ; empty lines are skipped
    line     = command *( " " field )
    reset
    account <kind> <username> <password hash>  ; kind: "bootstrap"
    account-remove <username>
    sync <token>

    response = *( ( "ok " field / "error " line-number " " text ) "\\n" )

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
    "RESPONSE_TOPIC",
    "ControlResponse",
    "account",
    "account_remove",
    "decode_field",
    "encode_field",
    "message",
    "parse_response",
    "reset",
    "sync",
]

CONTROL_TOPIC = "$CONTROL/fleetgate/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
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


def reset() -> str:
    """Drop every pushed account (the start of a full sync)."""
    return "reset"


def account(kind: str, username: str, password_hash: str) -> str:
    """Add or replace the account ``username``."""
    if kind not in ACCOUNT_KINDS:
        raise ValueError(f"unknown account kind {kind!r}")
    return " ".join(("account", kind, encode_field(username), encode_field(password_hash)))


def account_remove(username: str) -> str:
    """Remove the account ``username`` (idempotent)."""
    return "account-remove " + encode_field(username)


def sync(token: str) -> str:
    """Ask the plugin to answer ``ok <token>`` once the whole message is applied."""
    return "sync " + encode_field(token)


def message(lines: Iterable[str]) -> bytes:
    """Join command lines into one control message payload."""
    parts = list(lines)
    for line in parts:
        if "\n" in line:
            raise ValueError(f"a control line cannot contain a newline: {line!r}")
    return "\n".join(parts).encode("utf-8")


@dataclass(frozen=True)
class ControlResponse:
    """The plugin's answer to one control message."""

    synced: tuple[str, ...]
    #: (1-based line number in the control message, error message)
    errors: tuple[tuple[int, str], ...]


def parse_response(payload: bytes) -> ControlResponse:
    """Parse a response payload; raises ValueError when it is not in the grammar."""
    synced: list[str] = []
    errors: list[tuple[int, str]] = []
    for line in payload.decode("utf-8").split("\n"):
        if not line:
            continue
        verb, _, rest = line.partition(" ")
        if verb == "ok" and rest and " " not in rest:
            synced.append(decode_field(rest))
        elif verb == "error":
            number, _, text = rest.partition(" ")
            if not (number.isascii() and number.isdigit()):
                raise ValueError(f"bad line number in control response line {line!r}")
            errors.append((int(number), text))
        else:
            raise ValueError(f"unexpected control response line {line!r}")
    return ControlResponse(tuple(synced), tuple(errors))
