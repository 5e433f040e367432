"""Hypothesis strategies of inventory queries and of the managed objects they read, from
one small vocabulary so that random queries hit random objects."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from fleetgate.domain.inventory_query import And, ByGroup, Compare, Has, Not, Or, Query

KEYS = ["a", "b", "c8y_Profile", "x-y", "k$@"]
SUBKEYS = ["x", "profileName", "profileExecuted"]
TEXTS = ["", "x", "ab", "a'b", "1", "a*", "*b", "a%_\\", "x\ny", "é"]

paths = st.one_of(
    st.sampled_from([("name",), ("type",), ("owner",)]),
    st.sampled_from(KEYS).map(lambda k: (k,)),
    st.tuples(st.sampled_from(KEYS), st.sampled_from(SUBKEYS)),
)
values = st.one_of(
    st.sampled_from(TEXTS),
    st.integers(-3, 3),
    st.sampled_from([1.5, -0.5, 2.0]),
    st.booleans(),
)


def leaves(group_ids: list[int]) -> st.SearchStrategy[Query]:
    compare = st.builds(Compare, paths, st.sampled_from(["eq", "ne"]), values)
    by_id = st.builds(Compare, st.just(("id",)), st.sampled_from(["eq", "ne"]), st.integers(1, 50))
    has = st.builds(Has, paths)
    groups = st.sampled_from(group_ids).map(ByGroup) if group_ids else st.nothing()
    return st.one_of(compare, by_id, has, groups)


def queries(group_ids: list[int] = [1, 2]) -> st.SearchStrategy[Query]:  # noqa: B006
    return st.recursive(
        leaves(group_ids),
        lambda inner: st.one_of(
            st.builds(Not, inner),
            st.lists(inner, min_size=2, max_size=3).map(lambda t: And(tuple(t))),
            st.lists(inner, min_size=2, max_size=3).map(lambda t: Or(tuple(t))),
        ),
        max_leaves=8,
    )


_leaf_values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(TEXTS), st.integers(-3, 3), st.sampled_from([1.5, 2.0]), st.booleans(),
    st.none(), st.lists(st.sampled_from(TEXTS), max_size=2),
)  # fmt: skip
fragments = st.dictionaries(
    st.sampled_from(KEYS),
    st.one_of(_leaf_values, st.dictionaries(st.sampled_from(SUBKEYS), _leaf_values, max_size=3)),
    max_size=4,
).map(lambda d: {k: v for k, v in d.items() if v is not None})
texts_or_none = st.one_of(st.none(), st.sampled_from(TEXTS))
