"""Every paged collection of the API, found by walking the app's routes (those that
take the paging parameters), answers ``withTotalElements=true`` with
``statistics.totalElements`` and ``withTotalPages=true`` with ``totalPages`` too — as
Cumulocity's clients read them (@c8y/client's ``paging.totalElements``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from fleetgate.api.app import api_routes
from fleetgate.api.paging import paging

from whole_api import ADMIN, TENANT, WholeApi, whole_api

pytestmark = pytest.mark.integration

#: Tenants are the management tenant's to list.
MANAGEMENT = ("management/admin", "mgmt-pw")


def _calls(dependant: Dependant) -> Iterator[object]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def paged_routes() -> list[APIRoute]:
    return [
        r for r in api_routes() if "GET" in (r.methods or ()) and paging in set(_calls(r.dependant))
    ]


@pytest.fixture
async def api(pool: asyncpg.Pool, scratch_dir: Path) -> AsyncIterator[WholeApi]:
    async with whole_api(pool, scratch_dir / "files") as whole:
        yield whole


async def made(api: WholeApi, path: str, body: dict[str, Any]) -> str:
    response = await api.client.post(path, json=body, auth=ADMIN)
    assert response.status_code in (200, 201), response.text
    return str(response.json().get("id", ""))


async def test_every_paged_collection_counts_its_elements(api: WholeApi) -> None:
    routes = paged_routes()
    assert len(routes) >= 12, [r.path for r in routes]
    objects = "/inventory/managedObjects"
    group = await made(
        api, objects, {"name": "g", "type": "c8y_DeviceGroup", "c8y_IsDeviceGroup": {}}
    )
    device = await made(api, objects, {"name": "d", "c8y_IsDevice": {}})
    added = await api.client.post(
        f"{objects}/{group}/childAssets", json={"managedObject": {"id": device}}, auth=ADMIN
    )
    assert added.status_code == 201, added.text
    bulk = await made(
        api,
        "/devicecontrol/bulkoperations",
        {
            "groupId": group,
            "startDate": "2020-01-01T00:00:00Z",
            "creationRamp": 0,
            "operationPrototype": {"c8y_Restart": {}},
        },
    )
    await made(api, "/tenant/options", {"category": "totals", "key": "k", "value": "v"})
    values = {"object_id": group, "bulk_id": bulk, "tenant_id": TENANT, "tenantId": TENANT}
    for route in routes:
        path = re.sub(r"{(\w+)(:path)?}", lambda m: values[m.group(1)], route.path_format)
        auth = MANAGEMENT if path == "/tenant/tenants" else ADMIN
        counted = await api.client.get(
            path, params={"withTotalElements": "true", "pageSize": 1}, auth=auth
        )
        assert counted.status_code == 200, f"{path}: {counted.text}"
        statistics = counted.json()["statistics"]
        assert isinstance(statistics.get("totalElements"), int), f"{path}: {statistics}"
        assert "totalPages" not in statistics, path
        paged = await api.client.get(
            path, params={"withTotalPages": "true", "pageSize": 1}, auth=auth
        )
        both = paged.json()["statistics"]
        assert both["totalElements"] == statistics["totalElements"], path
        assert both["totalPages"] == max(1, statistics["totalElements"]), path
        plain = (await api.client.get(path, params={"pageSize": 1}, auth=auth)).json()
        assert "totalElements" not in plain["statistics"], path
    # Counts that are known here: the group holds one device; one bulk target.
    assets = await api.client.get(
        f"{objects}/{group}/childAssets", params={"withTotalElements": "true"}, auth=ADMIN
    )
    assert assets.json()["statistics"]["totalElements"] == 1
    count = await api.client.get(f"{objects}/count", params={"type": "c8y_DeviceGroup"}, auth=ADMIN)
    assert (count.status_code, count.text) == (200, "1")
    assert count.headers["content-type"].startswith("text/plain")
