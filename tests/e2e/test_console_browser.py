"""The web console in a real browser (headless Chromium driven by Playwright) against
`fleetgate serve` on a real PostgreSQL and mosquitto with the plugin, with 20 simulated
devices: log in, see them, create a firmware operation and watch it turn SUCCESSFUL
without reloading, accept a device request, upload a CA; a watcher sees but cannot act.

Every wait is Playwright's (an element, a text, an attribute), bounded generously; no
sleeps."""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import aiomqtt
import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Dialog, Page, expect

from fleetgate.domain import sessions
from integration.broker_support import password_device_client

from console_support import VIEWPORT, chromium, live, log_in, logged_in
from corpora.certificates import make_ca
from serve_support import ADMIN, TENANT, Stack, running, serve_stack
from waiting import eventually

pytestmark = pytest.mark.e2e

PREFIX = "cw"
DEVICES = 20
BOOTSTRAP = (f"{TENANT}/devicebootstrap", "boot-secret-77")
WATCHER_PASSWORD = "watcher-secret-1"


@pytest.fixture(scope="module")
async def stack(postgres_admin_url: str) -> AsyncIterator[Stack]:
    async with (
        serve_stack(postgres_admin_url) as running_stack,
        running(running_stack.simulation(PREFIX, DEVICES, delay=0.3)) as simulation,
    ):
        ids = list(simulation.config.device_ids)
        await eventually(lambda: running_stack.declared(ids), "the 20 devices registered")
        yield running_stack


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
async def admin(stack: Stack, browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await logged_in(browser, stack.serve.api_url, TENANT, "admin", ADMIN[1])
    yield context
    await context.close()


@pytest.fixture
async def page(admin: BrowserContext) -> AsyncIterator[Page]:
    opened = await admin.new_page()
    yield opened
    await opened.close()


async def test_a_wrong_password_is_refused_on_the_page_and_the_right_one_logs_in(
    stack: Stack, browser: Browser
) -> None:
    context = await browser.new_context(base_url=stack.serve.api_url)
    page = await context.new_page()
    try:
        await page.goto("/console/devices")
        await expect(page).to_have_url(f"{stack.serve.api_url}/console/login?next=/console/devices")
        await log_in(page, TENANT, "admin", "not the password")
        await expect(page.get_by_role("alert")).to_contain_text("Bad credentials")
        await log_in(page, TENANT, "admin", ADMIN[1])
        # back where the login was asked for
        await expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
        cookie = next(c for c in await context.cookies() if c["name"] == "fleetgate_console")
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"
    finally:
        await context.close()


async def test_the_console_works_from_the_keyboard(stack: Stack, browser: Browser) -> None:
    context = await browser.new_context(base_url=stack.serve.api_url)
    page = await context.new_page()
    try:
        await page.goto("/console/login")
        await expect(page.get_by_label("Tenant")).to_be_focused()  # autofocus
        await page.keyboard.type(TENANT)
        await page.keyboard.press("Tab")
        await page.keyboard.type("admin")
        await page.keyboard.press("Tab")
        await page.keyboard.type(ADMIN[1])
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Operations", exact=True)).to_be_visible()
        await page.keyboard.press("Tab")  # the first stop of a page is the skip link
        await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        for _ in range(4):  # the brand, then Operations, Bulk operations, Devices
            await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name="Devices", exact=True)).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
    finally:
        await context.close()


async def test_the_devices_page_shows_the_20_simulated_devices(page: Page) -> None:
    await page.goto("/console/")
    online = page.get_by_role("link").filter(has_text="ONLINE")
    await expect(online.locator(".count")).to_have_text(str(DEVICES))
    await page.goto(f"/console/devices?name={PREFIX}-")
    await expect(page.locator("[data-total]")).to_have_text(str(DEVICES))
    rows = page.locator("#devices tbody tr")
    await expect(rows).to_have_count(DEVICES)
    await expect(rows.filter(has_text=f"{PREFIX}-0001")).to_contain_text("ONLINE")
    await page.get_by_role("combobox", name="Lifecycle").select_option("OFFLINE")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("[data-total]")).to_have_text("0")


