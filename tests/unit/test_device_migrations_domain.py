"""The pure rules of moving a device between tenants (fleetgate.domain.device_migrations):
codes, expiry, attempts, who may do what, which devices move, the trust check."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from fleetgate.domain.device_migrations import (
    CODE_DIGITS,
    CODE_TTL,
    MAX_ATTEMPTS,
    Migration,
    MigrationStatus,
    TreeNode,
    TrustFacts,
    cancel,
    check_target_tenant,
    confirm,
    issue_code,
    moved_fragments,
    new_code,
    normalise_code,
    plan_move,
    untrusted,
)
from fleetgate.domain.errors import AccessDenied, Conflict, NotFound, ValidationFailed

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def requested(**changes: object) -> Migration:
    m = Migration(
        id=7,
        source_tenant="a",
        target_tenant="b",
        object_id=100,
        device_id="gw-1",
        with_children=True,
        status=MigrationStatus.REQUESTED,
        requested_by="admin",
        requested_at=T0,
        expires_at=T0 + CODE_TTL,
        max_attempts=MAX_ATTEMPTS,
    )
    return replace(m, **changes)  # type: ignore[arg-type]


def with_code(at: datetime = T0) -> Migration:
    return issue_code(requested(), "b", "b-admin", "hash", at)


# --- codes ------------------------------------------------------------------------------


def test_a_new_code_is_eight_digits_and_codes_differ() -> None:
    codes = {new_code() for _ in range(50)}
    assert all(len(c) == CODE_DIGITS and c.isdigit() for c in codes)
    assert len(codes) > 45


@pytest.mark.parametrize("typed", ["12345678", "1234 5678", "1234-5678", " 12345678 "])
def test_a_code_may_be_typed_with_spaces_and_dashes(typed: str) -> None:
    assert normalise_code(typed) == "12345678"


@pytest.mark.parametrize(
    "typed", [None, 12345678, "", "1234567", "123456789", "1234567x", "١٢٣٤٥٦٧٨"]
)
def test_anything_else_is_not_a_code(typed: object) -> None:
    with pytest.raises(ValidationFailed):
        normalise_code(typed)


# --- expiry -----------------------------------------------------------------------------


def test_a_request_is_open_until_its_expiry_and_expired_from_then_on() -> None:
    m = requested()
    assert m.at(T0 + CODE_TTL - timedelta(microseconds=1)).status is MigrationStatus.REQUESTED
    expired = m.at(T0 + CODE_TTL)
    assert expired.status is MigrationStatus.EXPIRED
    assert expired.finished_at == T0 + CODE_TTL
    assert requested(status=MigrationStatus.CANCELLED, finished_at=T0).at(T0 + CODE_TTL).status is (
        MigrationStatus.CANCELLED
    )


def test_the_right_code_after_expiry_is_refused() -> None:
    with pytest.raises(Conflict, match="expired"):
        confirm(with_code(), "b", "b-admin", True, T0 + CODE_TTL)


def test_no_code_can_be_issued_after_expiry() -> None:
    with pytest.raises(Conflict, match="expired"):
        issue_code(requested(), "b", "b-admin", "hash", T0 + CODE_TTL + timedelta(seconds=1))


# --- attempts ---------------------------------------------------------------------------


def test_the_right_code_confirms_and_forgets_the_hash() -> None:
    done = confirm(with_code(), "b", "b-admin", True, T0 + timedelta(minutes=3))
    assert done.accepted
    assert done.error is None
    assert done.migration.status is MigrationStatus.CONFIRMED
    assert (done.migration.finished_by, done.migration.code_hash) == ("b-admin", None)


def test_wrong_codes_cost_attempts_and_the_last_one_ends_the_request() -> None:
    m = with_code()
    for left in range(MAX_ATTEMPTS - 1, 0, -1):
        wrong = confirm(m, "b", "b-admin", False, T0)
        assert not wrong.accepted
        assert isinstance(wrong.error, ValidationFailed)
        assert f"{left} attempt" in wrong.error.message
        m = wrong.migration
        assert m.status is MigrationStatus.REQUESTED
        assert m.attempts_left == left
    last = confirm(m, "b", "b-admin", False, T0)
    assert last.migration.status is MigrationStatus.EXHAUSTED
    assert last.migration.attempts == MAX_ATTEMPTS
    assert last.error is not None
    assert "last" in last.error.message
    with pytest.raises(Conflict, match="wrong codes"):
        confirm(last.migration, "b", "b-admin", True, T0)


def test_a_code_must_be_issued_before_one_is_entered() -> None:
    with pytest.raises(Conflict, match="No verification code"):
        confirm(requested(), "b", "b-admin", True, T0)


def test_a_new_code_replaces_the_old_one_but_keeps_expiry_and_attempts() -> None:
    m = confirm(with_code(), "b", "b-admin", False, T0).migration
    again = issue_code(m, "b", "other-admin", "hash-2", T0 + timedelta(minutes=5))
    assert (again.code_hash, again.code_issued_to) == ("hash-2", "other-admin")
    assert (again.attempts, again.expires_at) == (1, T0 + CODE_TTL)


# --- who ----------------------------------------------------------------------------------


def test_only_the_target_reads_and_enters_the_code() -> None:
    with pytest.raises(AccessDenied, match="target tenant b"):
        issue_code(requested(), "a", "admin", "hash", T0)
    with pytest.raises(AccessDenied):
        confirm(with_code(), "a", "admin", True, T0)
    with pytest.raises(NotFound):
        issue_code(requested(), "c", "admin", "hash", T0)
    with pytest.raises(NotFound):
        confirm(with_code(), "c", "admin", True, T0)


def test_source_and_target_may_cancel_nobody_else_and_only_once() -> None:
    assert cancel(requested(), "a", "admin", T0).status is MigrationStatus.CANCELLED
    assert cancel(requested(), "b", "admin", T0).finished_by == "admin"
    with pytest.raises(NotFound):
        cancel(requested(), "c", "admin", T0)
    with pytest.raises(Conflict, match="cancelled"):
        cancel(cancel(requested(), "a", "admin", T0), "a", "admin", T0)


# --- which devices move -----------------------------------------------------------------


GW = TreeNode(1, "gw", True)
KIDS = [TreeNode(3, "kid-b", True, gateway="gw"), TreeNode(2, "kid-a", True, gateway="gw")]


def test_a_gateway_moves_with_its_children_in_id_order() -> None:
    plan = plan_move(GW, KIDS, with_children=True)
    assert plan.device_ids == ["gw", "kid-a", "kid-b"]
    assert plan.staying == ()


def test_a_gateway_alone_leaves_its_children_behind() -> None:
    plan = plan_move(GW, KIDS, with_children=False)
    assert plan.object_ids == [1]
    assert [n.device_id for n in plan.staying] == ["kid-a", "kid-b"]


def test_a_child_does_not_move_without_its_gateway() -> None:
    with pytest.raises(ValidationFailed, match="child of gateway gw"):
        plan_move(KIDS[0], [], with_children=True)


@pytest.mark.parametrize("node", [TreeNode(5, None, True), TreeNode(5, "grp", False)])
def test_only_a_device_with_a_device_id_moves(node: TreeNode) -> None:
    with pytest.raises(ValidationFailed, match="not a device"):
        plan_move(node, [], with_children=True)


# --- trust ------------------------------------------------------------------------------


def test_the_target_must_trust_the_ca_by_its_subject_as_tls_compares_names() -> None:
    facts = TrustFacts("ab" * 20, "CN=Fleet CA 1", frozenset({"cn=fleet  ca 1", "CN=Other"}))
    assert untrusted("gw", "b", facts) is None


def test_an_untrusted_ca_is_named_with_what_the_target_must_do() -> None:
    refusal = untrusted("gw", "b", TrustFacts("ab" * 20, "CN=Fleet CA 1", frozenset({"CN=X"})))
    assert refusal is not None
    assert "Tenant b does not trust" in refusal.message
    assert "'CN=Fleet CA 1'" in refusal.message
    assert "ab" * 20 in refusal.message
    unknown = untrusted("gw", "b", TrustFacts("cd" * 20, None, frozenset()))
    assert unknown is not None
    assert f"fingerprint {'cd' * 20}" in unknown.message


# --- what a moved device shows -----------------------------------------------------------


def test_a_moved_device_is_offline_with_the_reason_and_a_never_connected_one_inactive() -> None:
    assert moved_fragments({"c8y_IsDevice": {}}, "b", T0) == {}
    shown = moved_fragments(
        {"c8y_Connection": {"status": "CONNECTED"}, "fleetgate_Connection": {"status": "x"}},
        "b",
        T0,
    )
    assert shown["c8y_Connection"] == {"status": "DISCONNECTED"}
    assert shown["fleetgate_Lifecycle"] == {"status": "OFFLINE", "reason": "moved to tenant b"}
    child = moved_fragments(
        {"c8y_Connection": {}, "fleetgate_Connection": {"status": "CONNECTED", "gateway": "gw"}},
        "b",
        T0,
    )
    assert child["fleetgate_Connection"]["gateway"] == "gw"
    disabled = moved_fragments(
        {"c8y_Connection": {}, "fleetgate_Lifecycle": {"status": "DISABLED"}}, "b", T0
    )
    assert "fleetgate_Lifecycle" not in disabled


@pytest.mark.parametrize("raw", [None, "", 7, "T2", "t2/x", "t\x002", "a" * 63, "2t"])
def test_a_target_tenant_must_be_a_tenant_id(raw: object) -> None:
    with pytest.raises(ValidationFailed):
        check_target_tenant(raw)
    assert check_target_tenant("t2_b-c") == "t2_b-c"
