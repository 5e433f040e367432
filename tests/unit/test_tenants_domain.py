"""The tenant rules: ids, domains, create and update bodies, what cannot be done to the
management tenant."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain import broker_control as control
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.tenants import (
    TenantRecord,
    TenantStatus,
    check_deletion,
    check_domain,
    check_tenant_id,
    is_tenant_id,
    read_new_tenant,
    read_tenant_changes,
)

GOOD = {"company": "ACME", "domain": "acme.example", "adminName": "boss", "adminPass": "s3cret-pw"}


def _record(**changes: object) -> TenantRecord:
    values: dict[str, object] = {
        "id": "acme",
        "is_management": False,
        "status": TenantStatus.ACTIVE,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "admin_name": "boss",
    }
    values.update(changes)
    return TenantRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("good", ["a", "t12345678", "acme-corp_2", "a" * 62])
def test_tenant_ids_that_are_accepted(good: str) -> None:
    assert check_tenant_id(good) == good


@pytest.mark.parametrize(
    "bad",
    ["", "A", "1abc", "a/b", "a+b", "a#b", "a b", "a\0b", "a:b", "a" * 63, "é", "a.b", 7, None],
)
def test_tenant_ids_that_are_refused(bad: object) -> None:
    with pytest.raises(ValidationFailed, match="lowercase letter"):
        check_tenant_id(bad)


@given(st.text(max_size=80))
def test_every_accepted_tenant_id_is_a_control_field_and_a_topic_level(value: str) -> None:
    if is_tenant_id(value):
        # the plugin line builds (a single topic level, no NUL, bounded) and round-trips
        line = control.tenant(value, False)
        assert control.decode_field(line.split(" ")[1]) == value
        assert "/" not in value
        assert len(value) <= 62


@pytest.mark.parametrize("good", ["acme.example", "a", "x-1.b-2.c", "ACME.Example"])
def test_domains_that_are_accepted(good: str) -> None:
    assert check_domain(good) == good.lower()


@pytest.mark.parametrize(
    "bad", ["", "-a.b", "a-.b", "a..b", "a b", "a_b.c", "a/b", "x" * 64, "a." * 130, 3]
)
def test_domains_that_are_refused(bad: object) -> None:
    with pytest.raises(ValidationFailed, match="domain"):
        check_domain(bad)


def test_a_new_tenant_from_a_full_body() -> None:
    new = read_new_tenant(
        {**GOOD, "id": "acme", "adminEmail": "boss@acme.example", "contactPhone": "+48 123 456"}
    )
    assert (new.id, new.company, new.domain, new.admin_name) == (
        "acme",
        "ACME",
        "acme.example",
        "boss",
    )
    assert new.admin_password == "s3cret-pw"
    assert new.admin_email == "boss@acme.example"
    assert new.contact_phone == "+48 123 456"


def test_a_new_tenant_without_an_id_gets_one_later() -> None:
    assert read_new_tenant(GOOD).id is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"company": None}, "company is required"),
        ({"company": ""}, "company must be"),
        ({"company": "x" * 257}, "company must be"),
        ({"company": "a\nb"}, "control characters"),
        ({"domain": None}, "domain is required"),
        ({"adminName": None}, "adminName is required"),
        ({"adminName": "a/b"}, "userName must not hold"),
        ({"adminPass": None}, "adminPass is required"),
        ({"adminPass": "short"}, "adminPass must have"),
        ({"adminPass": "boss"}, "adminPass must have"),
        ({"adminEmail": "nope"}, "e-mail"),
        ({"contactPhone": "call me"}, "phone"),
        ({"status": "SUSPENDED"}, "a new tenant is ACTIVE"),
        ({"id": "Bad/Id"}, "lowercase letter"),
        ({"colour": "red"}, "unknown or unsupported fields: colour"),
    ],
)
def test_bad_create_bodies_say_what_is_wrong(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        read_new_tenant({**GOOD, **change})


def test_an_update_lists_only_what_it_changes() -> None:
    changes = read_tenant_changes({"company": "New", "contactName": None}, _record())
    assert changes.profile == (("company", "New"), ("contact_name", None))
    assert changes.status is None


@pytest.mark.parametrize("status", ["SUSPENDED", "ACTIVE"])
def test_status_suspends_and_reactivates(status: str) -> None:
    assert read_tenant_changes({"status": status}, _record()).status == TenantStatus(status)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": "GONE"}, "status must be ACTIVE or SUSPENDED"),
        ({"status": 1}, "status must be ACTIVE or SUSPENDED"),
        ({"id": "other"}, "id cannot change"),
        ({"adminPass": "short"}, "adminPass must have"),
        ({"adminPass": "BOSS"}, "adminPass must have"),
        ({"contact_phone": "+1 2"}, "unknown or unsupported fields: contact_phone"),
        ({"domain": "bad domain"}, "domain must be"),
    ],
)
def test_bad_updates_say_what_is_wrong(body: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        read_tenant_changes(body, _record())


def test_an_update_sets_the_admins_password_and_ignores_its_name() -> None:
    # Cumulocity: "updating adminPass and adminEmail updates these settings in the admin
    # user of the tenant. Updating adminName has no effect."
    changes = read_tenant_changes({"adminPass": "a new password", "adminName": "x"}, _record())
    assert changes.admin_password == "a new password"
    assert changes.profile == ()


def test_the_management_tenant_is_never_suspended_nor_deleted() -> None:
    management = _record(id="management", is_management=True)
    with pytest.raises(ValidationFailed, match="cannot be suspended"):
        read_tenant_changes({"status": "SUSPENDED"}, management)
    with pytest.raises(ValidationFailed, match="cannot be deleted"):
        check_deletion(management)
    check_deletion(_record())


def test_the_tenant_line_of_the_plugin() -> None:
    assert control.tenant("acme", False) == "tenant acme 0"
    assert control.tenant("acme", True) == "tenant acme 1"
    with pytest.raises(ValueError, match="single topic level"):
        control.tenant("a/b", False)
