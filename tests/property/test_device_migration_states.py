"""The migration state machine (requested → confirmed | expired | exhausted | cancelled)
under any sequence of steps, against a model written apart from the code: a terminal
status never changes, attempts never pass the limit, and the device moves only for the
right code entered by the target while the request is open and a code was issued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.device_migrations import (
    CODE_TTL,
    TRANSITIONS,
    Migration,
    MigrationStatus,
    cancel,
    confirm,
    issue_code,
)
from fleetgate.domain.errors import FleetgateError

T0 = datetime(2026, 12, 1, tzinfo=UTC)
TERMINAL = set(MigrationStatus) - {MigrationStatus.REQUESTED}

Step = tuple[str, str, int]  # (action, tenant, minutes to wait first)
steps = st.lists(
    st.tuples(
        st.sampled_from(["issue", "right", "wrong", "cancel"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 4),
    ),
    max_size=25,
)


@dataclass
class Model:
    status: str = "REQUESTED"
    attempts: int = 0
    issued: bool = False
    moved: bool = False


def model_step(m: Model, action: str, tenant: str, now: datetime, max_attempts: int) -> None:
    if m.status == "REQUESTED" and now >= T0 + CODE_TTL:
        m.status = "EXPIRED"
    if m.status != "REQUESTED" or tenant == "c":
        return
    if action == "cancel":
        m.status = "CANCELLED"
    elif tenant == "b" and action == "issue":
        m.issued = True
    elif tenant == "b" and m.issued and action == "right":
        m.status, m.moved = "CONFIRMED", True
    elif tenant == "b" and m.issued and action == "wrong":
        m.attempts += 1
        if m.attempts == max_attempts:
            m.status = "EXHAUSTED"


@given(steps, st.integers(1, 6))
def test_any_sequence_of_steps_follows_the_model(script: list[Step], max_attempts: int) -> None:
    migration = Migration(
        1, "a", "b", 10, "gw", True, MigrationStatus.REQUESTED, "admin", T0, T0 + CODE_TTL,
        max_attempts,
    )  # fmt: skip
    model = Model()
    now = T0
    for action, tenant, wait in script:
        now += timedelta(minutes=wait)
        before = migration.at(now)
        try:
            if action == "issue":
                migration = issue_code(migration, tenant, "u", "h", now)
            elif action == "cancel":
                migration = cancel(migration, tenant, "u", now)
            else:
                outcome = confirm(migration, tenant, "u", action == "right", now)
                migration = outcome.migration
                assert outcome.accepted == (migration.status is MigrationStatus.CONFIRMED)
        except FleetgateError:
            migration = before  # refused: nothing changed but what time did
        model_step(model, action, tenant, now, max_attempts)
        shown = migration.at(now)
        assert shown.status.value == model.status
        assert shown.attempts == model.attempts <= max_attempts
        if before.status in TERMINAL:
            assert shown == before
        assert (shown.status is MigrationStatus.CONFIRMED) == model.moved


def test_every_transition_leaves_requested() -> None:
    assert {status for status, _ in TRANSITIONS} == {MigrationStatus.REQUESTED}
    assert set(TRANSITIONS.values()) == set(MigrationStatus)
