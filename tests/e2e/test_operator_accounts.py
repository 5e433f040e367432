"""Operators on the whole stack (``fleetgate up``, real scrypt): an admin makes a watcher
who reads operations and cannot change them; failed logins lock it; the admin unlocks it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from stack_support import Up, ports, processes_under

pytestmark = pytest.mark.e2e

PASSWORD = "a watcher's password"


@pytest.fixture
def home(scratch_dir: Path) -> Iterator[Path]:
    yield scratch_dir / "home"
    assert processes_under(scratch_dir) == []


@pytest.fixture
async def admin(home: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    up = Up(home, home.parent / "certs", ports())
    try:
        description = await asyncio.to_thread(up.wait_ready)
        who = description["admin"]
        async with httpx.AsyncClient(
            base_url=description["api_url"],
            auth=(f"{who['tenant']}/{who['username']}", who["password"]),
            timeout=30,
        ) as client:
            yield client, who["tenant"]
    finally:
        assert await asyncio.to_thread(up.terminate) == 0, up.output


async def test_a_watcher_watches_is_locked_after_failures_and_unlocked_by_the_admin(
    admin: tuple[httpx.AsyncClient, str],
) -> None:
    api, tenant = admin
    users = f"/user/{tenant}/users"
    made = await api.post(users, json={"userName": "watcher", "password": PASSWORD})
    assert made.status_code == 201, made.text
    role = {"role": {"self": f"{api.base_url}/user/roles/ROLE_DEVICE_CONTROL_READ"}}
    assert (await api.post(f"{users}/watcher/roles", json=role)).status_code == 201

    watcher = (f"{tenant}/watcher", PASSWORD)
    assert (await api.get("/devicecontrol/operations", auth=watcher)).status_code == 200
    posted = await api.post("/devicecontrol/operations", auth=watcher, json={"deviceId": "1"})
    assert posted.status_code == 403

    wrong = (f"{tenant}/watcher", "not the password")
    for _ in range(5):
        assert (await api.get("/devicecontrol/operations", auth=wrong)).status_code == 401
    locked = await api.get("/devicecontrol/operations", auth=watcher)
    assert locked.status_code == 401
    assert "locked after too many failed logins" in locked.json()["message"]

    assert (await api.put(f"{users}/watcher", json={"enabled": True})).status_code == 200
    assert (await api.get("/devicecontrol/operations", auth=watcher)).status_code == 200
