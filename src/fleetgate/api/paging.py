"""Cumulocity's paging: ``pageSize``, ``currentPage``, ``withTotalPages``,
``withTotalElements``, and the ``statistics`` / ``next`` / ``prev`` of every collection.

Either ``withTotal…`` flag makes the collection count its elements: ``statistics`` then
holds ``totalElements`` (both flags) and ``totalPages`` (``withTotalPages``).

Where Cumulocity is silent: ``pageSize`` above 2000 or below 1 and ``currentPage`` below 1
are a 422 (Cumulocity clamps silently; a clear error is kinder to scripts that would
otherwise miss data), ``next`` is given only when the page is full.

:func:`parse_page` is the one reader of these parameters: ASCII digits only, and
``currentPage`` at most :data:`MAX_CURRENT_PAGE`, so that the row offset always fits
PostgreSQL's bigint (``currentPage=9223372036854775807`` overflowed it: a 500).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request
from pydantic import WithJsonSchema

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import is_ascii_digits

DEFAULT_PAGE_SIZE = 5
MAX_PAGE_SIZE = 2000
#: The last page anyone can ask for: its offset, (page - 1) * MAX_PAGE_SIZE, stays far
#: below 2^63 - 1, the largest OFFSET PostgreSQL takes.
MAX_CURRENT_PAGE = 10**12


@dataclass(frozen=True, slots=True)
class Page:
    size: int
    current: int
    with_total_pages: bool
    with_total_elements: bool = False

    @property
    def counts(self) -> bool:
        """True when the collection must be counted (either ``withTotal…`` flag)."""
        return self.with_total_pages or self.with_total_elements

    @property
    def offset(self) -> int:
        return (self.current - 1) * self.size

    def collection(
        self,
        request: Request,
        base_url: str,
        key: str,
        items: list[Any],
        total: int | None = None,
    ) -> dict[str, Any]:
        """The collection body: ``self``, the items under ``key``, statistics and links."""
        statistics: dict[str, Any] = {"currentPage": self.current, "pageSize": self.size}
        if self.with_total_pages and total is not None:
            statistics["totalPages"] = max(1, -(-total // self.size))
        if self.counts and total is not None:
            statistics["totalElements"] = total
        body: dict[str, Any] = {
            "self": self._link(request, base_url, self.current),
            key: items,
            "statistics": statistics,
        }
        if len(items) >= self.size:
            body["next"] = self._link(request, base_url, self.current + 1)
        if self.current > 1:
            body["prev"] = self._link(request, base_url, self.current - 1)
        return body

    def _link(self, request: Request, base_url: str, page: int) -> str:
        params = dict(request.query_params)
        params["pageSize"] = str(self.size)
        params["currentPage"] = str(page)
        return f"{base_url}{request.url.path}?{urlencode(params)}"


def parse_page(
    page_size: str | None,
    current_page: str | None,
    with_total_pages: str | None,
    with_total_elements: str | None = None,
) -> Page:
    """The page that the raw query values ask for (None: not given), or ValidationFailed."""
    size = _whole_number("pageSize", page_size, DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    current = _whole_number("currentPage", current_page, 1, 1, MAX_CURRENT_PAGE)
    return Page(
        size,
        current,
        _flag("withTotalPages", with_total_pages),
        _flag("withTotalElements", with_total_elements),
    )


def _flag(name: str, raw: str | None) -> bool:
    if raw is None or raw.lower() in ("true", "false"):
        return (raw or "").lower() == "true"
    raise ValidationFailed(f"{name} must be true or false, not {raw[:40]!r}")


def _whole_number(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    digits = raw.lstrip("0") or "0"
    if not is_ascii_digits(raw) or len(digits) > len(str(high)) or not low <= int(digits) <= high:
        raise ValidationFailed(f"{name} must be a whole number from {low} to {high}")
    return int(digits)


def _shown_as(schema: dict[str, Any]) -> Any:
    # Read as text and parsed by parse_page; the OpenAPI schema says what is accepted.
    return WithJsonSchema(schema)


def paging(
    page_size: Annotated[
        str | None,
        _shown_as({"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}),
        Query(alias="pageSize"),
    ] = None,
    current_page: Annotated[
        str | None,
        _shown_as({"type": "integer", "minimum": 1, "maximum": MAX_CURRENT_PAGE}),
        Query(alias="currentPage"),
    ] = None,
    with_total_pages: Annotated[
        str | None, _shown_as({"type": "boolean"}), Query(alias="withTotalPages")
    ] = None,
    with_total_elements: Annotated[
        str | None, _shown_as({"type": "boolean"}), Query(alias="withTotalElements")
    ] = None,
) -> Page:
    """FastAPI dependency reading the paging parameters (see :func:`parse_page`)."""
    return parse_page(page_size, current_page, with_total_pages, with_total_elements)
