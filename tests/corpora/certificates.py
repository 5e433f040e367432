"""Certificates made at test time for the bad-input corpora and the broker checks: any key
type and size, any signature hash, any validity, with or without CA constraints. Never
keys checked in: each run makes its own."""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SigningKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey | ed25519.Ed25519PrivateKey
)


@dataclass(frozen=True)
class Made:
    certificate: x509.Certificate
    key: SigningKey

    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@cache
def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """One key per size for the whole run (RSA generation is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def dsa_key(bits: int) -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=bits)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def make_ca(
    name: str,
    *,
    key: SigningKey | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
    ca: bool | None = True,
    issuer: Made | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Made:
    """A CA certificate (self-signed unless ``issuer``); ``ca=False`` makes a leaf-shaped
    one and ``ca=None`` leaves BasicConstraints out."""
    key = key if key is not None else ec_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or _now() - dt.timedelta(minutes=5))
        .not_valid_after(not_after or _now() + dt.timedelta(days=30))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    digest = None if isinstance(signer, ed25519.Ed25519PrivateKey) else algorithm or hashes.SHA256()
    return Made(builder.sign(signer, digest), key)


def make_device(ca: Made, client_id: str) -> Made:
    """A device's client certificate (EC P-256, SHA-256) signed by ``ca``."""
    key = ec_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, client_id)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    )
    digest = None if isinstance(ca.key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Made(builder.sign(ca.key, digest), key)


def make_ca_signed_with(name: str, digest: str, key: SigningKey | None = None) -> Made:
    """A self-signed CA whose signature uses ``digest`` (``sha1``, ``md5`` …), which
    cryptography refuses to sign with: the openssl command line signs it instead."""
    key = key if key is not None else rsa_key(2048)
    with tempfile.TemporaryDirectory() as work:
        key_file, cert_file = Path(work) / "ca.key", Path(work) / "ca.crt"
        key_file.write_bytes(Made(None, key).key_pem())  # type: ignore[arg-type]
        subprocess.run(
            [
                "openssl", "req", "-x509", "-new", "-key", str(key_file), f"-{digest}",
                "-subj", f"/CN={name}", "-days", "30", "-out", str(cert_file),
                "-addext", "basicConstraints=critical,CA:true",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return Made(x509.load_pem_x509_certificate(cert_file.read_bytes()), key)


def make_intermediate_signed_with(name: str, digest: str, issuer: Made) -> Made:
    """An intermediate CA (EC P-256) that ``issuer`` signs with ``digest``, by openssl."""
    key = ec_key()
    with tempfile.TemporaryDirectory() as work:
        files = {n: Path(work) / n for n in ("i.key", "i.csr", "i.crt", "r.key", "r.crt", "x")}
        files["i.key"].write_bytes(Made(None, key).key_pem())  # type: ignore[arg-type]
        files["r.key"].write_bytes(issuer.key_pem())
        files["r.crt"].write_text(issuer.pem())
        files["x"].write_text(
            "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n"
        )
        run = ["openssl", "req", "-new", "-key", str(files["i.key"]), "-subj", f"/CN={name}"]
        subprocess.run([*run, "-out", str(files["i.csr"])], check=True, capture_output=True)
        subprocess.run(
            [
                "openssl", "x509", "-req", "-in", str(files["i.csr"]), f"-{digest}",
                "-CA", str(files["r.crt"]), "-CAkey", str(files["r.key"]), "-CAcreateserial",
                "-days", "30", "-extfile", str(files["x"]), "-out", str(files["i.crt"]),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return Made(x509.load_pem_x509_certificate(files["i.crt"].read_bytes()), key)
