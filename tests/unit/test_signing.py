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
    assert signing.verify(SECRET, "GET", path, "dev-1", 1000, sig, now=999.0)
    assert not signing.verify(SECRET, "GET", path, "dev-1", 1000, sig, now=1000.5)


def test_any_change_breaks_the_signature() -> None:
    signed = signing.sign(SECRET, "http://h", "GET", "/files/7", "dev-1", 1000)
    sig = _parts(signed.url)[1]["signature"]
    assert signing.verify(SECRET, "GET", "/files/7", "dev-1", 1000, sig, now=0)
    assert not signing.verify(SECRET, "PUT", "/files/7", "dev-1", 1000, sig, now=0)
    assert not signing.verify(SECRET, "GET", "/files/8", "dev-1", 1000, sig, now=0)
    assert not signing.verify(SECRET, "GET", "/files/7", "dev-2", 1000, sig, now=0)
    assert not signing.verify(SECRET, "GET", "/files/7", "dev-1", 2000, sig, now=0)
    assert not signing.verify(b"other" * 8, "GET", "/files/7", "dev-1", 1000, sig, now=0)
