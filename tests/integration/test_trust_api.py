"""``/tenant/tenants/{tenantId}/trusted-certificates`` on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from fleetgate.api.services import services_of
from fleetgate.db.trust import PgTrustStore
from fleetgate.db.users import PgUsers
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import Role
from fleetgate.pki import Issued, generate_ca, issue_client_certificate
from fleetgate.services.trust import TrustedCertificates

from conftest import TEST_BASE_URL, api_client, seed_tenants

pytestmark = pytest.mark.integration

BASE = TEST_BASE_URL
ADMIN = ("t7/admin", "admin-pw")
OTHER_ADMIN = ("t8/admin", "other-pw")
COLLECTION = "/tenant/tenants/t7/trusted-certificates"


class RecordingBroker:
    """A :class:`fleetgate.services.ports.BrokerChanges` that notes each call and what
    the database held at that moment (so we can tell it came after the commit)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def trust_changed(self, tenant_id: str) -> None:
        rows = await self._pool.fetch(
            "SELECT fingerprint, name || '/' || status || '/' || auto_registration AS state"
            " FROM trusted_certificate WHERE tenant_id = $1",
            tenant_id,
        )
        self.calls.append((tenant_id, {r["fingerprint"]: r["state"] for r in rows}))


@pytest.fixture
def broker(pool: asyncpg.Pool) -> RecordingBroker:
    return RecordingBroker(pool)


@pytest.fixture
async def client(pool: asyncpg.Pool, broker: RecordingBroker) -> AsyncIterator[httpx.AsyncClient]:
    await seed_tenants(pool, "t7")
    await seed_tenants(pool, "t8", admin_password="other-pw")
    await PgUsers(pool).ensure_user(
        "t7", "reader", hash_password("reader-pw"), [Role.TENANT_MANAGEMENT_READ]
    )
    async with api_client(pool) as (app, c):
        services_of(app).trust = TrustedCertificates(PgTrustStore(pool), broker)
        yield c


def pem(issued: Issued) -> str:
    return issued.cert_pem().decode()


def fingerprint(issued: Issued) -> str:
    der = issued.certificate.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der, usedforsecurity=False).hexdigest()


def upload_body(issued: Issued, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "factory CA",
        "certInPemFormat": pem(issued),
        "status": "ENABLED",
        "autoRegistrationEnabled": True,
    }
    body.update(extra)
    return body


async def create(client: httpx.AsyncClient, issued: Issued, **extra: object) -> dict[str, Any]:
    response = await client.post(COLLECTION, json=upload_body(issued, **extra), auth=ADMIN)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_refused(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(
        "application/vnd.com.nsn.cumulocity.error+json"
    )
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "info"}
    for word in words:
        assert word in body["message"]
    return body


# --- create, read, update, delete ------------------------------------------------------


