"""The inventory query language: what it writes it reads back, and whatever the text, a
query or a QueryError naming a position inside it (never another exception)."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.inventory_query import MAX_QUERY, Query, QueryError, parse_query, render
from query_strategies import queries

_ALPHABET = st.sampled_from([*"()' ,.*$=-_09aednotqhsbygrupilfx", "eq", "ne", "and"])


@given(queries())
def test_a_rendered_query_reads_back_to_the_same_tree(query: Query) -> None:
    assert parse_query(render(query)) == query
    assert parse_query(f"$filter=({render(query)})") == query


@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_any_text_is_a_query_or_an_error_at_a_position_inside_it(text: str) -> None:
    position = None
    try:
        parse_query(text)
    except QueryError as exc:
        position = exc.position
        message = exc.message
    if position is not None:
        assert 1 <= position <= len(text) + 1
        assert f"at position {position}" in message


@given(st.text(max_size=60))
def test_arbitrary_unicode_never_escapes_as_another_error(text: str) -> None:
    with contextlib.suppress(QueryError):
        parse_query(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not(" * 40 + "a eq 1" + ")" * 40, "nested more than 32 deep"),
        (" and ".join(["a eq 1"] * 101), "more than 100 conditions"),
        ("a eq 1 " * (MAX_QUERY // 7 + 1), f"at most {MAX_QUERY} characters"),
        ("c8y_Profile.profileName eq 'x' $orderby=name", "at position 32: $orderby is not"),
        ("count gt 1", "at position 7: gt is not supported"),
        ("id eq 'abc'", "at position 1: id is compared with a managed object id"),
        ("bygroupid(0)", "at position 11: bygroupid takes a group id"),
        ("(a eq 1", "at position 8: expected ')'"),
        ("a eq 'x", "at position 6: a text value is not closed"),
    ],
)
def test_refusals_name_the_position_and_the_rule(text: str, problem: str) -> None:
    with pytest.raises(QueryError, match=re.escape(problem)):
        parse_query(text)
