"""Whatever is uploaded, parsing a trusted certificate fails only with ValidationFailed."""

from __future__ import annotations

import base64
import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgate.domain.certificates import parse_trusted_certificate
from fleetgate.domain.errors import ValidationFailed
from fleetgate.pki import generate_ca

from fakes import CERTIFICATE_CLOCK

NOW = CERTIFICATE_CLOCK
_CA_PEM = generate_ca("Property CA").cert_pem().decode()
_CA_BODY = "".join(_CA_PEM.splitlines()[1:-1])


def _wrapped(body: str, label: str = "CERTIFICATE") -> str:
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


def _mutated(body: str, data: st.DataObject) -> str:
    """The CA's base64 body with one character replaced: mostly still base64."""
    i = data.draw(st.integers(0, len(body) - 1))
    c = data.draw(st.sampled_from("ABCDEFabcdef0123456789+/=%\n "))
    return body[:i] + c + body[i + 1 :]


@given(text=st.text())
def test_arbitrary_text_is_refused_cleanly(text: str) -> None:
    with contextlib.suppress(ValidationFailed):
        parse_trusted_certificate(text, NOW)


@given(raw=st.binary())
def test_arbitrary_bytes_are_refused_cleanly(raw: bytes) -> None:
    with contextlib.suppress(ValidationFailed):
        parse_trusted_certificate(raw, NOW)


@given(raw=st.binary(), label=st.sampled_from(["CERTIFICATE", "PRIVATE KEY", "X509 CRL"]))
def test_arbitrary_der_in_a_pem_block_is_refused_cleanly(raw: bytes, label: str) -> None:
    with contextlib.suppress(ValidationFailed):
        parse_trusted_certificate(_wrapped(base64.b64encode(raw).decode(), label), NOW)


@settings(max_examples=300)
@given(data=st.data())
def test_a_corrupted_ca_certificate_is_refused_cleanly_or_still_parses(
    data: st.DataObject,
) -> None:
    with contextlib.suppress(ValidationFailed):
        facts = parse_trusted_certificate(_wrapped(_mutated(_CA_BODY, data)), NOW)
        assert facts.version == 3


@given(prefix=st.text(), suffix=st.text())
def test_text_around_a_ca_block_never_breaks_parsing(prefix: str, suffix: str) -> None:
    with contextlib.suppress(ValidationFailed):
        parse_trusted_certificate(prefix + "\n" + _CA_PEM + "\n" + suffix, NOW)
