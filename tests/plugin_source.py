"""The broker plugin's C source, read by the tests that hold it and the Python side together.

The plugin cannot import Python, so the names both sides use (topics, the control
protocol's words, the device id rule) are written in C as well; tests read them from
``broker/`` and compare them with their Python owners.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

BROKER = Path(__file__).parents[1] / "broker"
#: The header that holds the plugin's constants.
HEADER = "fleetgate.h"

_DEFINE = re.compile(r"^#define (\w+)[ \t]+(.+)$", re.MULTILINE)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|/\*.*?\*/|\w+|\S')


def source(name: str) -> str:
    """The text of ``broker/<name>``."""
    return (BROKER / name).read_text()


def defines(name: str = HEADER) -> dict[str, str | int]:
    """The object-like ``#define``s of ``broker/<name>`` whose value is a decimal integer
    (an int) or a string: string literals and earlier string macros, side by side, are
    joined as the compiler joins them. Others (expressions) are left out."""
    found: dict[str, str | int] = {}
    for match in _DEFINE.finditer(source(name)):
        tokens = [t for t in _TOKEN.findall(match.group(2)) if not t.startswith("/*")]
        value = _value(tokens, found)
        if value is not None:
            found[match.group(1)] = value
    return found


def _value(tokens: list[str], known: dict[str, str | int]) -> str | int | None:
    if len(tokens) == 1 and tokens[0].isdigit():
        return int(tokens[0])
    parts: list[str] = []
    for token in tokens:
        if token.startswith('"'):
            parts.append(ast.literal_eval(token))
        elif isinstance(known.get(token), str):
            parts.append(str(known[token]))
        else:
            return None
    return "".join(parts) if parts else None
