"""Cumulocity's paging: ``pageSize``, ``currentPage``, ``withTotalPages``, and the
``statistics`` / ``next`` / ``prev`` of every collection.

Where Cumulocity is silent: ``pageSize`` above 2000 or below 1 and ``currentPage`` below 1
are a 422 (Cumulocity clamps silently; a clear error is kinder to scripts that would
otherwise miss data), ``next`` is given only when the page is full.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request

from fleetgate.domain.errors import ValidationFailed

DEFAULT_PAGE_SIZE = 5
MAX_PAGE_SIZE = 2000


@dataclass(frozen=True, slots=True)
class Page:
    size: int
    current: int
    with_total_pages: bool

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


def paging(
    page_size: Annotated[int, Query(alias="pageSize")] = DEFAULT_PAGE_SIZE,
    current_page: Annotated[int, Query(alias="currentPage")] = 1,
    with_total_pages: Annotated[bool, Query(alias="withTotalPages")] = False,
) -> Page:
    """FastAPI dependency reading the paging parameters."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationFailed(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
    if current_page < 1:
        raise ValidationFailed("currentPage must be 1 or more")
    return Page(page_size, current_page, with_total_pages)
