"""The metrics' registry and the wrappers that feed it, with small fakes for what they
wrap: values go through unchanged and are counted; the fleet's gauges follow the
database and survive its absence."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetgate.domain.dead_letters import DeadLetter
from fleetgate.domain.device_messages import DeviceError, StatusReport, SyncRequest
from fleetgate.metrics.instruments import (
    CountedDeadLetters,
    CountedReports,
    TimedPush,
    timed_batches,
)
from fleetgate.metrics.registry import PoolUsage, ServiceMetrics


class Fleet:
    def __init__(self) -> None:
        self.connected = 2
        self.counts: list[tuple[str, str, int]] = [("PENDING", "c8y_Firmware", 4)]
        self.away = False

    async def connected_devices(self) -> int:
        if self.away:
            raise OSError("connection refused")
        return self.connected

    async def operation_counts(self) -> Sequence[tuple[str, str, int]]:
        return self.counts


async def samples(metrics: ServiceMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text, content_type = await metrics.exposition()
    assert content_type.startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def test_scrape_time_gauges_follow_their_sources() -> None:
    metrics, fleet = ServiceMetrics(), Fleet()
    watchers = [3]
    metrics.observe(fleet=fleet, pool=lambda: PoolUsage(2, 5, 10), watchers=lambda: watchers[0])
    first = await samples(metrics)
    assert first[key("fleetgate_devices_connected")] == 2
    assert first[key("fleetgate_operations", status="PENDING", type="c8y_Firmware")] == 4
    assert first[key("fleetgate_db_pool_connections", state="in_use")] == 2
    assert first[key("fleetgate_db_pool_connections", state="idle")] == 5
    assert first[key("fleetgate_db_pool_max_connections")] == 10
    assert first[key("fleetgate_operation_stream_watchers")] == 3
    assert first[key("fleetgate_database_up")] == 1

    # An operation moved on: the old pair goes, the new one comes.
    fleet.counts = [("SUCCESSFUL", "c8y_Firmware", 4)]
    watchers[0] = 0
    second = await samples(metrics)
    assert key("fleetgate_operations", status="PENDING", type="c8y_Firmware") not in second
    assert second[key("fleetgate_operations", status="SUCCESSFUL", type="c8y_Firmware")] == 4
    assert second[key("fleetgate_operation_stream_watchers")] == 0

    # The database away: the scrape answers, with the last values and database_up 0.
    fleet.away = True
    third = await samples(metrics)
    assert third[key("fleetgate_database_up")] == 0
    assert third[key("fleetgate_devices_connected")] == 2


class Bridge:
    def __init__(self) -> None:
        self.pushed: list[list[str]] = []
        self.fail = False

    async def push(self, lines: list[str]) -> None:
        if self.fail:
            raise ConnectionError("broker away")
        self.pushed.append(lines)

    async def resync(self) -> None:
        self.pushed.append(["reset"])

    async def discard_sessions(self, device_ids: list[str]) -> list[str]:
        return device_ids[:1]


async def test_pushes_are_timed_and_failures_counted() -> None:
    metrics, bridge = ServiceMetrics(), Bridge()
    push = TimedPush(bridge, metrics)
    await push.push(["a"])
    await push.resync()
    assert await push.discard_sessions(["x", "y"]) == ["x"]
    bridge.fail = True
    with pytest.raises(ConnectionError):
        await push.push(["b"])
    found = await samples(metrics)
    assert bridge.pushed == [["a"], ["reset"]]
    assert found[key("fleetgate_broker_control_push_seconds_count")] == 2
    assert found[key("fleetgate_broker_control_push_failures_total")] == 1


class Reports:
    async def on_reports(self, reports: Sequence[StatusReport]) -> list[DeviceError]:
        return [DeviceError("d1", "operation/badRequest", "no", "fg/d/d1/op/1/status")][
            : len(reports) - 2
        ]

    async def on_sync(self, requests: Sequence[SyncRequest]) -> None:
        return None


class Letters:
    def __init__(self) -> None:
        self.kept: list[DeadLetter] = []

    async def record(self, letters: Sequence[DeadLetter]) -> None:
        self.kept.extend(letters)


async def test_applied_statuses_refusals_and_batches_are_counted() -> None:
    metrics = ServiceMetrics()
    reports = CountedReports(Reports(), metrics)
    three = [object(), object(), object()]
    errors = await reports.on_reports(three)  # type: ignore[arg-type]
    assert len(errors) == 1
    letters = Letters()
    dead = CountedDeadLetters(letters, metrics)
    await dead.record(
        [
            DeadLetter("d1", "fg/d/d1/inventory", b"x", "inventory/badRequest", "not JSON"),
            DeadLetter("d1", "fg/d/d1/op/1/status", b"y", "operation/badRequest", "no"),
            DeadLetter("d2", "fg/d/d2/op/2/status", b"z", "operation/badRequest", "no"),
        ]
    )
    assert len(letters.kept) == 3

    async def handle(batch: list[int]) -> list[int]:
        return batch[:1]

    timed = timed_batches(handle, metrics)
    assert await timed([1, 2, 3, 4]) == [1]
    assert await timed([5]) == [5]
    found = await samples(metrics)
    assert found[key("fleetgate_operation_statuses_applied_total")] == 2
    rejected = "fleetgate_device_messages_rejected_total"
    assert found[key(rejected, error="operation/badRequest")] == 2
    assert found[key(rejected, error="inventory/badRequest")] == 1
    assert found[key("fleetgate_device_message_batch_size_count")] == 2
    assert found[key("fleetgate_device_message_batch_size_sum")] == 5
    assert found[key("fleetgate_device_message_batch_size_bucket", le="1.0")] == 1
    assert found[key("fleetgate_device_message_batch_seconds_count")] == 2


def test_the_sample_dashboard_and_the_docs_name_only_metrics_that_exist() -> None:
    """docs/grafana-dashboard.json and docs/operations.md stay true to the registry."""
    root = Path(__file__).resolve().parents[2]
    metrics = ServiceMetrics()
    exposed = {
        sample.name
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name.startswith("fleetgate_")
    }
    # Labelled families show samples only once a label is set; name them by family too.
    families = {f.name for f in metrics.registry.collect() if f.name.startswith("fleetgate_")}
    known = exposed | families | {f"{n}_total" for n in families}
    known |= {f"{n}_{s}" for n in families for s in ("bucket", "sum", "count")}
    dashboard = json.loads((root / "docs" / "grafana-dashboard.json").read_text())
    queried = set(re.findall(r"fleetgate_[a-z_]+", json.dumps(dashboard)))
    assert queried, "the dashboard queries nothing"
    assert queried - {"fleetgate_database_up"} <= known, queried - known
    documented = set(
        re.findall(r"`(fleetgate_[a-z_]+)", (root / "docs" / "operations.md").read_text())
    )
    assert {n for n in documented if n.startswith("fleetgate_")} <= known, documented - known
    assert families <= {n.removesuffix("_total") for n in documented} | documented
