"""A bounded schemathesis run over ``/openapi.json`` against the live API: any 5xx fails.

The app is served by uvicorn on a free port, in a thread with its own event loop, on a
real PostgreSQL (its own database) with every service wired as the composition root does
(the broker and the device link are recording fakes). Every operation gets
``EXAMPLES`` valid and ``EXAMPLES`` invalid requests, generated deterministically
(``derandomize``), authenticated as the tenant admin. The live operation stream is left
out: it never ends by design.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from fleetgate.api import server
from fleetgate.api.app import create_app
from fleetgate.api.auth import ApiContext
from fleetgate.db.users import PgUsers
from fleetgate.services.auth import Authenticator

from conftest import free_port, seed_tenants
from whole_api import ADMIN, TENANT, fast_hash, fresh_pool, wire

pytestmark = pytest.mark.integration

#: Requests per operation and generation mode: with ~150 operations some 3,500 requests,
#: 2-3 minutes (20 made it ~6,000 and 4-5 minutes once the API had grown to this size).
EXAMPLES = 12
#: Never-ending responses (Server-Sent Events).
# Event streams run until the client leaves (a trace's, while the trace runs).
SKIPPED = {
    ("GET", "/devicecontrol/operations/stream"),
    ("GET", "/devicecontrol/devices/{object_id}/trace/stream"),
}
TENANT_PARAMS = {"tenantid", "tenant_id"}
#: A password device of the tenant, for the routes of one device (its credentials, its
#: trace): explored past the 404 of a device that does not exist.
DEVICE: dict[str, str] = {}


async def _seed_device(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        object_id = await conn.fetchval(
            # An id the exploration of DELETE /inventory/managedObjects/{id} will not hit
            # (it tries small ones) before the device's own routes are explored.
            "INSERT INTO managed_object (id, tenant_id, name, fragments)"
            " OVERRIDING SYSTEM VALUE"
            " VALUES (7777777777777, $1, 'schema-device', '{\"c8y_IsDevice\": {}}')"
            " RETURNING id",
            TENANT,
        )
        await conn.execute(
            "INSERT INTO external_id (tenant_id, type, value, managed_object_id)"
            " VALUES ($1, 'c8y_Serial', 'schema-device', $2)",
            TENANT,
            object_id,
        )
        await conn.execute(
            "INSERT INTO app_user (tenant_id, username, password_hash, roles)"
            " VALUES ($1, 'device_schema-device', $2, '{ROLE_DEVICE}')",
            TENANT,
            fast_hash("schema-device-password"),
        )
    return str(object_id)


@pytest.fixture(scope="module")
def live_api(postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of the whole API, served until the module's tests are done."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    files = Path(tmp_path_factory.mktemp("files"))
    ready, stop = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    async def serve() -> None:
        async with fresh_pool(postgres_admin_url) as pool:
            await seed_tenants(pool, TENANT)
            DEVICE["object_id"] = await _seed_device(pool)
            app = create_app(ApiContext(Authenticator(PgUsers(pool)), base_url))
            wire(app, pool, files, base_url)
            started = asyncio.Event()
            task = asyncio.create_task(server.serve(app, server.bind("127.0.0.1", port), started))
            await started.wait()
            ready.set()
            await asyncio.to_thread(stop.wait)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="live-api", daemon=True)
    thread.start()
    assert ready.wait(60), "the API did not start"
    assert not failed, failed
    try:
        yield base_url
    finally:
        stop.set()
        thread.join(30)


# A bound on a hung run, not a measurement: on a loaded machine the run takes minutes.
@pytest.mark.timeout(900)
def test_no_request_the_schema_allows_or_forbids_gets_a_5xx(live_api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json")
    session = requests.Session()
    session.auth = ADMIN
    server_errors: list[str] = []
    sent: list[int] = []
    by_route: dict[str, list[int]] = {}

    def explore(strategy: st.SearchStrategy[schemathesis.Case], mode: GenerationMode) -> None:
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=live_api, session=session, timeout=30)
            sent.append(response.status_code)
            by_route.setdefault(f"{case.method} {case.path}", []).append(response.status_code)
            if response.status_code >= 500:
                server_errors.append(
                    f"{response.status_code} {case.method} {response.request.url}"
                    f" body={case.body!r:.300} -> {response.text[:300]}"
                )

        try:
            run()
        except Unsatisfiable:
            # Nothing in the schema can be made invalid (no parameters, no body).
            assert mode is GenerationMode.NEGATIVE

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        # The admin's own tenant, so that tenant-scoped routes are explored past the 403.
        own = {p.name: TENANT for p in operation.path_parameters if p.name.lower() in TENANT_PARAMS}
        if operation.path.startswith("/devicecontrol/devices/{object_id}"):
            own["object_id"] = DEVICE["object_id"]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            explore(operation.as_strategy(generation_mode=mode, path_parameters=own), mode)
    assert len(sent) > 1000
    assert sum(1 for status in sent if status < 300) > len(sent) // 10, (
        "too few got through: "
        + "; ".join(
            f"{route} {sum(1 for s in codes if s < 300)}/{len(codes)}"
            for route, codes in sorted(by_route.items())
        )
    )
    assert server_errors == [], "\n".join(server_errors)
