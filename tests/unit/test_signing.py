"""Signed file URLs: valid for exactly one request, one device, until they expire."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fleetgate.domain import signing

SECRET = b"k" * 32


def _parts(url: str) -> tuple[str, dict[str, str]]:
    split = urlsplit(url)
    return split.path, {k: v[0] for k, v in parse_qs(split.query).items()}


def test_a_signed_url_verifies_until_it_expires() -> None:
    signed = signing.sign(SECRET, "http://h:1/", "GET", "/files/7", "dev-1", 1000)
    path, q = _parts(signed.url)
    assert signed.url.startswith("http://h:1/files/7?")
    assert (path, q["device"], q["expires"]) == ("/files/7", "dev-1", "1000")
    sig = q["signature"]
    assert signing.verify(SECRET, "GET", path, "dev-1", "1000", sig, now=999.0)
    assert not signing.verify(SECRET, "GET", path, "dev-1", "1000", sig, now=1000.5)


def test_any_change_breaks_the_signature() -> None:
    signed = signing.sign(SECRET, "http://h", "GET", "/files/7", "dev-1", 1000)
    sig = _parts(signed.url)[1]["signature"]
    assert signing.verify(SECRET, "GET", "/files/7", "dev-1", "1000", sig, now=0)
    assert not signing.verify(SECRET, "PUT", "/files/7", "dev-1", "1000", sig, now=0)
    assert not signing.verify(SECRET, "GET", "/files/8", "dev-1", "1000", sig, now=0)
    assert not signing.verify(SECRET, "GET", "/files/7", "dev-2", "1000", sig, now=0)
    assert not signing.verify(SECRET, "GET", "/files/7", "dev-1", "2000", sig, now=0)
    assert not signing.verify(b"other" * 8, "GET", "/files/7", "dev-1", "1000", sig, now=0)


def test_a_malformed_signature_or_expiry_is_not_ours_and_never_an_error() -> None:
    signed = signing.sign(SECRET, "http://h", "GET", "/files/7", "dev-1", 1000)
    sig = _parts(signed.url)[1]["signature"]
    # The repro of issue 9: a non-ASCII signature made hmac.compare_digest raise (a 500).
    for bad_signature in ("é" * 64, sig.upper(), sig[:-1], sig + "0", "", " " + sig[1:], None):
        assert not signing.verify(
            SECRET, "GET", "/files/7", "dev-1", "1000", bad_signature, now=0
        ), bad_signature
    for bad_expiry in ("\u0661\u0660\u0660\u0660", "+1000", " 1000", "1e3", "", "9" * 30, None):
        assert not signing.verify(SECRET, "GET", "/files/7", "dev-1", bad_expiry, sig, now=0)
    assert not signing.verify(SECRET, "GET", "/files/7", None, "1000", sig, now=0)
    assert not signing.verify(SECRET, "GET", "/files/7", "dev-\ud800", "1000", sig, now=0)


def test_the_signature_parser_takes_exactly_what_sign_writes() -> None:
    assert signing.parse_signature("ab" * 32) == bytes([0xAB]) * 32
    assert signing.parse_signature("AB" * 32) is None
    assert signing.parse_signature("ab" * 31 + "a ") is None
    assert signing.parse_expiry("0012") == 12
    assert signing.parse_expiry(str(2**63)) is None
    assert signing.parse_expiry("³") is None
