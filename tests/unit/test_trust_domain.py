"""The rules a trusted CA certificate must obey, and the facts read from it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from fleetgate.domain.certificates import (
    MAX_PEM_BYTES,
    CertificateRefused,
    RefusalReason,
    iso_timestamp,
    parse_trusted_certificate,
)
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.trust import (
    TrustedCertificate,
    TrustStatus,
    apply_update,
    certificate_from_upload,
    read_only_values,
)
from fleetgate.pki import Issued, generate_ca, issue_client_certificate

from corpora.certificates import (
    dsa_key,
    ec_key,
    make_ca,
    make_ca_signed_with,
    make_intermediate_signed_with,
    rsa_key,
)
from fakes import CERTIFICATE_CLOCK

NOW = CERTIFICATE_CLOCK


@pytest.fixture(scope="module")
def root() -> Issued:
    return generate_ca("Test Root CA")


def pem_of(issued: Issued) -> str:
    return issued.cert_pem().decode()


def refusal(text: str | bytes, now: dt.datetime = NOW) -> CertificateRefused:
    with pytest.raises(CertificateRefused) as caught:
        parse_trusted_certificate(text, now)
    assert isinstance(caught.value, ValidationFailed)
    assert caught.value.status == 422
    return caught.value


def built(
    *,
    version: x509.Version = x509.Version.v3,
    ca: bool | None = True,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
    serial: int = 0x1234ABCD,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> x509.Certificate:
    """A self-signed certificate built by hand, for the cases pki does not make."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Hand CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example, Inc."),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=30))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    cert = builder.sign(key, algorithm or hashes.SHA256())
    if version is x509.Version.v1:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        cert = _as_version_1(cert, key)
    return cert


