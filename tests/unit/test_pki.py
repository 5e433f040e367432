"""fleetgate.pki: certificates that OpenSSL-grade verifiers accept, files with safe modes."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from fleetgate.pki import (
    ensure_dev_pki,
    generate_ca,
    issue_client_certificate,
    issue_server_certificate,
    load_issued,
)


def test_server_chain_through_an_intermediate_verifies() -> None:
    root = generate_ca("root", path_length=1)
    intermediate = generate_ca("intermediate", issuer=root, path_length=0)
    server = issue_server_certificate(intermediate, ["broker.example"], ["127.0.0.1"])
    verifier = (
        PolicyBuilder()
        .store(Store([root.certificate]))
        .build_server_verifier(x509.DNSName("broker.example"))
    )
    chain = verifier.verify(server.certificate, [intermediate.certificate])
    assert chain[-1] == root.certificate
    assert intermediate.certificate.issuer == root.certificate.subject


def test_client_certificate_validity_can_be_in_the_past() -> None:
    ca = generate_ca("ca")
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    expired = issue_client_certificate(
        ca, "dev-1", not_before=start, not_after=start + dt.timedelta(days=1)
    )
    assert expired.certificate.not_valid_after_utc == start + dt.timedelta(days=1)
    constraints = expired.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is False


def test_ensure_dev_pki_is_idempotent_and_keys_are_private(tmp_path: Path) -> None:
    first = ensure_dev_pki(tmp_path / "pki")
    before = first.server_cert.read_bytes()
    second = ensure_dev_pki(tmp_path / "pki")
    assert second == first
    assert second.server_cert.read_bytes() == before
    assert stat.S_IMODE(first.server_key.stat().st_mode) == 0o640
    assert stat.S_IMODE(first.ca_key.stat().st_mode) == 0o600
    server = load_issued(first.server_cert, first.server_key)
    san = server.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "::1",
    }
