"""Batch updates: what a record does to its device, and the template (pure, stdlib only).

Applying (:func:`decide`) is optimistic: a staged record carries the values its columns
had when the file was uploaded (:func:`staged`), and fails when any of them changed
since, so that nobody's change is overwritten unseen; a column the record does not write
may change freely. The template (:func:`template_rows`) shows a device's current values
in the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetgate.domain.batch import EDITABLE, KEY, Column, Record, editable, shown
from fleetgate.domain.devices import ManagedObject


@dataclass(frozen=True, slots=True)
class StagedRecord:
    """A valid record as stored: its changes and what its columns held at the upload."""

    row: int
    object_id: int
    changes: dict[str, Any]
    before: dict[str, Any]


def current_value(obj: ManagedObject, column: Column) -> Any:
    """What ``column`` holds on ``obj`` now (None when absent)."""
    if column.name == "name":
        return obj.name
    if len(column.path) == 1:
        return obj.fragments.get(column.name)
    fragment, field = column.path
    held = obj.fragments.get(fragment)
    return held.get(field) if isinstance(held, dict) else None


def staged(record: Record, obj: ManagedObject) -> StagedRecord:
    """The record with its columns' values at the upload (the optimistic check's base)."""
    before = {name: current_value(obj, editable(name)) for name in record.changes}
    return StagedRecord(record.row, record.object_id, dict(record.changes), before)


@dataclass(frozen=True, slots=True)
class Update:
    """Write these: ``plain`` (``name``) and whole top-level fragments, merged."""

    plain: dict[str, Any]
    fragments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The device already holds every value of the record."""


@dataclass(frozen=True, slots=True)
class Refusal:
    cause: str


def decide(
    record: StagedRecord, obj: ManagedObject | None, device_type: str
) -> Update | Unchanged | Refusal:
    """What confirming ``record`` does to the device as it is now (locked by the caller)."""
    if obj is None or not obj.is_device:
        return Refusal(f"device {record.object_id} was deleted since the upload")
    if obj.type != device_type:
        return Refusal(
            f"device {record.object_id} is of type {shown(obj.type or '')} since the upload,"
            f" not {shown(device_type)}"
        )
    changed = [
        name
        for name in record.changes
        if current_value(obj, editable(name)) != record.before.get(name)
    ]
    if changed:
        return Refusal(
            "changed since the upload: "
            + "; ".join(
                f"{name} was {_value(record.before.get(name))}, is now"
                f" {_value(current_value(obj, editable(name)))}"
                for name in changed
            )
            + " (download a new template to see the current values)"
        )
    plain: dict[str, Any] = {}
    fragments: dict[str, Any] = {}
    for name, value in record.changes.items():
        column = editable(name)
        if current_value(obj, column) == value:
            continue
        if name == "name":
            plain["name"] = value
            continue
        if len(column.path) == 1:
            fragments[name] = value
            continue
        fragment, field = column.path
        if fragment not in fragments:
            held = obj.fragments.get(fragment)
            fragments[fragment] = dict(held) if isinstance(held, dict) else {}
        fragments[fragment][field] = value
    if not plain and not fragments:
        return Unchanged()
    return Update(plain, fragments)


def template_rows(example: ManagedObject | None) -> list[list[str | float | int]]:
    """The template: the header, and the example device's row when one is given."""
    rows: list[list[str | float | int]] = [[KEY, *(c.name for c in EDITABLE)]]
    if example is not None:
        row: list[str | float | int] = [str(example.id)]
        for column in EDITABLE:
            value = current_value(example, column)
            row.append(_cell_of(value))
        rows.append(row)
    return rows


def _cell_of(value: Any) -> str | float | int:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | str):
        return value
    return str(value)


def _value(value: Any) -> str:
    return "empty" if value is None else shown(str(value))
