"""Password hashing shared by the service and the broker plugin.

Format (one line, ASCII): ``scrypt:<log2 N>:<r>:<p>:<salt hex>:<key hex>``.

scrypt is memory-hard and is available both in Python's :mod:`hashlib` and in
OpenSSL (``EVP_PBE_scrypt``), so the mosquitto plugin verifies exactly the same
strings the database stores, without a second copy of any secret. The cost
parameters travel inside the string, so they can be raised later without a
migration: old hashes keep verifying with the parameters they were made with.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from fleetgate.domain.errors import InvalidPasswordHash

#: Defaults: N = 2**14, r = 8, p = 1 needs 16 MiB and ~40 ms of CPU a check.
DEFAULT_LOG2_N = 14
DEFAULT_R = 8
DEFAULT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
# Bounds that keep a hash string from turning one verification into a denial of service.
_MAX_LOG2_N = 20
_MAX_R = 32
_MAX_P = 4
#: Salt and key, each at most this many bytes (the plugin's FG_MAX_HASH_BYTES).
MAX_HASH_BYTES = 256
_HEX = "[0-9a-fA-F]"
_FORMAT = re.compile(
    rf"scrypt:([0-9]{{1,4}}):([0-9]{{1,4}}):([0-9]{{1,4}})"
    rf":((?:{_HEX}{_HEX}){{1,{MAX_HASH_BYTES}}}):((?:{_HEX}{_HEX}){{1,{MAX_HASH_BYTES}}})",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A parsed scrypt hash; :meth:`encode` gives back the stored string."""

    log2_n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """The hash in ``text``, read exactly as the broker plugin reads it
        (``fg_hash_parse``): ASCII digits, hex pairs, the same bounds — a hash the service
        accepts is one the broker accepts."""
        found = _FORMAT.fullmatch(text)
        if found is None:
            raise InvalidPasswordHash("not a scrypt:<log2N>:<r>:<p>:<salt>:<key> string")
        log2_n, r, p = (int(found.group(i)) for i in (1, 2, 3))
        salt, key = bytes.fromhex(found.group(4)), bytes.fromhex(found.group(5))
        if not (1 <= log2_n <= _MAX_LOG2_N and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
            raise InvalidPasswordHash("cost parameters out of range")
        if len(salt) < 8 or len(key) < 16:
            raise InvalidPasswordHash("salt or key too short")
        return cls(log2_n, r, p, salt, key)

    def encode(self) -> str:
        return f"scrypt:{self.log2_n}:{self.r}:{self.p}:{self.salt.hex()}:{self.key.hex()}"

    def matches(self, password: str) -> bool:
        candidate = _derive(password, self.salt, self.log2_n, self.r, self.p, len(self.key))
        return hmac.compare_digest(candidate, self.key)


def hash_password(
    password: str, *, log2_n: int = DEFAULT_LOG2_N, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    """Hash ``password`` with a fresh random salt; returns the storable string."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _derive(password, salt, log2_n, r, p, _KEY_BYTES)
    return PasswordHash(log2_n, r, p, salt, key).encode()


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; a malformed ``stored`` never matches."""
    try:
        parsed = PasswordHash.parse(stored)
    except InvalidPasswordHash:
        return False
    return parsed.matches(password)


def generate_secret(nbytes: int = 24) -> str:
    """A random URL-safe secret (default 192 bits), for generated passwords."""
    return secrets.token_urlsafe(nbytes)


def _derive(password: str, salt: bytes, log2_n: int, r: int, p: int, dklen: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=dklen,
        maxmem=256 * n * r * p + (1 << 20),
    )
