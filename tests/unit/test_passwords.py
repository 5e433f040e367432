from __future__ import annotations

import pytest

from fleetgate.domain.errors import InvalidPasswordHash
from fleetgate.domain.passwords import PasswordHash, hash_password, verify_password

# Cheap parameters keep the unit tests fast; the format carries them.
FAST = {"log2_n": 4, "r": 1, "p": 1}


def test_a_hash_verifies_its_password_only() -> None:
    stored = hash_password("correct horse", **FAST)
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("", stored)


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("x", **FAST) != hash_password("x", **FAST)


def test_default_parameters_are_memory_hard() -> None:
    parsed = PasswordHash.parse(hash_password("x"))
    assert (1 << parsed.log2_n) * 128 * parsed.r >= 16 * 1024 * 1024
    assert len(parsed.salt) == 16
    assert len(parsed.key) == 32


@pytest.mark.parametrize(
    "text",
    [
        "",
        "bcrypt:14:8:1:00112233445566778899aabbccddeeff:" + "00" * 32,
        "scrypt:14:8:1:zz:00",
        "scrypt:14:8:1:0011:" + "00" * 32,  # salt too short
        "scrypt:30:8:1:00112233445566778899aabbccddeeff:" + "00" * 32,  # N too large
        "scrypt:14:8:1:00112233445566778899aabbccddeeff",
        # What int() and bytes.fromhex() take but the broker plugin does not:
        "scrypt:1_4:8:1:00112233445566778899aabbccddeeff:" + "00" * 32,
        "scrypt:+14:8:1:00112233445566778899aabbccddeeff:" + "00" * 32,
        "scrypt:\u0661\u0664:8:1:00112233445566778899aabbccddeeff:" + "00" * 32,
        "scrypt:14:8:1:00112233 445566778899aabbccddeeff:" + "00" * 32,
        "scrypt:00014:8:1:00112233445566778899aabbccddeeff:" + "00" * 32,
        "scrypt:14:8:1:" + "00" * 257 + ":" + "00" * 32,  # salt over 256 bytes
    ],
)
def test_malformed_hashes_are_refused_and_never_match(text: str) -> None:
    with pytest.raises(InvalidPasswordHash):
        PasswordHash.parse(text)
    assert not verify_password("anything", text)


def test_encode_gives_back_the_stored_string() -> None:
    stored = hash_password("pw", **FAST)
    assert PasswordHash.parse(stored).encode() == stored