def _as_version_1(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """Rebuild ``cert`` as version 1 (cryptography's builder only writes version 3).

    TBSCertificate starts with ``[0] EXPLICIT version`` (a0 03 02 01 02 for v3); version 1
    is the default and is left out. The TBS is re-signed and the certificate reassembled.
    """
    tbs_content = _der_content(cert.tbs_certificate_bytes)
    version_3 = bytes.fromhex("a003020102")
    assert tbs_content.startswith(version_3)
    tbs = _der_sequence(tbs_content[len(version_3) :])
    cert_content = _der_content(cert.public_bytes(serialization.Encoding.DER))
    after_tbs = cert_content[len(cert.tbs_certificate_bytes) :]
    algorithm = after_tbs[: _der_total_length(after_tbs)]
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    bit_string = b"\x03" + _der_length(len(signature) + 1) + b"\x00" + signature
    return x509.load_der_x509_certificate(_der_sequence(tbs + algorithm + bit_string))


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_total_length(data: bytes) -> int:
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def _der_content(data: bytes) -> bytes:
    first = data[1]
    header = 2 if first < 0x80 else 2 + (first & 0x7F)
    return data[header : _der_total_length(data)]


def _der_sequence(content: bytes) -> bytes:
    return b"\x30" + _der_length(len(content)) + content


def pem_text(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# --- accepted certificates and their facts ---------------------------------------------


def test_a_root_ca_is_accepted_with_the_facts_cumulocity_shows(root: Issued) -> None:
    facts = parse_trusted_certificate(pem_of(root), NOW)
    der = root.certificate.public_bytes(serialization.Encoding.DER)
    assert facts.fingerprint == hashlib.sha1(der, usedforsecurity=False).hexdigest()
    assert facts.fingerprint == facts.fingerprint.lower()
    assert len(facts.fingerprint) == 40
    assert facts.subject == "CN=Test Root CA"
    assert facts.issuer == "CN=Test Root CA"
    assert facts.serial_number == str(root.certificate.serial_number)
    assert facts.serial_number.isdigit()
    assert facts.algorithm_name == "SHA256withECDSA"
    assert facts.version == 3
    assert facts.not_before == root.certificate.not_valid_before_utc
    assert facts.not_after == root.certificate.not_valid_after_utc
    assert facts.der == der
    assert facts.pem == pem_of(root)


def test_an_intermediate_ca_is_accepted_and_names_its_issuer(root: Issued) -> None:
    intermediate = generate_ca("Devices CA", issuer=root)
    facts = parse_trusted_certificate(pem_of(intermediate), NOW)
    assert facts.subject == "CN=Devices CA"
    assert facts.issuer == "CN=Test Root CA"


def test_rsa_signatures_get_javas_name_and_rfc4514_names_escape_commas() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = built(key=key, serial=1000)
    facts = parse_trusted_certificate(pem_text(cert), NOW)
    assert facts.algorithm_name == "SHA256withRSA"
    assert facts.serial_number == "1000"
    assert facts.subject == "O=Example\\, Inc.,CN=Hand CA"
    ec384 = built(algorithm=hashes.SHA384())
    assert parse_trusted_certificate(pem_text(ec384), NOW).algorithm_name == "SHA384withECDSA"


def test_the_pem_is_normalised_and_surrounding_text_is_tolerated(root: Issued) -> None:
    messy = "subject=CN = Test Root CA\r\n" + pem_of(root).replace("\n", "\r\n") + "\n\n"
    facts = parse_trusted_certificate(messy, NOW)
    assert facts.pem == pem_of(root)


def test_the_bare_base64_body_is_accepted_as_cumulocity_does(root: Issued) -> None:
    body = "".join(pem_of(root).splitlines()[1:-1])
    assert parse_trusted_certificate(body, NOW).pem == pem_of(root)


def test_timestamps_are_utc_with_milliseconds_and_z() -> None:
    moment = dt.datetime(2040, 2, 13, 14, 13, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert iso_timestamp(moment) == "2040-02-13T13:13:00.123Z"


# --- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "hello world",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----",
    ],
)
def test_garbage_and_empty_input_are_not_pem(text: str) -> None:
    error = refusal(text)
    assert error.reason is RefusalReason.NOT_PEM
    assert "not a PEM certificate" in error.message


def test_der_is_not_pem(root: Issued) -> None:
    der = root.certificate.public_bytes(serialization.Encoding.DER)
    assert refusal(der).reason is RefusalReason.NOT_PEM
    assert refusal(der.decode("latin-1")).reason is RefusalReason.NOT_PEM


def test_a_valid_base64_block_that_is_no_certificate_is_not_pem() -> None:
    body = base64.b64encode(b"\x30\x03\x02\x01\x01").decode()
    error = refusal(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    assert error.reason is RefusalReason.NOT_PEM


def test_an_unterminated_block_is_not_pem(root: Issued) -> None:
    truncated = pem_of(root).split("-----END")[0]
    assert refusal(truncated).reason is RefusalReason.NOT_PEM


def test_several_certificates_are_refused_and_counted(root: Issued) -> None:
    other = generate_ca("Other CA")
    error = refusal(pem_of(root) + pem_of(other))
    assert error.reason is RefusalReason.SEVERAL_CERTIFICATES
    assert "2 certificates" in error.message


@pytest.mark.parametrize("encoding", ["pkcs8", "traditional"])
def test_a_private_key_is_refused_and_never_echoed(root: Issued, encoding: str) -> None:
    fmt = (
        serialization.PrivateFormat.PKCS8
        if encoding == "pkcs8"
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    key_pem = root.private_key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    ).decode()
    for sent in (key_pem, pem_of(root) + key_pem, key_pem + pem_of(root)):
        error = refusal(sent)
        assert error.reason is RefusalReason.PRIVATE_KEY
        assert "private key was sent" in error.message
        body_line = key_pem.splitlines()[1]
        assert body_line not in error.message
        assert body_line not in str(error)


def test_other_pem_blocks_are_refused_by_label(root: Issued) -> None:
    public = root.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    error = refusal(public.decode())
    assert error.reason is RefusalReason.NOT_A_CERTIFICATE
    assert "'PUBLIC KEY'" in error.message


def test_a_leaf_certificate_is_refused(root: Issued) -> None:
    leaf = issue_client_certificate(root, "device-1")
    error = refusal(pem_of(leaf))
    assert error.reason is RefusalReason.NOT_A_CA
    assert "leaf" in error.message


def test_a_certificate_without_basic_constraints_is_not_a_ca() -> None:
    error = refusal(pem_text(built(ca=None)))
    assert error.reason is RefusalReason.NOT_A_CA
    assert "BasicConstraints" in error.message


def test_a_version_1_certificate_is_refused() -> None:
    cert = built(version=x509.Version.v1, ca=None)
    assert cert.version is x509.Version.v1
    error = refusal(pem_text(cert))
    assert error.reason is RefusalReason.NOT_VERSION_3
    assert "version 3" in error.message


def test_an_expired_ca_is_refused() -> None:
    old = generate_ca("Old CA", not_before=NOW - dt.timedelta(days=30), valid_days=10)
    error = refusal(pem_of(old))
    assert error.reason is RefusalReason.EXPIRED
    assert "expired" in error.message


def test_a_ca_that_is_not_valid_yet_is_refused() -> None:
    future = generate_ca("Future CA", not_before=NOW + dt.timedelta(days=1))
    error = refusal(pem_of(future))
    assert error.reason is RefusalReason.NOT_YET_VALID
    assert "not valid yet" in error.message


def test_validity_is_judged_at_the_time_given(root: Issued) -> None:
    later = root.certificate.not_valid_after_utc + dt.timedelta(seconds=1)
    assert refusal(pem_of(root), later).reason is RefusalReason.EXPIRED


def test_input_over_64_kib_is_refused_before_parsing(root: Issued) -> None:
    padded = pem_of(root) + "#" * MAX_PEM_BYTES
    error = refusal(padded)
    assert error.reason is RefusalReason.TOO_LARGE
    assert "64 KiB" in error.message
    assert refusal(b"x" * (MAX_PEM_BYTES + 1)).reason is RefusalReason.TOO_LARGE


# --- uploads and edits -----------------------------------------------------------------


def upload(root: Issued, **extra: object) -> TrustedCertificate:
    body: dict[str, object] = {"certInPemFormat": pem_of(root), "status": "ENABLED"}
    body.update(extra)
    return certificate_from_upload("t1", body, NOW)


def test_an_upload_defaults_the_name_to_the_cn_and_auto_registration_off(root: Issued) -> None:
    cert = upload(root)
    assert cert.name == "Test Root CA"
    assert cert.status is TrustStatus.ENABLED
    assert cert.auto_registration is False
    assert cert.tenant_id == "t1"


def test_an_upload_takes_cumulocitys_string_booleans(root: Issued) -> None:
    assert upload(root, autoRegistrationEnabled="true").auto_registration is True
    assert upload(root, autoRegistrationEnabled=False).auto_registration is False


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"status": "ON"}, "status"),
        ({"status": None}, "status"),
        ({"certInPemFormat": 42}, "certInPemFormat"),
        ({"certInPemFormat": None}, "certInPemFormat"),
        ({"name": 7}, "name"),
        ({"name": " "}, "name"),
        ({"autoRegistrationEnabled": "yes"}, "autoRegistrationEnabled"),
        ({"colour": "blue"}, "colour"),
        ({"fingerprint": "00" * 20}, "fingerprint"),
    ],
)
def test_bad_upload_fields_are_named(root: Issued, extra: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        upload(root, **extra)
    assert caught.value.message.startswith(field)


def test_an_update_changes_only_the_editable_fields(root: Issued) -> None:
    cert = upload(root, name="before")
    after = apply_update(
        cert, {"name": "after", "status": "DISABLED", "autoRegistrationEnabled": True}
    )
    assert (after.name, after.status, after.auto_registration) == (
        "after",
        TrustStatus.DISABLED,
        True,
    )
    assert after.facts == cert.facts
    assert apply_update(cert, {}) == cert


def test_a_get_representation_can_be_put_back_unchanged(root: Issued) -> None:
    cert = upload(root)
    round_trip: dict[str, object] = dict(read_only_values(cert))
    round_trip["certInPemFormat"] = "".join(cert.facts.pem.splitlines()[1:-1])
    round_trip.update(self="http://x/y", name="renamed")
    assert apply_update(cert, round_trip).name == "renamed"


@pytest.mark.parametrize(
    "field", ["certInPemFormat", "fingerprint", "subject", "serialNumber", "notAfter", "version"]
)
def test_changing_a_read_only_field_is_refused_by_name(root: Issued, field: str) -> None:
    cert = upload(root)
    with pytest.raises(ValidationFailed) as caught:
        apply_update(cert, {field: "something else"})
    assert caught.value.message.startswith(f"{field}: is read-only")


def test_an_update_with_an_unknown_field_is_refused(root: Issued) -> None:
    with pytest.raises(ValidationFailed, match="autoRegistration: unknown field"):
        apply_update(upload(root), {"autoRegistration": True})


def _der(ca: Issued) -> bytes:
    return ca.certificate.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        # The SubjectKeyIdentifier's OID made BasicConstraints': the extension twice.
        (b"\x06\x03\x55\x1d\x0e", b"\x06\x03\x55\x1d\x13", "a duplicated extension"),
        # The CN "AB" as a BIT STRING: cryptography refuses that type for a CN (TypeError).
        (b"\x0c\x02AB", b"\x03\x02\x00B", "a name attribute of the wrong type"),
    ],
)
def test_certificates_cryptography_reads_lazily_and_finds_malformed_are_refused(
    old: bytes, new: bytes, what: str
) -> None:
    """Each was an unhandled exception (a 500) found by the corruption property test."""
    der = _der(generate_ca("AB"))
    assert old in der, what
    broken = der.replace(old, new, 1)
    with pytest.raises(ValidationFailed, match="malformed"):
        parse_trusted_certificate(base64.b64encode(broken).decode(), NOW)