async def test_create_answers_201_with_every_read_only_field(
    client: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    ca = generate_ca("Factory Root")
    response = await client.post(COLLECTION, json=upload_body(ca), auth=ADMIN)
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    fp = fingerprint(ca)
    assert body == {
        "self": f"{BASE}{COLLECTION}/{fp}",
        "fingerprint": fp,
        "name": "factory CA",
        "status": "ENABLED",
        "autoRegistrationEnabled": True,
        "subject": "CN=Factory Root",
        "issuer": "CN=Factory Root",
        "serialNumber": str(ca.certificate.serial_number),
        "algorithmName": "SHA256withECDSA",
        "version": 3,
        "notBefore": ca.certificate.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "notAfter": ca.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "certInPemFormat": pem(ca),
    }
    assert broker.calls == [("t7", {fp: "factory CA/ENABLED/true"})]


async def test_get_by_fingerprint_and_unknown_fingerprint(client: httpx.AsyncClient) -> None:
    ca = generate_ca("Readable CA")
    created = await create(client, ca)
    response = await client.get(f"{COLLECTION}/{fingerprint(ca)}", auth=ADMIN)
    assert response.status_code == 200
    assert response.json() == created
    upper = await client.get(f"{COLLECTION}/{fingerprint(ca).upper()}", auth=ADMIN)
    assert upper.json() == created
    missing = await client.get(f"{COLLECTION}/{'ab' * 20}", auth=ADMIN)
    body = assert_refused(missing, 404, "ab" * 20)
    assert body["error"] == "general/notFound"


async def test_the_list_pages_as_cumulocity(client: httpx.AsyncClient) -> None:
    cas = [generate_ca(f"CA {i}") for i in range(3)]
    for ca in cas:
        await create(client, ca)
    first = await client.get(
        COLLECTION, params={"pageSize": 2, "withTotalPages": "true"}, auth=ADMIN
    )
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/json")
    body = first.json()
    assert [c["fingerprint"] for c in body["certificates"]] == [fingerprint(c) for c in cas[:2]]
    assert body["statistics"] == {
        "currentPage": 1,
        "pageSize": 2,
        "totalPages": 2,
        "totalElements": 3,
    }
    assert body["self"].startswith(f"{BASE}{COLLECTION}?")
    assert "currentPage=2" in body["next"]
    second = await client.get(body["next"].removeprefix(BASE), auth=ADMIN)
    page2 = second.json()
    assert [c["fingerprint"] for c in page2["certificates"]] == [fingerprint(cas[2])]
    assert "next" not in page2
    assert "currentPage=1" in page2["prev"]
    default = (await client.get(COLLECTION, auth=ADMIN)).json()
    assert default["statistics"] == {"currentPage": 1, "pageSize": 5}
    assert len(default["certificates"]) == 3
    bad = await client.get(COLLECTION, params={"pageSize": 0}, auth=ADMIN)
    assert_refused(bad, 422, "pageSize")


async def test_put_changes_name_status_and_auto_registration_only(
    client: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    ca = generate_ca("Editable CA")
    created = await create(client, ca)
    url = f"{COLLECTION}/{fingerprint(ca)}"
    response = await client.put(
        url,
        json={"name": "renamed", "status": "DISABLED", "autoRegistrationEnabled": False},
        auth=ADMIN,
    )
    assert response.status_code == 200
    updated = response.json()
    assert updated == {
        **created,
        "name": "renamed",
        "status": "DISABLED",
        "autoRegistrationEnabled": False,
    }
    assert (await client.get(url, auth=ADMIN)).json() == updated
    assert broker.calls[-1] == ("t7", {fingerprint(ca): "renamed/DISABLED/false"})
    assert len(broker.calls) == 2

    # The whole representation can be sent back (GET → edit → PUT).
    round_trip = await client.put(url, json={**updated, "name": "again"}, auth=ADMIN)
    assert round_trip.status_code == 200
    assert round_trip.json()["name"] == "again"
    assert len(broker.calls) == 3


async def test_put_refuses_changes_to_read_only_fields(
    client: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    ca = generate_ca("Fixed CA")
    await create(client, ca)
    url = f"{COLLECTION}/{fingerprint(ca)}"
    other = pem(generate_ca("Another CA"))
    for field, value in (("certInPemFormat", other), ("fingerprint", "00" * 20)):
        response = await client.put(url, json={field: value, "name": "x"}, auth=ADMIN)
        assert_refused(response, 422, field, "read-only")
    wrong_type = await client.put(url, json={"status": True}, auth=ADMIN)
    assert_refused(wrong_type, 422, "status")
    missing = await client.put(f"{COLLECTION}/{'cd' * 20}", json={"name": "x"}, auth=ADMIN)
    assert_refused(missing, 404)
    assert (await client.get(url, auth=ADMIN)).json()["name"] == "factory CA"
    assert len(broker.calls) == 1


async def test_delete_answers_204_and_then_404(
    client: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    ca = generate_ca("Doomed CA")
    await create(client, ca)
    url = f"{COLLECTION}/{fingerprint(ca)}"
    response = await client.delete(url, auth=ADMIN)
    assert response.status_code == 204
    assert response.content == b""
    assert broker.calls[-1] == ("t7", {})
    assert_refused(await client.get(url, auth=ADMIN), 404)
    assert_refused(await client.delete(url, auth=ADMIN), 404)
    assert len(broker.calls) == 2


# --- refused uploads -------------------------------------------------------------------


async def test_the_same_ca_twice_is_409_even_across_tenants(
    client: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    ca = generate_ca("Shared CA")
    await create(client, ca)
    again = await client.post(COLLECTION, json=upload_body(ca), auth=ADMIN)
    assert_refused(again, 409, "already uploaded")
    elsewhere = await client.post(
        "/tenant/tenants/t8/trusted-certificates", json=upload_body(ca), auth=OTHER_ADMIN
    )
    body = assert_refused(elsewhere, 409, "already uploaded")
    assert "t7" not in body["message"]
    assert len(broker.calls) == 1


async def test_two_cas_of_one_subject_are_refused_even_across_tenants(
    client: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    """The broker's TLS finds a CA by its subject and never loads a second of the same
    name (tests/integration/test_broker_certificates.py shows it): the second is a 409
    naming the subject, whatever the tenant, the case or the spacing."""
    await create(client, generate_ca("My device CA"))
    for name, tenant, auth in (
        ("My device CA", "t7", ADMIN),
        ("my  DEVICE ca", "t7", ADMIN),
        ("My device CA", "t8", OTHER_ADMIN),
    ):
        twin = await client.post(
            f"/tenant/tenants/{tenant}/trusted-certificates",
            json=upload_body(generate_ca(name)),
            auth=auth,
        )
        body = assert_refused(twin, 409, "a subject of its own")
        assert "CN=" in body["message"]
    assert len(broker.calls) == 1
    await create(client, generate_ca("My other device CA"))


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda root: pem(issue_client_certificate(root, "device-1")), ("leaf",)),
        (
            lambda _: pem(
                generate_ca(
                    "Expired",
                    not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=20),
                    valid_days=10,
                )
            ),
            ("expired",),
        ),
        (
            lambda _: pem(
                generate_ca("Future", not_before=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
            ),
            ("not valid yet",),
        ),
        (lambda root: pem(root) + pem(generate_ca("Second")), ("2 certificates",)),
        (lambda _: "this is no certificate", ("not a PEM certificate",)),
        (lambda _: "", ("not a PEM certificate",)),
    ],
    ids=["leaf", "expired", "not-yet-valid", "several", "garbage", "empty"],
)
async def test_unacceptable_certificates_are_422_with_a_reason(
    client: httpx.AsyncClient,
    broker: RecordingBroker,
    make: Any,
    words: tuple[str, ...],
) -> None:
    root = generate_ca("Some Root")
    response = await client.post(
        COLLECTION, json=upload_body(root, certInPemFormat=make(root)), auth=ADMIN
    )
    body = assert_refused(response, 422, *words)
    assert body["error"] == "general/validationError"
    assert broker.calls == []
    assert (await client.get(COLLECTION, auth=ADMIN)).json()["certificates"] == []


async def test_a_private_key_is_refused_and_not_echoed(
    client: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    root = generate_ca("Careless Root")
    key = root.key_pem().decode()
    response = await client.post(
        COLLECTION, json=upload_body(root, certInPemFormat=pem(root) + key), auth=ADMIN
    )
    assert_refused(response, 422, "private key was sent")
    for line in key.splitlines()[1:-1]:
        assert line not in response.text
    assert broker.calls == []


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"{not json", 400, ("not valid JSON",)),
        (b"", 400, ("empty",)),
        (b"[1, 2]", 422, ("JSON object",)),
        (b'{"status": "ENABLED"}', 422, ("certInPemFormat: required",)),
        (b'{"certInPemFormat": 5, "status": "ENABLED"}', 422, ("certInPemFormat",)),
        (b'{"certInPemFormat": "x", "status": "MAYBE"}', 422, ("status",)),
        (b"\xff\xfe\x00", 400, ("not valid JSON",)),
        (b"[" * 100_000 + b"]" * 100_000, 400, ("nested too deeply",)),
    ],
    ids=["invalid", "empty", "array", "missing", "wrong-type", "bad-status", "binary", "deep"],
)
async def test_bad_bodies_are_4xx_with_a_clear_message(
    client: httpx.AsyncClient,
    broker: RecordingBroker,
    content: bytes,
    status: int,
    words: tuple[str, ...],
) -> None:
    response = await client.post(
        COLLECTION,
        content=content,
        headers={"content-type": "application/json"},
        auth=ADMIN,
    )
    assert_refused(response, status, *words)
    assert broker.calls == []


async def test_a_10_mb_body_is_413_not_500(client: httpx.AsyncClient) -> None:
    huge = json.dumps({"certInPemFormat": "A" * (10 * 1024 * 1024), "status": "ENABLED"}).encode()
    response = await client.post(
        COLLECTION, content=huge, headers={"content-type": "application/json"}, auth=ADMIN
    )
    assert_refused(response, 413, "larger than")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(huge), 1 << 20):
            yield huge[start : start + (1 << 20)]

    streamed = await client.post(
        COLLECTION, content=chunks(), headers={"content-type": "application/json"}, auth=ADMIN
    )
    assert_refused(streamed, 413, "larger than")


