"""``FLEETGATE_API_METRICS_AUTH=none``: ``/metrics`` asks for no credentials (a scraper on
a private network); by default it does (the e2e test checks who may read it)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from fleetgate.api.app import create_app
from fleetgate.api.auth import ApiContext
from fleetgate.api.services import ApiServices
from fleetgate.metrics.registry import ServiceMetrics


async def scrape(metrics_auth: str) -> httpx.Response:
    app = create_app(
        ApiContext(None, "http://test", metrics_auth=metrics_auth),  # type: ignore[arg-type]
        ApiServices(metrics=ServiceMetrics()),
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/metrics")


async def test_open_metrics_need_no_credentials() -> None:
    response = await scrape("none")
    assert response.status_code == 200
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert "fleetgate_operation_statuses_applied" in names


async def test_by_default_metrics_need_credentials() -> None:
    response = await scrape("management")
    assert response.status_code == 401
    assert response.json()["error"] == "security/Unauthorized"
