"""Inventory queries (:mod:`fleetgate.domain.inventory_query`) as SQL over
``managed_object``: every value, path and id a query holds is a parameter, never text
pasted into the statement; every condition is true or false, never NULL, so that
``not()`` means what :func:`~fleetgate.domain.inventory_query.matches` says.
"""

from __future__ import annotations

import json
from typing import Any

from fleetgate.domain.inventory_query import (
    COLUMNS,
    And,
    ByGroup,
    Compare,
    Has,
    Not,
    Or,
    Query,
    Value,
)


def compile_query(query: Query, args: list[Any], alias: str = "") -> str:
    """A boolean SQL expression over the managed object ``alias`` (``""``: unqualified
    columns of ``managed_object``) for ``query``; its parameters are appended to ``args``
    (numbered after what ``args`` holds)."""
    prefix = f"{alias}." if alias else ""

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    def sql(q: Query) -> str:
        if isinstance(q, Compare):
            found = _compare(q, prefix, param)
            return found if q.op == "eq" else f"NOT {found}"
        if isinstance(q, Has):
            return _has(q.path, prefix, param)
        if isinstance(q, ByGroup):
            return (
                f"{prefix}id IN (SELECT g.child_id FROM managed_object_child g"  # noqa: S608
                f" WHERE g.parent_id = {param(q.group_id)} AND g.kind = 'childAssets')"
            )  # parameters only: the query's values never reach the text
        if isinstance(q, Not):
            return f"NOT ({sql(q.term)})"
        glue = " AND " if isinstance(q, And) else " OR "
        assert isinstance(q, And | Or)
        return "(" + glue.join(sql(t) for t in q.terms) + ")"

    return sql(query)


def _has(path: tuple[str, ...], prefix: str, param: Any) -> str:
    if len(path) == 1 and path[0] in COLUMNS:
        return f"({prefix}{path[0]} IS NOT NULL)"
    if len(path) == 1:
        return f"({prefix}fragments ? {param(path[0])})"
    parent = f"{prefix}fragments #> {param(list(path[:-1]))}::text[]"
    return f"COALESCE(jsonb_typeof({parent}) = 'object' AND ({parent}) ? {param(path[-1])}, false)"


def _compare(q: Compare, prefix: str, param: Any) -> str:
    """``eq``, never NULL."""
    value: Value = q.value
    if q.path == ("id",):
        return f"({prefix}id = {param(int(value))})"
    if len(q.path) == 1 and q.path[0] in COLUMNS:
        column = f"{prefix}{q.path[0]}"
        if not isinstance(value, str):
            return "false"  # name, type and owner are text
        return f"COALESCE({_text_match(column, value, param)}, false)"
    at = f"{prefix}fragments #> {param(list(q.path))}::text[]"
    if isinstance(value, str):
        text = f"{prefix}fragments #>> {param(list(q.path))}::text[]"
        return (
            f"COALESCE(jsonb_typeof({at}) = 'string' AND {_text_match(text, value, param)}, false)"
        )
    if isinstance(value, bool):
        return f"COALESCE({at} = {param(json.dumps(value))}::jsonb, false)"
    return (
        f"COALESCE(jsonb_typeof({at}) = 'number' AND {at} = {param(json.dumps(value))}::jsonb,"
        " false)"
    )


def _text_match(expression: str, value: str, param: Any) -> str:
    if "*" not in value:
        return f"{expression} = {param(value)}"
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{expression} LIKE {param(escaped.replace('*', '%'))} ESCAPE '\\'"
