"""Certificate devices end to end: real mosquitto with the plugin, real TLS client certificates.

Each test makes its own CA (so tests do not share trust), puts it into the listener's
capath with sync_capath (mosquitto trusts it at the handshake from then on) and pushes
``ca ...`` lines; whether the plugin then lets the device in is the subject of the tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest
from cryptography.hazmat.primitives import serialization

from fleetgate.domain import broker_control as control
from fleetgate.domain.devices import is_device_id
from fleetgate.pki import Issued, generate_ca, issue_client_certificate
from fleetgate.pki.capath import fingerprint, subject_hash, sync_capath

from broker_support import (
    NOT_A_DEVICE_ID,
    REPLY_TIMEOUT,
    Events,
    RunningBroker,
    can_connect,
    connected,
    device_client,
    dropped,
    events,
    push,
    refused,
    running_broker,
    send_control,
    service,
    wait_for_log,
)

__all__ = ["events", "service"]  # fixtures

pytestmark = pytest.mark.integration

TENANT = "t1"
Event = control.Connected | control.Disconnected


@dataclass
class Trust:
    """The broker and every CA put into its capath so far (capath only ever grows here)."""

    broker: RunningBroker
    capath: dict[str, bytes] = field(default_factory=dict)


@pytest.fixture(scope="module")
async def trust() -> AsyncIterator[Trust]:
    async with running_broker() as running:
        yield Trust(running)


@pytest.fixture
def broker(trust: Trust) -> RunningBroker:
    return trust.broker


def der(ca: Issued) -> bytes:
    return ca.certificate.public_bytes(serialization.Encoding.DER)


async def put_in_capath(trust: Trust, ca: Issued) -> str:
    fp = fingerprint(ca.certificate)
    trust.capath[fp] = ca.cert_pem()
    await asyncio.to_thread(sync_capath, trust.broker.config.trusted_dir(), trust.capath)
    return fp


async def trust_ca(
    trust: Trust,
    service: aiomqtt.Client,
    ca: Issued,
    *,
    tenant: str = TENANT,
    enabled: bool = True,
    autoreg: bool = False,
) -> str:
    """Put ``ca`` into capath and push it; its fingerprint."""
    fp = await put_in_capath(trust, ca)
    await push(service, control.ca(fp, tenant, enabled, autoreg, der(ca)))
    return fp


def cert_client(
    broker: RunningBroker,
    certificate: Issued,
    client_id: str,
    *,
    chain: Sequence[Issued] = (),
) -> aiomqtt.Client:
    return device_client(
        broker,
        port=broker.config.cert_port,
        identifier=client_id,
        certificate=certificate,
        chain=chain,
        timeout=REPLY_TIMEOUT,
    )


def device(ca: Issued, client_id: str) -> Issued:
    return issue_client_certificate(ca, client_id)


# ---------------------------------------------------------------------------------------


async def test_known_enabled_device_connects(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    ca = generate_ca("known CA")
    fp = await trust_ca(trust, service, ca)
    await push(service, control.device("known-1", TENANT, True))
    assert await can_connect(cert_client(broker, device(ca, "known-1"), "known-1"))
    event = await events.connected("known-1")
    assert (event.tenant, event.ca_fingerprint, event.new) == (TENANT, fp, False)


async def test_unknown_device_is_auto_registered_when_its_ca_allows_it(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    ca = generate_ca("autoreg CA")
    fp = await trust_ca(trust, service, ca, autoreg=True)
    assert await can_connect(cert_client(broker, device(ca, "fresh-1"), "fresh-1"))
    event = await events.connected("fresh-1")
    assert (event.tenant, event.ca_fingerprint, event.new) == (TENANT, fp, True)


async def test_unknown_device_is_refused_without_auto_registration(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    ca = generate_ca("no-autoreg CA")
    fp = await trust_ca(trust, service, ca, autoreg=False)
    assert not await can_connect(cert_client(broker, device(ca, "stranger"), "stranger"))
    assert await wait_for_log(broker, f"unknown device and CA {fp} does not auto-register")


async def test_ca_in_capath_but_not_pushed_is_refused(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    ca = generate_ca("capath-only CA")
    await put_in_capath(trust, ca)
    assert not await can_connect(cert_client(broker, device(ca, "orphan"), "orphan"))
    assert await wait_for_log(
        broker, "refused client 'orphan' username '': issuer not in the trust store"
    )


async def test_device_of_another_tenant_than_its_ca_is_refused(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    ca = generate_ca("tenant CA")
    await trust_ca(trust, service, ca, autoreg=True)
    await push(service, control.device("elsewhere", "t2", True))
    assert not await can_connect(cert_client(broker, device(ca, "elsewhere"), "elsewhere"))


async def test_disabling_the_ca_drops_the_session_and_refuses_reconnects(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    ca = generate_ca("to be disabled")
    fp = await trust_ca(trust, service, ca, autoreg=True)
    certificate = device(ca, "victim-ca")
    async with connected(cert_client(broker, certificate, "victim-ca")) as client:
        opened = await events.connected("victim-ca")
        await push(service, control.ca(fp, TENANT, False, True, der(ca)))
        assert await dropped(client)
    closed = await events.disconnected("victim-ca")
    assert closed.connection_id == opened.connection_id
    assert not await can_connect(cert_client(broker, certificate, "victim-ca"))
    assert await wait_for_log(broker, f"CA {fp} is disabled")


async def test_disabling_the_device_drops_the_session(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    ca = generate_ca("device-disable CA")
    await trust_ca(trust, service, ca)
    await push(service, control.device("victim-dev", TENANT, True))
    certificate = device(ca, "victim-dev")
    async with connected(cert_client(broker, certificate, "victim-dev")) as client:
        await push(service, control.device("victim-dev", TENANT, False))
        assert await dropped(client)
    assert not await can_connect(cert_client(broker, certificate, "victim-dev"))


async def test_device_remove_drops_the_session_and_it_comes_back_as_unknown(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    ca = generate_ca("device-remove CA")
    await trust_ca(trust, service, ca, autoreg=True)
    await push(service, control.device("removed", TENANT, True))
    certificate = device(ca, "removed")
    async with connected(cert_client(broker, certificate, "removed")) as client:
        assert not (await events.connected("removed")).new
        await push(service, control.device_remove("removed"))
        assert await dropped(client)
    async with cert_client(broker, certificate, "removed"):
        assert (await events.connected("removed")).new


async def test_ca_remove_then_add_again(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    ca = generate_ca("removed CA")
    fp = await trust_ca(trust, service, ca, autoreg=True)
    certificate = device(ca, "comeback")
    async with connected(cert_client(broker, certificate, "comeback")) as client:
        await push(service, control.ca_remove(fp))
        assert await dropped(client)
    assert not await can_connect(cert_client(broker, certificate, "comeback"))
    await push(service, control.ca(fp, TENANT, True, True, der(ca)))
    assert await can_connect(cert_client(broker, certificate, "comeback"))


@pytest.mark.parametrize(
    ("offset_days", "valid_days"), [(-30, 1), (30, 365)], ids=["expired", "not-yet-valid"]
)
async def test_certificate_outside_its_validity_never_gets_in(
    trust: Trust,
    broker: RunningBroker,
    service: aiomqtt.Client,
    events: Events,
    offset_days: int,
    valid_days: int,
) -> None:
    # A subject of its own: OpenSSL's capath lookup did not find a second CA with the
    # same subject hash as one it had already loaded (docs/decisions/0002).
    ca = generate_ca(
        f"validity CA {offset_days}", not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
    )
    await trust_ca(trust, service, ca, autoreg=True)
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=offset_days)
    certificate = issue_client_certificate(ca, "timely", not_before=start, valid_days=valid_days)
    # OpenSSL refuses it at the handshake already (a TLS failure); either way, never in.
    assert not await can_connect(cert_client(broker, certificate, "timely"))
    # A device whose certificate is fine gets in afterwards, and its event is the first.
    assert await can_connect(cert_client(broker, device(ca, "timely-ok"), "timely-ok"))
    await events.connected("timely-ok")
    assert not any(e.client_id == "timely" for e in events.seen)


async def test_certificate_cn_must_equal_the_client_id(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    ca = generate_ca("CN CA")
    await trust_ca(trust, service, ca, autoreg=True)
    assert not await can_connect(cert_client(broker, device(ca, "real-name"), "other-name"))
    assert await wait_for_log(broker, "refused client 'other-name'")


#: Certificate CNs (= client ids) around the edges of the device id rule.
CN_CORPUS = [
    "$SYS",
    " sp",
    "sp ",
    "a b",
    "a:b",
    "a$b",
    "tab\there",
    "caf\u00e9",
    "\u2603",
    "zero\u200bwidth",
    "d" * 64,  # the longest CN X.509 allows; longer ids: bootstrap and password devices
    "ok-1_~!*'()%=&?.,;@[]{}|\\^`\"<>",
    "~",
]


@pytest.mark.parametrize("cn", CN_CORPUS)
async def test_the_plugin_admits_exactly_the_services_device_ids(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client, events: Events, cn: str
) -> None:
    """A CN the service could not register is refused at CONNECT, with the reason logged;
    every one it can register gets in (an auto-registering CA: nothing else in the way)."""
    ca = generate_ca(f"device id rule CA {CN_CORPUS.index(cn)}")
    await trust_ca(trust, service, ca, autoreg=True)
    admitted = await can_connect(cert_client(broker, device(ca, cn), cn))
    assert admitted == is_device_id(cn)
    if admitted:
        assert (await events.connected(cn)).new
    else:
        assert await wait_for_log(broker, NOT_A_DEVICE_ID)


async def test_the_brokers_tls_never_loads_a_second_ca_of_one_subject(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    """Why two trusted CAs may not share a subject (the trust store refuses the second):
    once OpenSSL has loaded a CA of a name, it looks no further for that name until the
    broker restarts, so the second CA's devices fail TLS (unknown CA)."""
    first, second = generate_ca("One subject"), generate_ca("One subject")
    await trust_ca(trust, service, first, autoreg=True)
    assert await can_connect(cert_client(broker, device(first, "subject-a"), "subject-a"))
    await trust_ca(trust, service, second, tenant="t2", autoreg=True)
    assert not await can_connect(cert_client(broker, device(second, "subject-b"), "subject-b"))


