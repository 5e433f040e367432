"""The console's tools for a device and a fleet, against the whole API on a real
PostgreSQL: the credentials view with "Regenerate secret", a device's live trace (start,
stop) and a new firmware bulk operation for a group. Who sees what, who may act (checked on
the server, not only by hiding the button), the CSRF lock, a new password shown once on an
uncached page while only its hash is stored, and bad input said on the page."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest

from fleetgate.domain import sessions
from fleetgate.domain.devices import NO_PASSWORD
from fleetgate.domain.passwords import verify_password

from whole_api import URL_SECRET, WholeApi, fast_hash, whole_api

pytestmark = pytest.mark.integration


async def _device(pool: asyncpg.Pool, serial: str, password_hash: str) -> int:
    async with pool.acquire() as conn:
        object_id = await conn.fetchval(
            "INSERT INTO managed_object (tenant_id, name, fragments)"
            " VALUES ('t1', $1, '{\"c8y_IsDevice\": {}}') RETURNING id",
            serial,
        )
        await conn.execute(
            "INSERT INTO external_id (tenant_id, type, value, managed_object_id)"
            " VALUES ('t1', 'c8y_Serial', $1, $2)",
            serial,
            object_id,
        )
        await conn.execute(
            "INSERT INTO app_user (tenant_id, username, password_hash, roles)"
            " VALUES ('t1', $1, $2, '{ROLE_DEVICE}')",
            f"device_{serial}",
            password_hash,
        )
    return int(object_id)


async def _log_in(whole: WholeApi, username: str, password: str) -> str:
    whole.client.cookies.clear()
    response = await whole.client.post(
        "/console/login", data={"tenant": "t1", "username": username, "password": password}
    )
    assert response.status_code == 303, response.text
    cookie = str(response.cookies["fleetgate_console"])
    key = sessions.session_key(URL_SECRET)
    session = sessions.unseal(key, cookie, time.time())
    assert session is not None
    return sessions.csrf_token(key, session)


async def _hash_of(pool: asyncpg.Pool, serial: str) -> str:
    return str(
        await pool.fetchval(
            "SELECT password_hash FROM app_user WHERE tenant_id = 't1' AND username = $1",
            f"device_{serial}",
        )
    )


async def test_only_a_device_control_admin_sees_the_credentials_and_regenerates(
    pool: asyncpg.Pool, scratch_dir: Path
) -> None:
    async with whole_api(pool, scratch_dir / "files") as whole:
        await pool.execute(
            "INSERT INTO app_user (tenant_id, username, password_hash, roles) VALUES"
            " ('t1', 'watcher', $1, '{ROLE_INVENTORY_READ,ROLE_DEVICE_CONTROL_READ}')",
            fast_hash("watcher-pw"),
        )
        object_id = await _device(pool, "cred-pw", fast_hash("old-secret"))
        old = await _hash_of(pool, "cred-pw")

        csrf = await _log_in(whole, "watcher", "watcher-pw")
        page = await whole.client.get(f"/console/devices/{object_id}")
        assert page.status_code == 200
        assert "Credentials" not in page.text
        assert "Regenerate secret" not in page.text
        refused = await whole.client.post(
            f"/console/devices/{object_id}/secret", data={"csrf": csrf}
        )
        assert refused.status_code == 403
        assert "text/html" in refused.headers["content-type"]
        assert await _hash_of(pool, "cred-pw") == old

        csrf = await _log_in(whole, "admin", "admin-pw")
        page = await whole.client.get(f"/console/devices/{object_id}")
        assert 'data-field="authentication">PASSWORD<' in page.text
        assert "device_cred-pw" in page.text
        assert "Regenerate secret" in page.text
        tokenless = await whole.client.post(f"/console/devices/{object_id}/secret", data={})
        assert tokenless.status_code == 403
        assert await _hash_of(pool, "cred-pw") == old

        shown = await whole.client.post(f"/console/devices/{object_id}/secret", data={"csrf": csrf})
        assert shown.status_code == 200
        assert shown.headers["cache-control"] == "no-store"
        password = shown.text.split('id="new-secret" type="text" value="', 1)[1].split('"')[0]
        assert len(password) >= 32
        stored = await _hash_of(pool, "cred-pw")
        assert stored != old
        assert password not in stored
        assert verify_password(password, stored)
        again = await whole.client.get(f"/console/devices/{object_id}")
        assert password not in again.text
        assert "UTC by admin" in again.text


async def test_a_certificate_device_offers_no_regeneration_and_refuses_one(
    pool: asyncpg.Pool, scratch_dir: Path
) -> None:
    async with whole_api(pool, scratch_dir / "files") as whole:
        object_id = await _device(pool, "cred-cert", NO_PASSWORD)
        csrf = await _log_in(whole, "admin", "admin-pw")
        page = await whole.client.get(f"/console/devices/{object_id}")
        assert 'data-field="authentication">CERTIFICATE<' in page.text
        assert "Regenerate secret" not in page.text
        posted = await whole.client.post(
            f"/console/devices/{object_id}/secret", data={"csrf": csrf}
        )
        assert posted.status_code == 303
        back = await whole.client.get(posted.headers["location"])
        assert 'role="alert"' in back.text
        assert "has no password to regenerate" in back.text
        assert await _hash_of(pool, "cred-cert") == NO_PASSWORD


async def test_a_trace_is_started_and_stopped_by_an_admin_with_a_checked_duration(
    pool: asyncpg.Pool, scratch_dir: Path
) -> None:
    async with whole_api(pool, scratch_dir / "files") as whole:
        await pool.execute(
            "INSERT INTO app_user (tenant_id, username, password_hash, roles) VALUES"
            " ('t1', 'watcher', $1, '{ROLE_INVENTORY_READ,ROLE_DEVICE_CONTROL_READ}')",
            fast_hash("watcher-pw"),
        )
        object_id = await _device(pool, "trace-1", fast_hash("a-secret"))
        path = f"/console/devices/{object_id}/trace"

        csrf = await _log_in(whole, "watcher", "watcher-pw")
        page = await whole.client.get(f"/console/devices/{object_id}")
        assert "No trace is running" in page.text
        assert "Start trace" not in page.text
        refused = await whole.client.post(path, data={"csrf": csrf, "duration": "60"})
        assert refused.status_code == 403
        assert await pool.fetchval("SELECT count(*) FROM device_trace") == 0

        csrf = await _log_in(whole, "admin", "admin-pw")
        assert (await whole.client.post(path, data={"duration": "60"})).status_code == 403
        for bad, reason in (
            ("0", "at least 1"),
            ("259201", "at most 259200"),
            ("soon", "whole number of seconds"),
            ("", "whole number of seconds"),
        ):
            posted = await whole.client.post(path, data={"csrf": csrf, "duration": bad})
            assert posted.status_code == 303, bad
            shown = await whole.client.get(posted.headers["location"])
            assert 'role="alert"' in shown.text, bad
            assert "No trace is running" in shown.text, bad
            assert reason in shown.text, bad
        assert await pool.fetchval("SELECT count(*) FROM device_trace") == 0

        started = await whole.client.post(path, data={"csrf": csrf, "duration": "259200"})
        assert started.status_code == 303
        page = await whole.client.get(started.headers["location"])
        assert "Trace started for 259200 s" in page.text
        assert "started by admin" in page.text
        assert f'data-trace-source="/console/devices/{object_id}/trace/stream"' in page.text

        csrf = await _log_in(whole, "watcher", "watcher-pw")
        page = await whole.client.get(f"/console/devices/{object_id}")
        assert "started by admin" in page.text
        assert "Stop trace" not in page.text
        refused = await whole.client.post(f"{path}/stop", data={"csrf": csrf})
        assert refused.status_code == 403

        csrf = await _log_in(whole, "admin", "admin-pw")
        stopped = await whole.client.post(f"{path}/stop", data={"csrf": csrf})
        assert stopped.status_code == 303
        page = await whole.client.get(stopped.headers["location"])
        assert "Trace stopped" in page.text
        assert "No trace is running" in page.text
        assert (await whole.client.get(f"{path}/stream")).status_code == 404


async def test_only_a_bulk_admin_creates_a_bulk_operation_and_bad_input_is_said(
    pool: asyncpg.Pool, scratch_dir: Path
) -> None:
    async with whole_api(pool, scratch_dir / "files") as whole:
        await pool.execute(
            "INSERT INTO app_user (tenant_id, username, password_hash, roles) VALUES"
            " ('t1', 'watcher', $1, '{ROLE_BULK_OPERATION_READ}')",
            fast_hash("watcher-pw"),
        )
        form = {"group": "1", "version": "2", "ramp": "1"}
        csrf = await _log_in(whole, "watcher", "watcher-pw")
        page = await whole.client.get("/console/bulk")
        assert page.status_code == 200
        assert "Create bulk operation" not in page.text
        refused = await whole.client.post("/console/bulk", data={**form, "csrf": csrf})
        assert refused.status_code == 403

        csrf = await _log_in(whole, "admin", "admin-pw")
        page = await whole.client.get("/console/bulk")
        assert "New bulk operation" in page.text
        assert "No device group yet" in page.text
        assert (await whole.client.post("/console/bulk", data=form)).status_code == 403
        for bad, reason in (
            ({"group": ""}, "Choose a group"),
            ({"version": "x"}, "Choose a firmware version"),
            ({"ramp": "-1"}, "from 0 to 86400"),
            ({"ramp": "nan"}, "from 0 to 86400"),
            ({"version": "999999"}, "not in the repository"),
        ):
            posted = await whole.client.post("/console/bulk", data={**form, **bad, "csrf": csrf})
            assert posted.status_code == 303, bad
            assert posted.headers["location"] == "/console/bulk", bad
            shown = await whole.client.get(posted.headers["location"])
            assert 'role="alert"' in shown.text, bad
            assert reason in shown.text, bad
        assert await pool.fetchval("SELECT count(*) FROM bulk_operation") == 0
