"""Tenant bodies from anywhere: any JSON object is either a valid tenant (or change) or a
ValidationFailed, never another exception; what is accepted holds to the rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.tenants import (
    MAX_COMPANY,
    TenantRecord,
    TenantStatus,
    is_tenant_id,
    read_new_tenant,
    read_tenant_changes,
)

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=300)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_keys = st.sampled_from(
    [
        "id",
        "company",
        "domain",
        "adminName",
        "adminPass",
        "adminEmail",
        "contactName",
        "contactPhone",
        "status",
        "self",
        "other",
    ]
)
_good = {"company": "ACME", "domain": "acme.example", "adminName": "boss", "adminPass": "pw-123456"}
bodies = st.one_of(
    st.dictionaries(_keys, _values, max_size=9),
    st.dictionaries(_keys, _values, max_size=3).map(lambda extra: {**_good, **extra}),
)
CURRENT = TenantRecord(
    "acme", False, TenantStatus.ACTIVE, datetime(2026, 1, 1, tzinfo=UTC), admin_name="boss"
)


T = TypeVar("T")


def outcome(parse: Callable[..., T], *raw: object) -> T | ValidationFailed:
    """What ``parse`` makes of ``raw``: its value or its refusal; anything else raises."""
    try:
        return parse(*raw)
    except ValidationFailed as refused:
        return refused


@given(bodies)
def test_a_create_body_is_a_tenant_or_a_validation_error(body: dict[str, Any]) -> None:
    new = outcome(read_new_tenant, body)
    if isinstance(new, ValidationFailed):
        assert new.message
        return
    assert new.id is None or is_tenant_id(new.id)
    assert 0 < len(new.company) <= MAX_COMPANY
    assert "\0" not in new.company + new.domain + new.admin_name + new.admin_password


@given(bodies)
def test_an_update_body_is_a_change_or_a_validation_error(body: dict[str, Any]) -> None:
    changes = outcome(read_tenant_changes, body, CURRENT)
    if isinstance(changes, ValidationFailed):
        assert changes.message
        return
    assert changes.status in (None, TenantStatus.ACTIVE, TenantStatus.SUSPENDED)
    for name, value in changes.profile:
        assert value is None or (isinstance(value, str) and "\0" not in value), name