async def test_another_device_cannot_take_over_a_client_id(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    ca = generate_ca("takeover CA")
    await trust_ca(trust, service, ca, autoreg=True)
    async with cert_client(broker, device(ca, "owner"), "owner") as owner:
        thief = cert_client(broker, device(ca, "thief"), "owner")
        assert not await can_connect(thief)
        # The owner is still connected: a round trip in its own namespace works.
        await owner.subscribe("fg/d/owner/ping", qos=1)
        await owner.publish("fg/d/owner/ping", b"still here", qos=1)
        message = await asyncio.wait_for(anext(owner.messages), REPLY_TIMEOUT)
        assert message.payload == b"still here"


async def test_devices_cannot_see_or_reach_each_other(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    ca = generate_ca("namespace CA")
    await trust_ca(trust, service, ca, autoreg=True)
    async with (
        cert_client(broker, device(ca, "dev-a"), "dev-a") as a,
        cert_client(broker, device(ca, "dev-b"), "dev-b") as b,
    ):
        for topic_filter in ("#", "fg/d/dev-b/#", "fg/d/+/x", "fg/#", "fg/d/dev-a", "$fleetgate/#"):
            granted = await a.subscribe(topic_filter, qos=1)
            assert all(refused(code) for code in granted), topic_filter
        granted = await a.subscribe(control.EVENTS_TOPIC, qos=1)
        assert all(refused(code) for code in granted)
        granted = await a.subscribe("fg/d/dev-a/#", qos=1)
        assert not any(refused(code) for code in granted)

        await b.publish("fg/d/dev-b/x", b"b-own", qos=1)
        await b.publish("fg/d/dev-a/x", b"b-into-a", qos=1)
        await a.publish("fg/d/dev-a/marker", b"marker", qos=1)
        first = await asyncio.wait_for(anext(a.messages), REPLY_TIMEOUT)
        assert (str(first.topic), first.payload) == ("fg/d/dev-a/marker", b"marker")


async def test_events_are_for_the_service_only(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    granted = await service.subscribe(control.EVENTS_TOPIC, qos=1)
    assert not any(refused(code) for code in granted)
    await service.unsubscribe(control.EVENTS_TOPIC)
    await push(
        service,
        control.account(
            "bootstrap", "t1/bootstrap", "scrypt:10:8:1:" + "00" * 16 + ":" + "00" * 16
        ),
    )
    ca = generate_ca("events CA")
    await trust_ca(trust, service, ca, autoreg=True)
    async with cert_client(broker, device(ca, "nosy"), "nosy") as nosy:
        for topic_filter in (control.EVENTS_TOPIC, f"$share/x/{control.EVENTS_TOPIC}"):
            granted = await nosy.subscribe(topic_filter, qos=1)
            assert all(refused(code) for code in granted), topic_filter


async def test_chain_with_the_intermediate_pushed_is_accepted(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    root = generate_ca("chain root")
    intermediate = generate_ca("chain intermediate", issuer=root, path_length=0)
    await put_in_capath(trust, root)
    fp = await trust_ca(trust, service, intermediate, autoreg=True)
    certificate = device(intermediate, "chained")
    assert await can_connect(cert_client(broker, certificate, "chained", chain=[intermediate]))
    assert (await events.connected("chained")).ca_fingerprint == fp


async def test_chain_with_only_the_root_pushed_is_refused(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    root = generate_ca("root only")
    intermediate = generate_ca("unpushed intermediate", issuer=root, path_length=0)
    await trust_ca(trust, service, root, autoreg=True)
    certificate = device(intermediate, "root-only")
    client = cert_client(broker, certificate, "root-only", chain=[intermediate])
    assert not await can_connect(client)
    assert await wait_for_log(
        broker, "refused client 'root-only' username '': issuer not in the trust store"
    )


async def test_reconnect_by_itself_reports_only_the_newest_disconnect(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    ca = generate_ca("reconnect CA")
    await trust_ca(trust, service, ca, autoreg=True)
    certificate = device(ca, "twice")
    async with connected(cert_client(broker, certificate, "twice")) as old:
        first = await events.connected("twice")
        async with cert_client(broker, certificate, "twice"):
            second = await events.connected("twice")
            assert second.connection_id != first.connection_id
            assert await dropped(old)  # mosquitto's session takeover
    # The first disconnected event of "twice" is the newer connection's: the old one,
    # taken over, was silent.
    closed = await events.disconnected("twice")
    assert closed == control.Disconnected("twice", TENANT, second.connection_id)


async def test_clients_lists_live_certificate_sessions(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    ca = generate_ca("clients CA")
    fp = await trust_ca(trust, service, ca, autoreg=True)
    async with (
        cert_client(broker, device(ca, "live-1"), "live-1"),
        cert_client(broker, device(ca, "live-2"), "live-2"),
    ):
        expected = {
            control.LiveClient(c, TENANT, fp, (await events.connected(c)).connection_id)
            for c in ("live-1", "live-2")
        }
        response = await push(service, control.clients("c1"))
        assert {c for c in response.clients if c.ca_fingerprint == fp} == expected
    await events.disconnected("live-2")
    await events.disconnected("live-1")
    response = await push(service, control.clients("c2"))
    assert not [c for c in response.clients if c.ca_fingerprint == fp]


async def test_full_resync_kicks_sessions_whose_ca_is_no_longer_pushed(
    trust: Trust, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    kept, dropped_ca = generate_ca("kept CA"), generate_ca("dropped CA")
    kept_fp = await trust_ca(trust, service, kept, autoreg=True)
    await trust_ca(trust, service, dropped_ca, autoreg=True)
    async with (
        connected(cert_client(broker, device(kept, "stays"), "stays")) as stays,
        connected(cert_client(broker, device(dropped_ca, "goes"), "goes")) as goes,
    ):
        # reset clears the CAs but not the sessions; the sync at the end re-validates.
        await push(service, control.reset(), control.ca(kept_fp, TENANT, True, True, der(kept)))
        assert await dropped(goes)
        response = await push(service, control.clients("after"))
        assert "stays" in {c.client_id for c in response.clients}
        assert "goes" not in {c.client_id for c in response.clients}
        await stays.publish("fg/d/stays/x", b"ok", qos=1)


async def test_bad_ca_lines_are_reported(service: aiomqtt.Client) -> None:
    ca = generate_ca("bad lines CA")
    fp = fingerprint(ca.certificate)
    response = await send_control(
        service,
        [
            control.ca(fp, TENANT, True, False, b"not a certificate"),
            control.ca("00" * 20, TENANT, True, False, der(ca)),
            control.ca(fp, "a/b", True, False, der(ca)),
            f"device x%2Fy {TENANT} 1",
            f"ca {fp} {TENANT} 2 0 {der(ca).hex()}",
        ],
    )
    assert dict(response.errors) == {
        1: "invalid certificate DER",
        2: "fingerprint is not the lowercase hex SHA-1 of the DER",
        3: "tenant is not a single topic level",
        4: NOT_A_DEVICE_ID,
        5: "enabled and autoreg must be 0 or 1",
    }


def test_sync_capath_makes_the_directory_hold_exactly_the_given_cas(tmp_path: Path) -> None:
    directory = tmp_path / "trusted"
    one, two = generate_ca("capath one"), generate_ca("capath two")
    fp_one, fp_two = fingerprint(one.certificate), fingerprint(two.certificate)
    (directory / "stale").mkdir(parents=True)
    (directory / "stale.pem").write_bytes(b"old")
    sync_capath(directory, {fp_one: one.cert_pem(), fp_two: two.cert_pem()})
    names = {p.name for p in directory.iterdir()}
    hashes = {subject_hash(one.cert_pem()), subject_hash(two.cert_pem())}
    assert names == {f"{fp_one}.pem", f"{fp_two}.pem", "stale"} | {f"{h}.0" for h in hashes}
    link = directory / f"{subject_hash(one.cert_pem())}.0"
    assert link.is_symlink()
    assert link.read_bytes() == one.cert_pem()
    assert (directory / f"{fp_one}.pem").stat().st_mode & 0o777 == 0o644
    before = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    sync_capath(directory, {fp_one: one.cert_pem(), fp_two: two.cert_pem()})  # idempotent
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == before
    sync_capath(directory, {fp_two: two.cert_pem()})
    assert {p.name for p in directory.iterdir()} == {
        f"{fp_two}.pem",
        f"{subject_hash(two.cert_pem())}.0",
        "stale",
    }
    with pytest.raises(ValueError, match="fingerprint"):
        sync_capath(directory, {fp_one: two.cert_pem()})
