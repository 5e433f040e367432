"""The console's login, session and form checks, in process against the real user store:
what the browser tests take for granted (redirects, cookie attributes, refusals as HTML
pages, the same-site and CSRF locks, a session ended by disabling its user)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from fleetgate.api.services import services_of
from fleetgate.db.bootstrap import PgRequests
from fleetgate.domain import sessions
from fleetgate.services.bootstrap import Bootstrap

from conftest import TEST_BASE_URL, api_client, seed_tenants
from fakes import RecordingBroker

pytestmark = pytest.mark.integration

SECRET = b"console test secret"
LOGIN = {"tenant": "t9", "username": "admin", "password": "admin-pw"}


@pytest.fixture
async def console(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    await seed_tenants(pool, "t9")
    async with api_client(pool) as (app, client):
        services_of(app).url_secret = SECRET
        services_of(app).bootstrap = Bootstrap(PgRequests(pool), RecordingBroker())
        yield client


async def _logged_in(console: httpx.AsyncClient) -> str:
    response = await console.post("/console/login", data=LOGIN)
    assert response.status_code == 303, response.text
    return str(response.cookies["fleetgate_console"])


def _csrf(cookie: str) -> str:
    key = sessions.session_key(SECRET)
    session = sessions.unseal(key, cookie, time.time())
    assert session is not None
    return sessions.csrf_token(key, session)


async def test_a_page_without_a_session_sends_to_the_login_and_the_stream_is_401(
    console: httpx.AsyncClient,
) -> None:
    page = await console.get("/console/requests?page=2")
    assert page.status_code == 303
    assert page.headers["location"] == "/console/login?next=/console/requests%3Fpage%3D2"
    assert (await console.get("/console/stream")).status_code == 401
    login = await console.get("/console/login")
    assert login.status_code == 200
    assert '<label for="password">Password</label>' in login.text
    assert "default-src 'self'" in login.headers["content-security-policy"]
    assert (await console.get("/console/static/console.css")).status_code == 200


async def test_logging_in_sets_a_strict_http_only_cookie_and_goes_to_the_asked_page(
    console: httpx.AsyncClient,
) -> None:
    response = await console.post("/console/login", data={**LOGIN, "next": "/console/requests"})
    assert response.status_code == 303
    assert response.headers["location"] == "/console/requests"
    cookie = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/console", "Max-Age=43200"):
        assert attribute in cookie
    page = await console.get("/console/requests")
    assert page.status_code == 200
    assert "New device requests" in page.text


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/other", "/console//evil", ""]
)
async def test_logging_in_never_sends_to_another_site(
    console: httpx.AsyncClient, target: str
) -> None:
    response = await console.post("/console/login", data={**LOGIN, "next": target})
    assert response.headers["location"] == "/console/operations"


async def test_a_wrong_password_is_the_login_page_again_with_the_reason(
    console: httpx.AsyncClient,
) -> None:
    response = await console.post("/console/login", data={**LOGIN, "password": "nope"})
    assert response.status_code == 401
    assert "text/html" in response.headers["content-type"]
    assert "Bad credentials" in response.text
    assert "fleetgate_console" not in response.cookies


async def test_a_form_from_another_site_or_without_its_token_is_refused_as_a_page(
    console: httpx.AsyncClient,
) -> None:
    cookie = await _logged_in(console)
    form = {"id": "console-dev-1", "csrf": _csrf(cookie)}
    foreign = await console.post(
        "/console/requests", data=form, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert "text/html" in foreign.headers["content-type"]
    assert "another site" in foreign.text
    tokenless = await console.post("/console/requests", data={"id": "console-dev-1"})
    assert tokenless.status_code == 403
    same_site = await console.post(
        "/console/requests", data=form, headers={"Origin": TEST_BASE_URL}
    )
    assert same_site.status_code == 303
    listed = await console.get("/console/requests")
    assert 'data-request="console-dev-1"' in listed.text


async def test_a_refused_input_is_shown_on_the_page_it_came_from(
    console: httpx.AsyncClient,
) -> None:
    cookie = await _logged_in(console)
    posted = await console.post("/console/requests", data={"id": "bad id", "csrf": _csrf(cookie)})
    assert posted.status_code == 303
    page = await console.get(posted.headers["location"])
    assert 'role="alert"' in page.text
    assert "device id" in page.text


async def test_disabling_the_user_ends_its_session_at_once(
    console: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await _logged_in(console)
    assert (await console.get("/console/requests")).status_code == 200
    await pool.execute(
        "UPDATE app_user SET enabled = false WHERE tenant_id = 't9' AND username = 'admin'"
    )
    assert (await console.get("/console/requests")).status_code == 303


async def test_the_console_root_leads_to_the_login(console: httpx.AsyncClient) -> None:
    response = await console.get("/console", follow_redirects=True)
    assert response.status_code == 200
    assert str(response.url).startswith(f"{TEST_BASE_URL}/console/login")


async def test_a_malformed_parameter_is_a_422_page(console: httpx.AsyncClient) -> None:
    await _logged_in(console)
    response = await console.get("/console/requests?page=many")
    assert response.status_code == 422
    assert "text/html" in response.headers["content-type"]
    assert "page:" in response.text
