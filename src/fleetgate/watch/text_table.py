"""Plain tables for the operator commands' lists, and the exit status of an error.

Pure. A table is a header row and rows of cells, each column as wide as its widest cell
(in terminal cells: :func:`~fleetgate.watch.render.cell_width`), columns two spaces apart,
no trailing blanks. Cells come from the API (names, types a device chose): every control
character is shown as a space (:func:`~fleetgate.watch.render.inert`) so that a name
cannot move the cursor. An empty list prints its header and nothing else.

Exit statuses (docs/decisions/0021-operator-cli.md): 0 done; 1 refused for another
reason (the API's 400/422, an answer we cannot read); 2 usage (argparse's own, and
flags or a stack file that cannot work); 3 not found; 4 not allowed (401, 403);
5 conflict (409); 6 unavailable (unreachable, 5xx, 408, 429); 7 not everything succeeded
(the request was taken, some or all of its items failed: ``credentials import`` rows,
``ops bulk create --wait`` ending FAILED or CANCELED).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fleetgate.domain.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigurationError,
    Conflict,
    FleetgateError,
    NotFound,
    ServiceUnavailable,
)
from fleetgate.watch.render import SEPARATOR, cell_width, inert

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_NOT_ALLOWED = 4
EXIT_CONFLICT = 5
EXIT_UNAVAILABLE = 6
EXIT_PARTLY_FAILED = 7


class PartlyFailed(FleetgateError):
    """The API took the request, and some or all of its items failed (the report is printed)."""


def exit_status(error: FleetgateError) -> int:
    """The exit status a script reads for ``error`` (see the module's table)."""
    # Imported here: the client imports httpx, which a pure test of this need not load.
    from fleetgate.watch.client import ApiUnavailable

    if isinstance(error, ConfigurationError):
        return EXIT_USAGE
    if isinstance(error, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(error, AuthenticationFailed | AccessDenied):
        return EXIT_NOT_ALLOWED
    if isinstance(error, Conflict):
        return EXIT_CONFLICT
    if isinstance(error, ApiUnavailable | ServiceUnavailable):
        return EXIT_UNAVAILABLE
    if isinstance(error, PartlyFailed):
        return EXIT_PARTLY_FAILED
    return EXIT_FAILED


def text(value: Any) -> str:
    """A JSON value as a cell: nothing for null, ``yes``/``no`` for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return inert(str(value))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a table: the header, then one line per row."""
    cells = [[inert(h) for h in headers]] + [
        [text(cell) for cell in row] + [""] * (len(headers) - len(row)) for row in rows
    ]
    widths = [max(cell_width(line[i]) for line in cells) for i in range(len(headers))]
    lines = []
    for line in cells:
        padded = [cell + " " * (widths[i] - cell_width(cell)) for i, cell in enumerate(line)]
        lines.append(SEPARATOR.join(padded).rstrip())
    return lines


def pick(body: Mapping[str, Any], path: str) -> Any:
    """``body``'s value at a dotted ``path`` (``fleetgate_Lifecycle.status``); None if absent."""
    value: Any = body
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value