async def _upload_firmware(page: Page, tmp_path: Path, version: str) -> None:
    image = tmp_path / f"console-fw-{version}.bin"
    image.write_bytes(bytes(range(256)) * 32)
    await page.goto("/console/repositories")
    form = page.locator("form", has=page.get_by_role("heading", name="Upload a firmware file"))
    await form.get_by_label("Firmware name").fill("console-fw")
    await form.get_by_label("Version").fill(version)
    await form.get_by_label("File").set_input_files(image)
    await form.get_by_role("button", name="Upload").click()
    await expect(page.get_by_role("status")).to_have_text(f"Firmware console-fw {version} uploaded")


async def test_a_firmware_operation_turns_successful_without_reloading(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    await _upload_firmware(page, tmp_path, "2.0")
    device = await stack.object_id(f"{PREFIX}-0003")
    await page.goto(f"/console/devices/{device}")
    await page.get_by_label("Firmware version").select_option(label="console-fw 2.0")
    await page.get_by_role("button", name="Create firmware operation").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("c8y_Firmware")
    await live(page)
    # a mark that a reload would wipe out
    await page.evaluate("window.notReloaded = true")
    status = page.locator("[data-operation-status] [data-field=status]")
    await expect(status).to_have_text("SUCCESSFUL")
    await expect(page.locator("[data-history]")).to_contain_text("SUCCESSFUL")
    assert await page.evaluate("window.notReloaded === true")
    await page.get_by_role("link", name=f"{PREFIX}-0003").first.click()
    await expect(page.locator("[data-field=firmware]")).to_have_text("console-fw 2.0")


async def test_the_operations_table_shows_a_new_operation_and_its_statuses_live(
    stack: Stack, page: Page
) -> None:
    await page.goto(f"/console/operations?device={PREFIX}-0007&type=c8y_UploadConfigFile")
    await live(page)
    await page.evaluate("window.notReloaded = true")
    upload = {"c8y_UploadConfigFile": {"type": "ssh"}}
    created = await stack.create(f"{PREFIX}-0007", upload)
    row = page.locator(f'tr[data-operation="{created["id"]}"]')
    await expect(row).to_be_visible()
    await expect(row.locator("[data-field=status]")).to_have_text("SUCCESSFUL")
    assert await page.evaluate("window.notReloaded === true")
    # the filters hold live too: another device's operation does not come in (the
    # stream's next change after it, our own device's, shows it was passed over)
    other = await stack.create(f"{PREFIX}-0008", upload)
    later = await stack.create(f"{PREFIX}-0007", upload)
    await expect(page.locator(f'tr[data-operation="{later["id"]}"]')).to_be_visible()
    await expect(page.locator(f'tr[data-operation="{other["id"]}"]')).to_have_count(0)


async def test_a_failed_operation_shows_its_reason_live_and_in_its_detail(
    stack: Stack, page: Page
) -> None:
    async with running(stack.simulation("cwf", 1, delay=0.3, failure_rate=1.0)):
        await eventually(lambda: stack.declared(["cwf-0001"]), "the device registered")
        device = await stack.object_id("cwf-0001")
        await page.goto(f"/console/devices/{device}")
        await live(page)
        created = await stack.create("cwf-0001", {"c8y_UploadConfigFile": {"type": "ssh"}})
        row = page.locator(f'tr[data-operation="{created["id"]}"]')
        await expect(row.locator("[data-field=status]")).to_have_text("FAILED")
    reason = (await stack.operation(created["id"]))["failureReason"]
    assert reason
    await expect(row).to_contain_text(reason)
    await row.get_by_role("link", name=created["id"], exact=True).click()
    await expect(page.locator("[data-field=failure]")).to_have_text(reason)
    await expect(page.locator("[data-history]")).to_contain_text(f"FAILED: {reason}")


async def _connection(stack: Stack, device_id: str) -> str:
    found = await stack.api.get(
        f"/inventory/managedObjects/{await stack.object_id(device_id)}", auth=ADMIN
    )
    return str(found.json().get("c8y_Connection", {}).get("status"))


async def test_an_admin_disables_and_enables_a_device_from_its_page(
    stack: Stack, page: Page
) -> None:
    device_id = f"{PREFIX}-0020"
    await page.goto(f"/console/devices/{await stack.object_id(device_id)}")

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.once("dialog", accept)  # "Disable …? Its session is closed …"
    await page.get_by_role("button", name="Disable device").click()
    await expect(page.get_by_role("status")).to_contain_text("Device disabled")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("DISABLED")
    await eventually(
        lambda: _is(_connection(stack, device_id), "DISCONNECTED"), "the device kicked"
    )
    await page.get_by_role("button", name="Enable device").click()
    await expect(page.get_by_role("status")).to_contain_text("Device enabled")
    await expect(page.get_by_role("button", name="Disable device")).to_be_visible()
    await eventually(lambda: _is(_connection(stack, device_id), "CONNECTED"), "it back")


async def _is(value: Awaitable[str], expected: str) -> bool:
    return await value == expected


async def test_accepting_a_device_request_lets_the_device_have_its_credentials(
    stack: Stack, page: Page
) -> None:
    device_id = "console-req-1"
    made = await stack.api.post(
        "/devicecontrol/newDeviceRequests", json={"id": device_id}, auth=ADMIN
    )
    assert made.status_code == 201, made.text
    asking = await stack.api.post(
        "/devicecontrol/deviceCredentials", json={"id": device_id}, auth=BOOTSTRAP
    )
    assert asking.status_code == 404, asking.text  # not accepted yet: now pending
    await page.goto("/console/requests")
    row = page.locator(f'tr[data-request="{device_id}"]')
    await expect(row).to_contain_text("PENDING_ACCEPTANCE")
    await row.get_by_role("button", name=f"Accept {device_id}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Request of {device_id} accepted")
    await expect(row).to_contain_text("ACCEPTED")
    issued = await stack.api.post(
        "/devicecontrol/deviceCredentials", json={"id": device_id}, auth=BOOTSTRAP
    )
    assert issued.status_code == 201, issued.text
    assert issued.json()["username"] == f"device_{device_id}"


async def _can_connect(stack: Stack, device_id: str, password: str) -> bool:
    try:
        async with password_device_client(stack.broker, TENANT, device_id, password):
            return True
    except aiomqtt.MqttError:
        return False


async def test_an_admin_regenerates_a_password_device_secret_and_sees_it_once(
    stack: Stack, page: Page
) -> None:
    device_id, old = "console-cred-1", "Console-old-secret-1"
    csv = f"ID;CREDENTIALS\n{device_id};{old}\n"
    made = await stack.api.post(
        "/devicecontrol/bulkNewDeviceRequests",
        files={"file": ("devices.csv", csv.encode(), "text/csv")},
        auth=ADMIN,
    )
    assert made.status_code == 201, made.text
    object_id = await stack.object_id(device_id)
    await page.goto(f"/console/devices/{object_id}")
    credentials = page.get_by_role("region", name="Credentials")
    await expect(credentials).to_contain_text("PASSWORD")
    await expect(credentials).to_contain_text(f"device_{device_id}")
    await expect(credentials).to_contain_text("never")

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.once("dialog", accept)  # "Regenerate the secret of …? Its current password …"
    await page.get_by_role("button", name="Regenerate secret").click()
    shown = page.get_by_label("New password")
    await expect(shown).to_have_value(re.compile(r"^[A-Za-z0-9_-]{32,}$"))
    secret = await shown.input_value()
    assert await _can_connect(stack, device_id, secret)
    assert not await _can_connect(stack, device_id, old)
    await page.get_by_role("link", name="Back to the device").click()
    await expect(credentials).to_contain_text("UTC by admin")
    assert secret not in await page.content()


async def test_a_live_trace_shows_new_entries_on_top_without_reloading(
    stack: Stack, page: Page
) -> None:
    device_id = f"{PREFIX}-0012"
    await page.goto(f"/console/devices/{await stack.object_id(device_id)}")
    trace = page.get_by_role("region", name="Live trace")
    await trace.get_by_label("Duration in seconds").fill("600")
    await trace.get_by_role("button", name="Start trace").click()
    await expect(page.get_by_role("status")).to_contain_text("Trace started for 600 s")
    entries = page.get_by_role("list", name="Trace entries, newest first")
    await expect(entries.get_by_role("listitem").first).to_contain_text("traceStarted")
    await expect(trace.locator("[data-trace-source]")).to_have_attribute("data-connected", "true")
    await page.evaluate("window.notReloaded = true")
    created = await stack.create(device_id, {"c8y_UploadConfigFile": {"type": "ssh"}})
    dispatched = entries.get_by_role("listitem").filter(has_text="operationDispatched")
    await expect(dispatched).to_contain_text(str(created["id"]))
    assert await page.evaluate("window.notReloaded") is True
    newest = await entries.get_by_role("listitem").first.get_attribute("data-entry")
    oldest = await entries.get_by_role("listitem").last.get_attribute("data-entry")
    assert newest is not None
    assert oldest is not None
    assert int(newest) > int(oldest)
    await trace.get_by_role("button", name="Stop trace").click()
    await expect(page.get_by_role("status")).to_contain_text("Trace stopped")
    await expect(trace).to_contain_text("No trace is running")


async def test_an_uploaded_ca_is_trusted_and_can_be_disabled(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    ca = make_ca("Console test CA")
    pem = tmp_path / "console-ca.pem"
    pem.write_text(ca.pem())
    await page.goto("/console/certificates")
    await page.get_by_label("PEM file").set_input_files(pem)
    await page.get_by_label("Auto-registration of its devices").check()
    await page.get_by_role("button", name="Upload").click()
    await expect(page.get_by_role("status")).to_have_text("Certificate uploaded")
    row = page.locator("tr", has_text="Console test CA")
    await expect(row).to_contain_text("ENABLED")
    await row.get_by_role("button", name="Disable Console test CA").click()
    await expect(page.get_by_role("status")).to_have_text("Certificate updated")
    await expect(row).to_contain_text("DISABLED")
    listed = await stack.api.get(f"/tenant/tenants/{TENANT}/trusted-certificates", auth=ADMIN)
    found = next(c for c in listed.json()["certificates"] if c["name"] == "Console test CA")
    assert found["status"] == "DISABLED"
    assert found["autoRegistrationEnabled"] is True
    # the same PEM again: the service's refusal, on the page
    await page.get_by_label("PEM file").set_input_files(pem)
    await page.get_by_role("button", name="Upload").click()
    await expect(page.get_by_role("alert")).to_contain_text("already")


async def _watcher(stack: Stack) -> tuple[str, str]:
    users = f"/user/{TENANT}/users"
    made = await stack.api.post(
        users, json={"userName": "console-watcher", "password": WATCHER_PASSWORD}, auth=ADMIN
    )
    assert made.status_code == 201, made.text
    for role in ("ROLE_DEVICE_CONTROL_READ", "ROLE_INVENTORY_READ"):
        reference = {"role": {"id": role}}
        given = await stack.api.post(f"{users}/console-watcher/roles", json=reference, auth=ADMIN)
        assert given.status_code == 201, given.text
    return "console-watcher", WATCHER_PASSWORD


async def test_a_watcher_sees_but_is_refused_an_action_even_when_posting_it(
    stack: Stack, browser: Browser
) -> None:
    username, password = await _watcher(stack)
    context = await logged_in(browser, stack.serve.api_url, TENANT, username, password)
    try:
        page = await context.new_page()
        device = await stack.object_id(f"{PREFIX}-0001")
        await page.goto(f"/console/devices/{device}")
        await expect(page.get_by_role("heading", name="Operations")).to_be_visible()
        await expect(page.get_by_role("button", name="Create firmware operation")).to_have_count(0)
        await expect(page.get_by_role("button", name="Disable device")).to_have_count(0)
        await expect(page.get_by_role("link", name="Certificates")).to_have_count(0)
        await page.goto("/console/requests")
        await expect(page.get_by_role("button", name="Register")).to_have_count(0)
        # The form is not shown; posted anyway, with the watcher's own valid token, the
        # server refuses it.
        token = await _csrf(context, stack, page)
        posted = await page.request.post(
            "/console/requests", form={"csrf": token, "id": "console-watcher-dev"}
        )
        assert posted.status == 403
        assert "do not include changing requests" in await posted.text()
    finally:
        await context.close()


async def _csrf(context: BrowserContext, stack: Stack, page: Page) -> str:
    """The watcher's own valid CSRF token: no page shows it a form that carries one, so
    it is made from its session cookie with the service's secret, as the service does."""
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    async with httpx.AsyncClient(base_url=stack.serve.api_url, cookies=cookies) as client:
        html = (await client.get("/console/operations")).text
    assert 'name="csrf"' not in html  # nothing to post for a watcher there
    secret = stack.serve.env["FLEETGATE_FILES_URL_SECRET"].encode()
    key = sessions.session_key(secret)
    session = sessions.unseal(key, cookies["fleetgate_console"], time.time())
    assert session is not None
    return sessions.csrf_token(key, session)


async def test_a_form_without_its_csrf_token_is_refused(stack: Stack, page: Page) -> None:
    await page.goto("/console/requests")
    posted = await page.request.post("/console/requests", form={"id": "console-csrf-dev"})
    assert posted.status == 403
    listed = await stack.api.get("/devicecontrol/newDeviceRequests/console-csrf-dev", auth=ADMIN)
    assert listed.status_code == 404


async def _bulk_operation(stack: Stack, devices: int, ramp: float) -> str:
    ids = [await stack.object_id(f"{PREFIX}-{n:04d}") for n in range(1, devices + 1)]
    group = await stack.group(f"console group {ramp}", ids)
    made = await stack.api.post(
        "/devicecontrol/bulkoperations",
        json={
            "groupId": group,
            "startDate": "2026-01-01T00:00:00Z",
            "creationRamp": ramp,
            "note": "configuration snapshot",
            "operationPrototype": {"c8y_UploadConfigFile": {"type": "ssh"}},
        },
        auth=ADMIN,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def test_an_admin_creates_a_firmware_bulk_operation_for_a_group(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    await _upload_firmware(page, tmp_path, "9.1.0-bulk")
    ids = [await stack.object_id(f"{PREFIX}-{n:04d}") for n in (14, 15)]
    await stack.group("console new bulk group", ids)
    await page.goto("/console/bulk")
    form = page.get_by_role("form", name="New bulk operation: install a firmware on a group")
    await form.get_by_label("Group").select_option(label="console new bulk group")
    chosen = form.get_by_label("Firmware version")
    value = await chosen.locator("option", has_text="console-fw 9.1.0-bulk").get_attribute("value")
    assert value is not None
    await chosen.select_option(value=value)
    await form.get_by_label("Seconds between two devices").fill("0")
    await form.get_by_role("button", name="Create bulk operation").click()
    status = page.get_by_role("status")
    await expect(status).to_contain_text("created: Update firmware to console-fw 9.1.0-bulk")
    heading = await page.get_by_role("heading", level=1).text_content()
    assert heading is not None
    assert heading.startswith("Bulk operation ")
    bulk_id = heading.removeprefix("Bulk operation ").strip()
    await expect(page.locator("#targets tbody tr")).to_have_count(2)
    await page.goto("/console/bulk")
    await expect(page.locator(f'[data-bulk="{bulk_id}"]')).to_contain_text("console-fw")


async def test_a_bulk_operation_is_paused_and_resumed_and_its_progress_is_live(
    stack: Stack, page: Page
) -> None:
    bulk = await _bulk_operation(stack, 12, ramp=2.0)  # 24 s to pause it in
    await page.goto("/console/bulk")
    await live(page)
    card = page.locator(f'[data-bulk="{bulk}"]')
    await card.get_by_role("button", name="Pause").click()
    await expect(page.get_by_role("status")).to_have_text(f"Bulk operation {bulk} paused")
    await expect(card).to_contain_text("PAUSED")
    await page.evaluate("window.notReloaded = true")
    await card.get_by_role("button", name="Resume").click()
    await expect(page.get_by_role("status")).to_have_text(f"Bulk operation {bulk} resumed")
    await page.evaluate("window.notReloaded = true")
    # the counts move by themselves until every device's operation succeeded
    await expect(card.locator('[data-count="successful"]')).to_have_text("12")
    await expect(card).to_contain_text("DONE")
    assert await page.evaluate("window.notReloaded === true")
    await card.get_by_role("link", name=f"Bulk operation {bulk}").click()
    targets = page.locator("#targets tbody tr")
    await expect(targets).to_have_count(12)
    await expect(targets.filter(has_text="SUCCESSFUL")).to_have_count(12)


#: The form controls of the page that have no label (a <label>, aria-label or
#: aria-labelledby): a screen reader could not name them.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(e => e.type !== 'hidden')
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !e.getAttribute('aria-labelledby') && !(e.tagName === 'BUTTON'
               && e.textContent.trim()))
  .map(e => e.outerHTML)"""

#: The main pages, for docs/console.md: (file name, path, heading that shows it is there).
PAGES = [
    ("operations", "/console/operations", "Operations"),
    ("bulk", "/console/bulk", "Bulk operations and rollouts"),
    ("bulk-operation", "/console/bulk/{bulk}", "Bulk operation {bulk}"),
    ("devices", "/console/devices", "Devices"),
    ("gateway", None, None),
    ("requests", "/console/requests", "New device requests"),
    ("certificates", "/console/certificates", "Trusted certificates"),
    ("repositories", "/console/repositories", "Repositories and profiles"),
]


async def test_the_main_pages_render_and_are_captured(
    stack: Stack, browser: Browser, admin: BrowserContext, tmp_path: Path
) -> None:
    """Every main page renders its heading; the screenshots go to
    ``FLEETGATE_CONSOLE_SCREENSHOTS`` when set (scripts/console-screenshots: docs/console/)."""
    target = Path(os.environ.get("FLEETGATE_CONSOLE_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    login = await browser.new_context(viewport=VIEWPORT, base_url=stack.serve.api_url)
    page = await login.new_page()
    await page.goto("/console/login")
    await page.screenshot(path=target / "login.png")
    await login.close()
    bulk = await _bulk_operation(stack, 20, ramp=30.0)  # one that is still in progress
    async with running(stack.simulation("cwg", 0, gateways=1, children=4, delay=0.3)):
        children = [f"cwg-gw-0001-c-{n:04d}" for n in range(1, 5)]
        await eventually(lambda: stack.declared(["cwg-gw-0001", *children]), "the gateway")
        gateway = await stack.object_id("cwg-gw-0001")
        page = await admin.new_page()
        for name, path, heading in PAGES:
            await page.goto(path.format(bulk=bulk) if path else f"/console/devices/{gateway}")
            await expect(page.get_by_role("heading", level=1)).to_contain_text(
                heading.format(bulk=bulk) if heading else "cwg-gw-0001"
            )
            if await page.locator("[data-live-source]").count():
                await live(page)
            assert await page.evaluate(UNLABELLED) == [], name
            await page.screenshot(path=target / f"{name}.png", full_page=True)
        operation = page.locator("table[data-live-table] tbody tr a").first
        await page.goto("/console/operations")
        await operation.click()
        await expect(page.get_by_role("heading", name="History")).to_be_visible()
        await page.screenshot(path=target / "operation.png", full_page=True)
        await page.close()
    wanted = {f"{name}.png" for name, _, _ in PAGES} | {"login.png", "operation.png"}
    assert wanted <= {p.name for p in target.glob("*.png")}
