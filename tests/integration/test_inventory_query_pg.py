"""Inventory queries on PostgreSQL mean what the reference evaluator says: random queries
over random managed objects (and two groups) find exactly the objects
:func:`~fleetgate.domain.inventory_query.matches` accepts."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgate.db.inventory import PgInventory
from fleetgate.db.inventory_query import compile_query
from fleetgate.domain.inventory import ObjectFilter
from fleetgate.domain.inventory_query import Query, QueryTarget, matches, parse_query
from query_strategies import KEYS, SUBKEYS, TEXTS, queries

from conftest import seed_tenants

pytestmark = pytest.mark.integration


def _random_object(rng: random.Random) -> tuple[str | None, str | None, str | None, dict[str, Any]]:
    """(name, type, owner, fragments) from the vocabulary the queries use."""

    def leaf() -> Any:
        return rng.choice([*TEXTS, -1, 0, 1, 2, 1.5, 2.0, True, False, None, ["x", "ab"]])

    def text() -> str | None:
        return rng.choice([None, *TEXTS])

    frags: dict[str, Any] = {}
    for key in rng.sample(KEYS, rng.randint(0, len(KEYS))):
        frags[key] = (
            {k: leaf() for k in rng.sample(SUBKEYS, rng.randint(0, 3))}
            if rng.random() < 0.5
            else leaf()
        )
    return text(), text(), text(), {k: v for k, v in frags.items() if v is not None}


@pytest.fixture
async def world(
    pool: asyncpg.Pool,
) -> tuple[asyncpg.Pool, list[QueryTarget], dict[int, frozenset[int]]]:
    """40 random objects in t1 (and one in t2 that no query may find), two groups."""
    await seed_tenants(pool, "t1", "t2")
    inventory = PgInventory(pool)
    rows = [_random_object(random.Random(seed)) for seed in range(40)]
    targets: list[QueryTarget] = []
    for name, type_, owner, frags in rows:
        made = await inventory.create("t1", name=name, type=type_, owner=owner, fragments=frags)
        targets.append(QueryTarget(made.id, made.name, made.type, made.owner, made.fragments))
    await inventory.create("t2", name="x", type="x", owner="x", fragments={"a": "x"})
    groups: dict[int, frozenset[int]] = {}
    for n, members in enumerate((targets[:10], targets[5:20])):
        group = await inventory.create(
            "t1",
            name=f"g{n}",
            type="c8y_DeviceGroup",
            owner=None,
            fragments={"c8y_IsDeviceGroup": {}},
        )
        for member in members:
            assert await inventory.add_child("t1", group.id, "childAssets", member.id)
        groups[group.id] = frozenset(m.id for m in members)
        targets.append(QueryTarget(group.id, group.name, group.type, None, group.fragments))
    return pool, targets, groups


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_sql_finds_what_the_reference_evaluator_accepts(
    world: tuple[asyncpg.Pool, list[QueryTarget], dict[int, frozenset[int]]], data: st.DataObject
) -> None:
    pool, targets, groups = world
    query: Query = data.draw(queries([*sorted(groups), 10**12]))
    expected = sorted(
        t.id for t in targets if matches(query, t, lambda g: groups.get(g, frozenset()))
    )
    args: list[Any] = ["t1"]
    sql = compile_query(query, args)
    rows = await pool.fetch(
        f"SELECT id FROM managed_object WHERE tenant_id = $1 AND {sql} ORDER BY id",  # noqa: S608
        *args,
    )
    assert [r["id"] for r in rows] == expected, (query, sql, args)


async def test_values_are_parameters_never_sql_text(pool: asyncpg.Pool) -> None:
    await seed_tenants(pool, "t1")
    inventory = PgInventory(pool)
    made = await inventory.create(
        "t1",
        name="x'; DROP TABLE managed_object; --",
        type=None,
        owner=None,
        fragments={"c8y_Profile": {"profileName": "p'1", "profileExecuted": True}},
    )
    query = parse_query(
        "$filter=(name eq 'x''; DROP TABLE managed_object; --' and"
        " c8y_Profile.profileName eq 'p''1' and not(c8y_Profile.profileExecuted eq false))"
    )
    args: list[Any] = []
    sql = compile_query(query, args)
    assert "DROP" not in sql
    assert "p'1" not in sql
    assert "p'1" in args
    found = await inventory.find("t1", ObjectFilter(query=query), 0, 10)
    assert [o.id for o in found] == [made.id]
