"""Short-lived signed URLs: how a device downloads a file, or uploads a snapshot, without
an operator's credentials.

A signature covers the HTTP method, the path, the device id and the expiry time, keyed
with the service's URL secret (HMAC-SHA256). It authorises exactly that request for that
device until it expires; changing any part of the URL breaks it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode


def download_path(binary_id: int | str) -> str:
    """Where a device GETs a binary with a signed URL."""
    return f"/files/{binary_id}"


def snapshot_path(operation_id: int) -> str:
    """Where a device PUTs the configuration snapshot of its operation."""
    return f"/files/snapshots/{operation_id}"


@dataclass(frozen=True, slots=True)
class SignedUrl:
    url: str
    expires: int


def _mac(secret: bytes, method: str, path: str, device_id: str, expires: int) -> str:
    message = "\n".join((method.upper(), path, device_id, str(expires))).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(
    secret: bytes, base_url: str, method: str, path: str, device_id: str, expires: int
) -> SignedUrl:
    """``base_url + path`` with ``device``, ``expires`` (Unix seconds) and ``signature``."""
    query = urlencode(
        {
            "device": device_id,
            "expires": expires,
            "signature": _mac(secret, method, path, device_id, expires),
        }
    )
    return SignedUrl(f"{base_url.rstrip('/')}{path}?{query}", expires)


def verify(
    secret: bytes,
    method: str,
    path: str,
    device_id: str,
    expires: int,
    signature: str,
    *,
    now: float,
) -> bool:
    """True when ``signature`` is ours for exactly this request and has not expired."""
    if now > expires:
        return False
    return hmac.compare_digest(_mac(secret, method, path, device_id, expires), signature)
