"""Readiness from its parts (the probe and the connection flags are small fakes here; the
real database and broker are in tests/integration/test_database_outage_pg.py and
tests/e2e/test_up_failures.py)."""

from __future__ import annotations

from fleetgate.domain.errors import ServiceUnavailable
from fleetgate.services.health import Check, Health


async def answers() -> None:
    return None


async def away() -> None:
    raise ServiceUnavailable("The database cannot be reached; try again later.", retry_after=5)


async def test_ready_when_the_database_answers_and_every_connection_is_up() -> None:
    health = Health(answers, {"brokerBridge": lambda: True}, database_timeout=2)
    readiness = await health.readiness()
    assert readiness.ready
    assert readiness.checks == (Check("database", True), Check("brokerBridge", True))


async def test_not_ready_names_each_part_that_is_down() -> None:
    connected = {"brokerBridge": True, "deviceLink": False}
    health = Health(
        away,
        {name: (lambda name=name: connected[name]) for name in connected},
        database_timeout=2,
    )
    readiness = await health.readiness()
    assert not readiness.ready
    assert readiness.checks == (
        Check("database", False, "does not answer (waited at most 2 s)"),
        Check("brokerBridge", True),
        Check("deviceLink", False, "not connected"),
    )
    connected["deviceLink"] = True  # read at each readiness, not once
    assert (await health.readiness()).checks[2] == Check("deviceLink", True)
