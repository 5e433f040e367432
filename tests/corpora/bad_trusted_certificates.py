"""Bad trusted-certificate uploads and edits: each is refused with a 4xx and Cumulocity's
error body, and nothing is stored or changed. Certificates are made at run time.

A case is (name, how to make the request body, status, words the message holds). A body
is bytes sent as they are (to send invalid JSON) or a dict sent as JSON.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from corpora.certificates import (
    dsa_key,
    ec_key,
    make_ca,
    make_ca_signed_with,
    make_intermediate_signed_with,
    rsa_key,
)

Body = dict[str, object] | bytes


@dataclass(frozen=True)
class Case:
    name: str
    body: Callable[[], Body]
    status: int
    words: str = ""


def good_pem() -> str:
    return make_ca("good CA").pem()


def upload(pem: str | object, **extra: object) -> dict[str, object]:
    """A POST body around ``pem``; ``extra`` changes or adds fields (None removes one)."""
    body: dict[str, object] = {
        "name": "corpus CA",
        "certInPemFormat": pem,
        "status": "ENABLED",
        "autoRegistrationEnabled": True,
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def with_good(**extra: object) -> Callable[[], Body]:
    return lambda: upload(good_pem(), **extra)


def raw_json(text: str) -> Callable[[], Body]:
    """A body written by hand (what json.dumps would not write)."""
    return lambda: text.replace("@PEM@", json.dumps(good_pem())).encode()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _pem_body(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def _two_certificates() -> Body:
    return upload(good_pem() + make_ca("second CA").pem())


def _private_key() -> Body:
    key = ec_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return upload(key.decode())


def _public_key() -> Body:
    key = (
        ec_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return upload(key.decode())


def _der_as_text() -> Body:
    der = make_ca("der CA").certificate.public_bytes(serialization.Encoding.DER)
    return upload(der.decode("latin-1"))


UPLOADS: list[Case] = [
    # --- not a certificate at all
    Case("garbage text", lambda: upload("hello, I am a certificate"), 422, "not a PEM"),
    Case("garbage base64", lambda: upload("!!!!@@@@####"), 422, "not a PEM"),
    Case("base64 of random bytes", lambda: upload(base64.b64encode(b"\x01" * 300).decode()), 422, "X.509"),
    Case("DER bytes as text", _der_as_text, 422, "NUL"),
    Case("empty string", lambda: upload(""), 422, "not a PEM"),
    Case("only whitespace", lambda: upload(" \n\t "), 422, "not a PEM"),
    Case("BEGIN without END", lambda: upload(good_pem().split("-----END")[0]), 422, "no matching END"),
    Case("body cut in half", lambda: upload(good_pem()[:200] + "\n-----END CERTIFICATE-----\n"), 422, ""),
    Case("NUL inside the base64", lambda: upload(good_pem().replace("\n", "\x00", 3)), 422, "NUL"),
    Case("larger than 64 KiB", lambda: upload(good_pem() + "\n" + "A" * 70_000), 422, "larger than 64 KiB"),
    # --- PEM, but not one CA certificate
    Case("chain of two", _two_certificates, 422, "2 certificates were sent"),
    Case("a private key", _private_key, 422, "a private key was sent"),
    Case("a public key", _public_key, 422, "PUBLIC KEY"),
    Case("a CRL label", lambda: upload("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"), 422, "X509 CRL"),
    Case("a leaf, not a CA", lambda: upload(make_ca("leaf", ca=False).pem()), 422, "is a leaf"),
    Case("no BasicConstraints", lambda: upload(make_ca("plain", ca=None).pem()), 422, "no BasicConstraints"),
    Case(
        "expired",
        lambda: upload(
            make_ca("old", not_before=_now() - dt.timedelta(days=60), not_after=_now() - dt.timedelta(days=1)).pem()
        ),
        422,
        "expired",
    ),
    Case(
        "not yet valid",
        lambda: upload(
            make_ca("future", not_before=_now() + dt.timedelta(days=1), not_after=_now() + dt.timedelta(days=60)).pem()
        ),
        422,
        "not valid yet",
    ),
    # --- a CA the broker's OpenSSL would refuse (issue 9, item 6)
    Case("RSA-1024", lambda: upload(make_ca("rsa1024", key=rsa_key(1024)).pem()), 422, "RSA key of 1024 bits"),
    Case("RSA-1536", lambda: upload(make_ca("rsa1536", key=rsa_key(1536)).pem()), 422, "RSA key of 1536 bits"),
    Case("DSA-1024", lambda: upload(make_ca("dsa1024", key=dsa_key(1024)).pem()), 422, "DSA key of 1024 bits"),
    Case("P-192", lambda: upload(make_ca("p192", key=ec_key(ec.SECP192R1())).pem()), 422, "192 bits"),
    Case("SHA-1 signed root", lambda: upload(make_ca_signed_with("sha1", "sha1").pem()), 422, "SHA1withRSA"),
    Case("MD5 signed root", lambda: upload(make_ca_signed_with("md5", "md5").pem()), 422, "MD5withRSA"),
    Case(
        "SHA-1 signed intermediate",
        lambda: upload(make_intermediate_signed_with("i", "sha1", make_ca("r", key=rsa_key(2048))).pem()),
        422,
        "SHA1withRSA",
    ),
    # --- the other fields
    Case("NUL in name", with_good(name="factory\x00CA"), 422, "holds a NUL"),
    Case("lone surrogate in name", raw_json('{"name": "\\ud800", "certInPemFormat": @PEM@, "status": "ENABLED"}'), 422, "lone surrogate"),
    Case("huge name", with_good(name="n" * 1001), 422, "at most 1000"),
    Case("blank name", with_good(name="   "), 422, "must not be empty"),
    Case("name not a string", with_good(name=5), 422, "name: must be a string"),
    Case("wrong status value", with_good(status="ACTIVE"), 422, "ENABLED or DISABLED"),
    Case("status in lower case", with_good(status="enabled"), 422, "ENABLED or DISABLED"),
    Case("status missing", with_good(status=None), 422, "status: required"),
    Case("autoRegistrationEnabled not a bool", with_good(autoRegistrationEnabled="yes"), 422, "true or false"),
    Case("autoRegistrationEnabled a number", with_good(autoRegistrationEnabled=1), 422, "true or false"),
    Case("certInPemFormat missing", lambda: upload(None), 422, "certInPemFormat: required"),
    Case("certInPemFormat a number", lambda: upload(12345), 422, "must be a string"),
    Case("certInPemFormat a list", lambda: upload([good_pem()]), 422, "must be a string"),
    Case("unknown field", with_good(fingerprintt="x"), 422, "unknown field"),
    Case("read-only field that does not match", with_good(fingerprint="00" * 20), 422, "does not match"),
    # --- not the JSON object a route needs
    Case("non-object body: array", lambda: b"[]", 422, "must be a JSON object"),
    Case("non-object body: string", lambda: b'"-----BEGIN CERTIFICATE-----"', 422, "must be a JSON object"),
    Case("empty body", lambda: b"", 400, "empty"),
    Case("invalid JSON", lambda: b'{"status": "ENABLED",', 400, "not valid JSON"),
    Case("NaN", raw_json('{"certInPemFormat": @PEM@, "status": "ENABLED", "name": NaN}'), 400, "NaN"),
    Case("1e400", raw_json('{"certInPemFormat": @PEM@, "status": "ENABLED", "version": 1e400}'), 422, "not finite"),
    Case("deep nesting", raw_json('{"certInPemFormat": @PEM@, "status": "ENABLED", "name": ' + "[" * 80 + "]" * 80 + "}"), 422, "deeper than 64"),
    Case("body over 10 MB", lambda: b'{"name": "' + b"x" * (10 * 1024 * 1024) + b'"}', 413, "larger than"),
]  # fmt: skip

#: Bad PUT bodies for a stored certificate: refused, and the certificate stays as it was.
EDITS: list[Case] = [
    Case("NUL in name", lambda: {"name": "a\x00b"}, 422, "holds a NUL"),
    Case("huge name", lambda: {"name": "n" * 1001}, 422, "at most 1000"),
    Case("blank name", lambda: {"name": ""}, 422, "must not be empty"),
    Case("wrong status value", lambda: {"status": "OFF"}, 422, "ENABLED or DISABLED"),
    Case("autoRegistrationEnabled not a bool", lambda: {"autoRegistrationEnabled": "no"}, 422, "true or false"),
    Case("another certificate", lambda: {"certInPemFormat": good_pem()}, 422, "read-only"),
    Case("unknown field", lambda: {"nmae": "x"}, 422, "unknown field"),
    Case("non-object body", lambda: b'["name"]', 422, "must be a JSON object"),
    Case("NaN", lambda: b'{"name": NaN}', 400, "NaN"),
    Case("deep nesting", lambda: b'{"name": ' + b"[" * 80 + b"]" * 80 + b"}", 422, "deeper than 64"),
]  # fmt: skip
