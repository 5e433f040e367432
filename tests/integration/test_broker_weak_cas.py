"""What the broker's OpenSSL refuses in a CA, shown against the real mosquitto: the
reason fleetgate refuses such a CA at upload (domain/trust.py, decision 0004).

Each CA is put into capath and pushed to the plugin (enabled, auto-registering) exactly
as an uploaded one would be; a device certificate it signed (EC P-256, SHA-256) then
tries to connect. The strong twin of each weak CA connects, so the weakness is the cause.
"""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetgate.domain import broker_control as control
from fleetgate.pki import Issued
from fleetgate.pki.capath import fingerprint, sync_capath

from broker_support import (
    REPLY_TIMEOUT,
    RunningBroker,
    broker,
    can_connect,
    device_client,
    push,
    service,
)
from corpora.certificates import (
    Made,
    dsa_key,
    ec_key,
    make_ca,
    make_ca_signed_with,
    make_device,
    make_intermediate_signed_with,
    rsa_key,
)

__all__ = ["broker", "service"]  # fixtures

pytestmark = pytest.mark.integration

TENANT = "t1"


async def connects(
    broker: RunningBroker,
    service: aiomqtt.Client,
    ca: Made,
    name: str,
    *,
    also: Made | None = None,
) -> bool:
    """Trust ``ca`` (and ``also``, its root, in capath) as an upload would (capath and
    plugin), then try a device that ``ca`` signed."""
    fp = fingerprint(ca.certificate)
    capath = {fp: ca.pem().encode()}
    if also is not None:
        capath[fingerprint(also.certificate)] = also.pem().encode()
    await asyncio.to_thread(sync_capath, broker.config.trusted_dir(), capath)
    der = ca.certificate.public_bytes(serialization.Encoding.DER)
    await push(service, control.ca(fp, TENANT, True, True, der))
    leaf = make_device(ca, name)
    client = device_client(
        broker,
        port=broker.config.cert_port,
        identifier=name,
        certificate=Issued(leaf.certificate, leaf.key),  # type: ignore[arg-type]
        timeout=REPLY_TIMEOUT,
    )
    return await can_connect(client)


WEAK_AND_STRONG_KEYS = {
    "rsa": (lambda: rsa_key(1024), lambda: rsa_key(2048)),
    "dsa": (lambda: dsa_key(1024), lambda: dsa_key(2048)),
    "ec": (lambda: ec_key(ec.SECP192R1()), lambda: ec_key(ec.SECP224R1())),
}


@pytest.mark.parametrize("kind", sorted(WEAK_AND_STRONG_KEYS))
async def test_a_ca_key_under_security_level_2_connects_no_device(
    broker: RunningBroker, service: aiomqtt.Client, kind: str
) -> None:
    weak, strong = WEAK_AND_STRONG_KEYS[kind]
    assert not await connects(broker, service, make_ca(f"weak {kind}", key=weak()), "weak-key")
    assert await connects(broker, service, make_ca(f"strong {kind}", key=strong()), "strong-key")


@pytest.mark.parametrize("digest", ["sha1", "md5"])
async def test_an_intermediate_signed_with_sha1_or_md5_connects_no_device(
    broker: RunningBroker, service: aiomqtt.Client, digest: str
) -> None:
    root = make_ca(f"root over {digest}", key=rsa_key(2048))
    weak = make_intermediate_signed_with(f"{digest} intermediate", digest, root)
    assert not await connects(broker, service, weak, f"{digest}-device", also=root)
    strong = make_intermediate_signed_with(f"sha256 beside {digest}", "sha256", root)
    assert await connects(broker, service, strong, f"sha256-{digest}-device", also=root)


@pytest.mark.parametrize("digest", ["sha1", "md5"])
async def test_openssl_does_not_check_a_self_signed_root_s_own_signature(
    broker: RunningBroker, service: aiomqtt.Client, digest: str
) -> None:
    """Measured, and why the upload rule is stricter than the broker here (decision
    0004): a trust anchor's own signature is not checked, so a SHA-1 root works today;
    fleetgate refuses it anyway."""
    root = make_ca_signed_with(f"{digest} root", digest)
    assert await connects(broker, service, root, f"{digest}-root-device")
