"""Short-lived signed URLs: how a device downloads a file, or uploads a snapshot, without
an operator's credentials.

A signature covers the HTTP method, the path, the device id and the expiry time, keyed
with the service's URL secret (HMAC-SHA256). It authorises exactly that request for that
device until it expires; changing any part of the URL breaks it.

Anyone can send these URLs, so :func:`verify` takes the query values exactly as they
came and answers yes or no, never an exception: the signature must be 64 lowercase hex
digits and the expiry ASCII digits (:func:`parse_signature`, :func:`parse_expiry`), and
the MACs are compared as bytes (``hmac.compare_digest`` raises on non-ASCII text).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

from fleetgate.domain.ids import MAX_ID, is_ascii_digits

#: A signature is the hex of an HMAC-SHA256: 32 bytes.
_MAC_BYTES = 32
_HEX_DIGITS = frozenset("0123456789abcdef")


def download_path(binary_id: int | str) -> str:
    """Where a device GETs a binary with a signed URL."""
    return f"/files/{binary_id}"


def snapshot_path(operation_id: int | str) -> str:
    """Where a device PUTs the configuration snapshot of its operation."""
    return f"/files/snapshots/{operation_id}"


@dataclass(frozen=True, slots=True)
class SignedUrl:
    url: str
    expires: int


def _mac(secret: bytes, method: str, path: str, device_id: str, expires: int) -> bytes:
    # surrogatepass: a device id is never refused here, it only fails to match.
    message = "\n".join((method.upper(), path, device_id, str(expires)))
    return hmac.new(secret, message.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def parse_signature(raw: str) -> bytes | None:
    """The MAC in a URL's ``signature`` (64 lowercase hex digits, as :func:`sign` writes
    it), or None for anything else."""
    if len(raw) != 2 * _MAC_BYTES or not _HEX_DIGITS.issuperset(raw):
        return None
    return bytes.fromhex(raw)


def parse_expiry(raw: str) -> int | None:
    """The Unix time in a URL's ``expires`` (ASCII digits, at most 2^63-1), or None."""
    if not is_ascii_digits(raw) or len(raw) > len(str(MAX_ID)) or int(raw) > MAX_ID:
        return None
    return int(raw)


def sign(
    secret: bytes, base_url: str, method: str, path: str, device_id: str, expires: int
) -> SignedUrl:
    """``base_url + path`` with ``device``, ``expires`` (Unix seconds) and ``signature``."""
    query = urlencode(
        {
            "device": device_id,
            "expires": expires,
            "signature": _mac(secret, method, path, device_id, expires).hex(),
        }
    )
    return SignedUrl(f"{base_url.rstrip('/')}{path}?{query}", expires)


def verify(
    secret: bytes,
    method: str,
    path: str,
    device_id: str | None,
    expires: str | None,
    signature: str | None,
    *,
    now: float,
) -> bool:
    """True when ``signature`` is ours for exactly this request and has not expired.

    ``device_id``, ``expires`` and ``signature`` are the query values as received (None:
    absent); anything malformed is simply not ours.
    """
    if device_id is None or expires is None or signature is None:
        return False
    expiry, mac = parse_expiry(expires), parse_signature(signature)
    if expiry is None or mac is None or now > expiry:
        return False
    return hmac.compare_digest(_mac(secret, method, path, device_id, expiry), mac)