# --- strong enough for the broker's OpenSSL (security level 2) ---------------------------


@pytest.mark.parametrize(
    ("key", "words"),
    [
        (lambda: rsa_key(1024), "an RSA key of 1024 bits"),
        (lambda: rsa_key(2047), "an RSA key of 2047 bits"),
        (lambda: dsa_key(1024), "a DSA key of 1024 bits"),
        (lambda: ec_key(ec.SECP192R1()), "an elliptic-curve key of 192 bits (secp192r1)"),
    ],
)
def test_a_ca_key_the_broker_refuses_is_refused_with_the_reason(key, words: str) -> None:
    # Issue 9: an RSA-1024 CA was accepted (201) but no device under it could connect.
    made = make_ca("weak CA", key=key())
    refused = refusal(made.pem(), dt.datetime.now(dt.UTC))
    assert refused.reason is RefusalReason.WEAK_KEY
    assert words in refused.message
    assert "no device it signed could connect" in refused.message


@pytest.mark.parametrize(("digest", "name"), [("sha1", "SHA1withRSA"), ("md5", "MD5withRSA")])
def test_a_sha1_or_md5_signature_is_refused_with_the_reason(digest: str, name: str) -> None:
    made = make_ca_signed_with(f"{digest} CA", digest)
    refused = refusal(made.pem(), dt.datetime.now(dt.UTC))
    assert refused.reason is RefusalReason.WEAK_SIGNATURE
    assert f"signed with {name}" in refused.message


def test_a_sha1_signed_intermediate_is_refused_too() -> None:
    root = make_ca("root", key=rsa_key(2048))
    made = make_intermediate_signed_with("sha1 intermediate", "sha1", root)
    assert refusal(made.pem(), dt.datetime.now(dt.UTC)).reason is RefusalReason.WEAK_SIGNATURE


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [
        (lambda: rsa_key(2048), "SHA256withRSA"),
        (lambda: dsa_key(2048), "SHA256withDSA"),
        (lambda: ec_key(ec.SECP224R1()), "SHA256withECDSA"),
        (lambda: ec_key(ec.SECP521R1()), "SHA256withECDSA"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), "Ed25519"),
    ],
)
def test_keys_and_signatures_at_the_level_are_taken(key, algorithm: str) -> None:
    made = make_ca("strong CA", key=key())
    assert parse_trusted_certificate(made.pem(), dt.datetime.now(dt.UTC)).algorithm_name == (
        algorithm
    )