async def test_a_large_but_allowed_body_with_a_big_pem_is_422(client: httpx.AsyncClient) -> None:
    body = {"certInPemFormat": "A" * (65 * 1024), "status": "ENABLED"}
    response = await client.post(COLLECTION, json=body, auth=ADMIN)
    assert_refused(response, 422, "64 KiB")


# --- who may do what -------------------------------------------------------------------


async def test_another_tenants_path_is_403_whether_or_not_it_exists(
    client: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    ca = generate_ca("Private CA")
    await create(client, ca)
    fp = fingerprint(ca)
    for tenant in ("t8", "management", "nosuchtenant"):
        base = f"/tenant/tenants/{tenant}/trusted-certificates"
        for method, url, payload in (
            ("GET", base, None),
            ("POST", base, upload_body(generate_ca("Sneaky"))),
            ("GET", f"{base}/{fp}", None),
            ("PUT", f"{base}/{fp}", {"name": "hijacked"}),
            ("DELETE", f"{base}/{fp}", None),
        ):
            response = await client.request(method, url, json=payload, auth=ADMIN)
            body = assert_refused(response, 403)
            assert body["error"] == "security/Forbidden"
    assert len(broker.calls) == 1


async def test_a_second_tenants_admin_never_sees_the_first_tenants_certificates(
    client: httpx.AsyncClient,
) -> None:
    ca = generate_ca("T7 only")
    await create(client, ca)
    fp = fingerprint(ca)
    own = await client.get("/tenant/tenants/t8/trusted-certificates", auth=OTHER_ADMIN)
    assert own.status_code == 200
    assert own.json()["certificates"] == []
    assert_refused(await client.get(f"{COLLECTION}/{fp}", auth=OTHER_ADMIN), 403)
    assert_refused(await client.get(COLLECTION, auth=OTHER_ADMIN), 403)
    # Through its own tenant's path the fingerprint is simply unknown.
    assert_refused(
        await client.get(f"/tenant/tenants/t8/trusted-certificates/{fp}", auth=OTHER_ADMIN), 404
    )
    assert_refused(
        await client.delete(f"/tenant/tenants/t8/trusted-certificates/{fp}", auth=OTHER_ADMIN),
        404,
    )


@pytest.mark.parametrize(
    "auth", [("t7/devicebootstrap", "boot-pw"), ("t7/reader", "reader-pw")], ids=str
)
async def test_users_without_a_tenant_admin_role_get_403(
    client: httpx.AsyncClient, broker: RecordingBroker, auth: tuple[str, str]
) -> None:
    ca = generate_ca("Guarded CA")
    for method, url, payload in (
        ("GET", COLLECTION, None),
        ("POST", COLLECTION, upload_body(ca)),
        ("GET", f"{COLLECTION}/{fingerprint(ca)}", None),
        ("PUT", f"{COLLECTION}/{fingerprint(ca)}", {"name": "x"}),
        ("DELETE", f"{COLLECTION}/{fingerprint(ca)}", None),
    ):
        response = await client.request(method, url, json=payload, auth=auth)
        assert_refused(response, 403)
    assert_refused(await client.get(COLLECTION), 401)
    assert broker.calls == []


async def test_the_management_admin_manages_its_own_tenant(client: httpx.AsyncClient) -> None:
    ca = generate_ca("Management CA")
    response = await client.post(
        "/tenant/tenants/management/trusted-certificates",
        json=upload_body(ca),
        auth=("management/admin", "mgmt-pw"),
    )
    assert response.status_code == 201
