"""How a device reaches fleetgate's broker: the address, its login (certificate or
password), the TLS context both need, and the reconnect back-off."""

from __future__ import annotations

import random
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID
from paho.mqtt.reasoncodes import ReasonCode

from fleetgate.domain.errors import ConfigurationError

__all__ = [
    "BrokerAddress",
    "CertificateLogin",
    "PasswordLogin",
    "ReconnectPolicy",
    "refused",
    "tls_context",
]


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker listens, and the CA that signed its server certificate."""

    host: str
    port: int
    ca_file: Path


@dataclass(frozen=True)
class CertificateLogin:
    """An X.509 client certificate whose CN is the device id (certificate listener).

    ``cert_file`` may hold intermediate CA certificates after the device's own.
    """

    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class PasswordLogin:
    """Device credentials (password listener): MQTT user ``<tenant>/device_<id>``."""

    tenant: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ReconnectPolicy:
    """Wait a uniformly random time in ``[0, min(maximum, initial * 2**attempt)]``
    ("full jitter") before reconnect attempt ``attempt`` (0 after a lost session).

    The cap doubles with every failed attempt, so a fleet reconnecting at once spreads
    itself over whatever time the broker needs for the TLS handshakes (~2.5 ms of broker
    CPU each: 10,000 devices take ~25 s of one core).
    """

    initial: float = 1.0
    maximum: float = 120.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("a reconnect policy needs 0 < initial <= maximum")

    def delay(self, attempt: int, rng: random.Random) -> float:
        cap = min(self.maximum, self.initial * 2 ** min(attempt, 62))
        return rng.uniform(0, cap)


def refused(code: int | ReasonCode) -> bool:
    value = code if isinstance(code, int) else code.value
    return value >= 0x80


def tls_context(
    device_id: str, broker: BrokerAddress, login: CertificateLogin | PasswordLogin
) -> ssl.SSLContext:
    """Verifies the broker with ``broker.ca_file``; presents the certificate, if any."""
    try:
        context = ssl.create_default_context(cafile=str(broker.ca_file))
        if isinstance(login, CertificateLogin):
            _require_common_name(device_id, login.cert_file)
            context.load_cert_chain(str(login.cert_file), str(login.key_file))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigurationError(f"device {device_id}: cannot set up TLS: {exc}") from exc
    return context


def _require_common_name(device_id: str, cert_file: Path) -> None:
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else None
    if common_name != device_id:
        raise ValueError(f"the certificate's CN is {common_name!r}, not the device id")
