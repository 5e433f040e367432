"""A subset of Cumulocity's inventory query language (``?query=`` / ``?q=``), read into a
tree that the database compiles to parameterised SQL and that :func:`matches` evaluates
in memory (the reference the SQL is tested against).

The subset, as Cumulocity writes it::

    [$filter=] expr
    expr    := term {"or" term}
    term    := factor {"and" factor}
    factor  := "not" "(" expr ")" | "(" expr ")" | "has" "(" path ")"
             | "bygroupid" "(" digits ")" | path ("eq" | "ne") value
    value   := 'text' ('' is a quote; * in it matches any text) | number | true | false
    path    := name {"." name}        (name: letters, digits, _ - $ @; not a digit first)

``id``, ``name``, ``type`` and ``owner`` are the managed object's own; any other path is
a fragment (``c8y_Profile.profileExecuted``). ``a ne v`` is ``not(a eq v)``: it matches
an object without ``a``. ``has(a.b)`` is true when ``a`` is an object holding ``b``.
``bygroupid(G)`` is true for the child assets of G (direct ones, as in Cumulocity).
Values compare by JSON type: ``'1'`` never equals the number 1, ``true`` only ``true``.
Paths do not reach into arrays. Anything else — other operators (``gt``, ``in`` …),
``$orderby`` — is refused with :class:`QueryError`, naming the position (from 1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import MAX_ID

#: Longest query accepted, in characters.
MAX_QUERY = 4096
#: Deepest nesting of parentheses and not().
MAX_NESTING = 32
#: Most comparisons, has() and bygroupid() in one query.
MAX_PREDICATES = 100
#: The managed object's own properties a path may name (the rest are fragments).
COLUMNS = ("id", "name", "type", "owner")

Value = str | int | float | bool
Op = Literal["eq", "ne"]


@dataclass(frozen=True, slots=True)
class Compare:
    path: tuple[str, ...]
    op: Op
    value: Value


@dataclass(frozen=True, slots=True)
class Has:
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ByGroup:
    group_id: int


@dataclass(frozen=True, slots=True)
class Not:
    term: Query


@dataclass(frozen=True, slots=True)
class And:
    terms: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Or:
    terms: tuple[Query, ...]


Query = Compare | Has | ByGroup | Not | And | Or


class QueryError(ValidationFailed):
    """A query outside the subset; ``position`` counts characters from 1."""

    def __init__(self, position: int, problem: str) -> None:
        super().__init__(f"query: at position {position}: {problem}")
        self.position = position


# --- reading ----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<string>'(?:[^']|'')*')
      | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_$@.\-]))
      | (?P<path>[A-Za-z_$@][A-Za-z0-9_$@\-]*(?:\.[A-Za-z0-9_$@\-]+)*)
      | (?P<punct>[(),])""",
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "eq", "ne", "has", "bygroupid", "true", "false"})
_UNSUPPORTED = frozenset({"gt", "ge", "lt", "le", "in", "hasany"})
_SUBSET = "eq, ne, has(), bygroupid(), and, or, not()"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # string, number, path, punct, end
    text: str
    at: int  # position from 1


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] == "'":
                raise QueryError(pos + 1, "a text value is not closed with '")
            raise QueryError(pos + 1, f"unexpected {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind == "path" and m.group() == "$orderby":
            raise QueryError(pos + 1, f"$orderby is not supported (the subset: {_SUBSET})")
        if kind != "space":
            found.append(_Token(kind, m.group(), pos + 1))
        pos = m.end()
    found.append(_Token("end", "", len(text) + 1))
    return found


class _Reader:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._i = 0
        self._depth = 0
        self.predicates = 0

    @property
    def next(self) -> _Token:
        return self._tokens[self._i]

    def take(self) -> _Token:
        token = self._tokens[self._i]
        self._i += 1
        return token

    def expect(self, text: str) -> _Token:
        token = self.take()
        if token.text != text or token.kind not in ("punct", "path"):
            raise QueryError(token.at, f"expected {text!r}, found {_shown(token)}")
        return token

    def keyword(self, word: str) -> bool:
        if self.next.kind == "path" and self.next.text == word:
            self._i += 1
            return True
        return False

    def expr(self) -> Query:
        terms = [self.term()]
        while self.keyword("or"):
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def term(self) -> Query:
        factors = [self.factor()]
        while self.keyword("and"):
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else And(tuple(factors))

    def factor(self) -> Query:
        token = self.next
        if token.kind == "punct" and token.text == "(":
            self.take()
            inner = self.nested(self.expr)
            self.expect(")")
            return inner
        if token.kind != "path":
            raise QueryError(token.at, f"expected a condition, found {_shown(token)}")
        if token.text == "not":
            self.take()
            self.expect("(")
            inner = self.nested(self.expr)
            self.expect(")")
            return Not(inner)
        if token.text in ("has", "bygroupid") and self._tokens[self._i + 1].text == "(":
            return self.function()
        return self.comparison()

    def nested(self, read: Callable[[], Query]) -> Query:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise QueryError(self.next.at, f"nested more than {MAX_NESTING} deep")
        try:
            return read()
        finally:
            self._depth -= 1

    def counted(self, at: int) -> None:
        self.predicates += 1
        if self.predicates > MAX_PREDICATES:
            raise QueryError(at, f"more than {MAX_PREDICATES} conditions")

    def function(self) -> Query:
        name = self.take()
        self.counted(name.at)
        self.expect("(")
        arg = self.take()
        if name.text == "has":
            result: Query = Has(_path(arg))
        else:
            if arg.kind != "number" or not arg.text.isdigit() or not 1 <= int(arg.text) <= MAX_ID:
                raise QueryError(arg.at, f"bygroupid takes a group id, not {_shown(arg)}")
            result = ByGroup(int(arg.text))
        self.expect(")")
        return result

    def comparison(self) -> Query:
        first = self.next
        self.counted(first.at)
        path = _path(self.take())
        op = self.take()
        if op.kind != "path" or op.text not in ("eq", "ne"):
            if op.kind == "path" and op.text in _UNSUPPORTED:
                raise QueryError(op.at, f"{op.text} is not supported (the subset: {_SUBSET})")
            raise QueryError(op.at, f"expected eq or ne after {'.'.join(path)}, found {_shown(op)}")
        value = _value(self.take())
        if path == ("id",) and not _is_id_value(value):
            raise QueryError(first.at, "id is compared with a managed object id")
        return Compare(path, "eq" if op.text == "eq" else "ne", value)


def _shown(token: _Token) -> str:
    return "the end of the query" if token.kind == "end" else repr(token.text)


def _path(token: _Token) -> tuple[str, ...]:
    if token.kind != "path" or token.text in _KEYWORDS:
        raise QueryError(token.at, f"expected a property or fragment, found {_shown(token)}")
    if token.text.startswith("$"):
        raise QueryError(token.at, f"{token.text} is not supported (the subset: {_SUBSET})")
    return tuple(token.text.split("."))


def _value(token: _Token) -> Value:
    if token.kind == "string":
        return token.text[1:-1].replace("''", "'")
    if token.kind == "number":
        number: int | float = json.loads(token.text)
        if isinstance(number, float) and number in (float("inf"), float("-inf")):
            raise QueryError(token.at, f"{token.text} is too large")
        return number
    if token.kind == "path" and token.text in ("true", "false"):
        return token.text == "true"
    raise QueryError(
        token.at, f"expected a value ('text', a number, true, false), found {_shown(token)}"
    )


def _is_id_value(value: Value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 1 <= value <= MAX_ID
    return (
        isinstance(value, str) and value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_ID
    )


def parse_query(text: str) -> Query:
    """The query in ``text`` (Cumulocity's ``$filter=`` prefix is optional), or
    :class:`QueryError` naming the position of what is wrong."""
    if len(text) > MAX_QUERY:
        raise QueryError(MAX_QUERY + 1, f"a query has at most {MAX_QUERY} characters")
    start = len(text) - len(text.lstrip())
    body = text
    if text[start:].startswith("$filter="):
        body = " " * (start + len("$filter=")) + text[start + len("$filter=") :]
    reader = _Reader(_tokens(body))
    if reader.next.kind == "end":
        raise QueryError(reader.next.at, "the query is empty")
    found = reader.expr()
    rest = reader.next
    if rest.kind != "end":
        raise QueryError(rest.at, f"expected and, or or the end, found {_shown(rest)}")
    return found


def all_of(*queries: Query | None) -> Query | None:
    """The conjunction of the given queries (None: no condition at all)."""
    present = tuple(q for q in queries if q is not None)
    if not present:
        return None
    return present[0] if len(present) == 1 else And(present)


# --- writing ----------------------------------------------------------------------------


def render(query: Query) -> str:
    """The query as text that :func:`parse_query` reads back to the same tree."""
    if isinstance(query, Compare):
        return f"{'.'.join(query.path)} {query.op} {_literal(query.value)}"
    if isinstance(query, Has):
        return f"has({'.'.join(query.path)})"
    if isinstance(query, ByGroup):
        return f"bygroupid({query.group_id})"
    if isinstance(query, Not):
        return f"not({render(query.term)})"
    glue = " and " if isinstance(query, And) else " or "
    return "(" + glue.join(render(t) for t in query.terms) + ")"


def _literal(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value)


# --- the reference meaning --------------------------------------------------------------

_MISSING = object()


@dataclass(frozen=True, slots=True)
class QueryTarget:
    """What a query reads of a managed object."""

    id: int
    name: str | None
    type: str | None
    owner: str | None
    fragments: Mapping[str, Any]


def _resolve(obj: QueryTarget, path: tuple[str, ...]) -> Any:
    if len(path) == 1 and path[0] in COLUMNS:
        found = getattr(obj, path[0])
        return _MISSING if found is None else found
    value: Any = obj.fragments
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def wildcard(pattern: str) -> re.Pattern[str]:
    """A text value with ``*`` as the pattern it stands for (nothing else is special)."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _equal(found: Any, value: Value) -> bool:
    if isinstance(value, bool):
        return isinstance(found, bool) and found == value
    if isinstance(value, str):
        if not isinstance(found, str):
            return False
        return found == value if "*" not in value else wildcard(value).fullmatch(found) is not None
    return isinstance(found, int | float) and not isinstance(found, bool) and found == value


def matches(query: Query, obj: QueryTarget, assets_of: Callable[[int], frozenset[int]]) -> bool:
    """Whether ``obj`` passes ``query``; ``assets_of(G)``: the ids of G's child assets."""
    if isinstance(query, Compare):
        found = _resolve(obj, query.path)
        if query.path == ("id",):
            hit = found == int(query.value)
        else:
            hit = found is not _MISSING and _equal(found, query.value)
        return hit if query.op == "eq" else not hit
    if isinstance(query, Has):
        return _resolve(obj, query.path) is not _MISSING
    if isinstance(query, ByGroup):
        return obj.id in assets_of(query.group_id)
    if isinstance(query, Not):
        return not matches(query.term, obj, assets_of)
    if isinstance(query, And):
        return all(matches(t, obj, assets_of) for t in query.terms)
    return any(matches(t, obj, assets_of) for t in query.terms)
