"""The web console's login sessions and their CSRF tokens: pure values and HMACs.

A session is a signed cookie, not a row: ``<payload>.<signature>``, the payload the
URL-safe base64 of a small JSON object, the signature HMAC-SHA256 over it with the
console's key (:func:`session_key`, derived from the service's URL secret, so that every
instance sharing that secret accepts the others' sessions). It names the tenant and the
user, a *stamp* of the user's stored password hash (a changed password ends every
session of the user), when it was issued, and a random nonce. It is checked on every
request, and the user is read again each time (a disabled user or a removed role takes
effect at once: :meth:`fleetgate.services.auth.Authenticator.resume`).

The CSRF token of a form is an HMAC of the session's nonce (a synchronizer token that
needs no storage): a page of another site cannot read it, so it cannot post a form that
carries it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

#: How long a console session lasts after its login, in seconds (a working day).
MAX_AGE = 12 * 3600

#: Seconds a session may seem issued in the future (clocks of several instances).
_SKEW = 60
_KEY_LABEL = b"fleetgate console sessions v1"


@dataclass(frozen=True, slots=True)
class Session:
    tenant_id: str
    username: str
    #: :func:`password_stamp` of the user's stored password hash at login.
    stamp: str
    #: Unix seconds of the login.
    issued: int
    #: Random, made at login: what the CSRF token is bound to.
    nonce: str


def session_key(secret: bytes) -> bytes:
    """The console's signing key, derived from the service's secret (never the secret
    itself: a signed file URL and a session are not interchangeable)."""
    return hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()


def password_stamp(password_hash: str) -> str:
    """A short digest of a stored password hash (salted already): equal while the
    password is unchanged, and nothing to guess a password from."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:16]


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode("ascii"), hashlib.sha256).hexdigest()


def seal(key: bytes, session: Session) -> str:
    """The cookie value of ``session``."""
    data = json.dumps(
        [session.tenant_id, session.username, session.stamp, session.issued, session.nonce],
        separators=(",", ":"),
    ).encode("utf-8")
    payload = base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
    return f"{payload}.{_sign(key, payload)}"


def unseal(key: bytes, token: str | None, now: float, max_age: int = MAX_AGE) -> Session | None:
    """The session a cookie value holds; None when it is absent, malformed, not signed
    with ``key``, or older than ``max_age`` seconds (or issued in the future)."""
    if not token or len(token) > 4096:
        return None
    payload, dot, signature = token.rpartition(".")
    if (
        not dot
        or not payload.isascii()
        or not hmac.compare_digest(
            signature.encode("ascii", "replace"), _sign(key, payload).encode("ascii")
        )
    ):
        return None
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        fields = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(fields, list) or len(fields) != 5:
        return None
    tenant_id, username, stamp, issued, nonce = fields
    if not all(isinstance(v, str) for v in (tenant_id, username, stamp, nonce)):
        return None
    if not isinstance(issued, int) or isinstance(issued, bool):
        return None
    if not issued - _SKEW <= now < issued + max_age:
        return None
    return Session(tenant_id, username, stamp, issued, nonce)


def csrf_token(key: bytes, session: Session) -> str:
    """The token every form of this session carries."""
    return hmac.new(key, b"csrf:" + session.nonce.encode("utf-8"), hashlib.sha256).hexdigest()


def csrf_matches(key: bytes, session: Session, token: object) -> bool:
    return isinstance(token, str) and hmac.compare_digest(
        token.encode("ascii", "replace"), csrf_token(key, session).encode("ascii")
    )
