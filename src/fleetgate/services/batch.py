"""Batch updates from a template: download a template for a device type, upload the
edited file (parsed, checked and staged; nothing changes), then confirm it (only the
valid records are applied, each in its own transaction, optimistically checked).

The rules are the domain's (:mod:`fleetgate.domain.batch`, :mod:`~fleetgate.domain.batch_file`);
``.xlsx`` is read and written through the :class:`~fleetgate.services.ports.Workbooks`
port, in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from fleetgate.domain.batch import (
    Invalid,
    Record,
    check_device,
    errmsg_text,
    parse_header,
    read_records,
)
from fleetgate.domain.batch_apply import StagedRecord, staged, template_rows
from fleetgate.domain.batch_file import Format, detect_format, read_csv, write_csv
from fleetgate.domain.batch_state import BatchState, Claim, NewBatch
from fleetgate.domain.errors import Conflict, NotFound, ValidationFailed
from fleetgate.domain.text import unstorable
from fleetgate.services.ports import BatchStore, Workbooks

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: How long an upload waits for its confirmation.
STAGED_FOR = timedelta(hours=1)
#: How long one confirmation holds a batch before another may take it over.
APPLY_LEASE = timedelta(minutes=5)
#: Devices looked up at once while checking an upload; records applied per round.
_CHUNK = 500
#: How long an expired or applied batch is still shown before it is purged.
_KEPT_AFTER = timedelta(days=1)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Template:
    file_name: str
    media_type: str
    content: bytes


def _not_found(batch_id: int) -> NotFound:
    return NotFound(f"Batch update {batch_id} not found", code="inventory/Not Found")


class BatchUpdates:
    def __init__(
        self,
        store: BatchStore,
        workbooks: Workbooks,
        clock: Clock = _now,
        *,
        staged_for: timedelta = STAGED_FOR,
    ) -> None:
        self._store = store
        self._workbooks = workbooks
        self._clock = clock
        self._staged_for = staged_for

    async def template(
        self, tenant_id: str, device_type: str, example_id: int | None, fmt: Format
    ) -> Template:
        """The template for ``device_type``: empty (the header only), or with the row of
        the device ``example_id``, which must be a device of that type."""
        _check_type(device_type)
        example = None
        if example_id is not None:
            found = (await self._store.devices(tenant_id, [example_id])).get(example_id)
            problem = check_device(Record(2, example_id, {}), found, device_type)
            if problem is not None:
                if found is None:
                    raise NotFound(
                        f"Managed object {example_id} not found", code="inventory/Not Found"
                    )
                raise ValidationFailed(f"deviceId: {problem.cause}")
            example = found
        rows = template_rows(example)
        if fmt is Format.XLSX:
            content = await asyncio.to_thread(self._workbooks.write, rows)
        else:
            content = write_csv(rows)
        return Template(f"Template_{_file_safe(device_type)}.{fmt.value}", fmt.media_type, content)

    async def stage(
        self,
        tenant_id: str,
        operator: str,
        device_type: str,
        file_name: str | None,
        data: bytes,
    ) -> BatchState:
        """Parse and check the upload and stage it; nothing is changed. Whole-file
        problems raise (415, 413, 422); each record is valid or has its problems."""
        _check_type(device_type)
        if file_name is not None:
            unusable = unstorable(file_name)
            if unusable is not None:
                raise ValidationFailed(f"the file part's file name {unusable}")
            file_name = file_name[:255]
        fmt = detect_format(data, file_name)
        if fmt is Format.XLSX:
            rows = await asyncio.to_thread(self._workbooks.read, data)
        else:
            rows = await asyncio.to_thread(read_csv, data)
        if not rows:
            raise ValidationFailed("the file is empty: its first row must name the columns")
        header = parse_header(rows[0])
        decided = list(read_records(header, rows[1:]))
        del rows
        if not decided:
            raise ValidationFailed(
                "the file has no records: give one device a row after the header"
            )
        invalid: list[Invalid] = []
        valid: list[StagedRecord] = []
        invalid_rows = 0
        records = iter(decided)
        while chunk := list(islice(records, _CHUNK)):
            wanted = [r.object_id for r in chunk if isinstance(r, Record)]
            found = await self._store.devices(tenant_id, wanted) if wanted else {}
            for record in chunk:
                if not isinstance(record, Record):
                    invalid.extend(record)
                    invalid_rows += 1
                    continue
                problem = check_device(record, found.get(record.object_id), device_type)
                if problem is not None:
                    invalid.append(problem)
                    invalid_rows += 1
                else:
                    valid.append(staged(record, found[record.object_id]))
        now = self._clock()
        await self._store.purge(now - _KEPT_AFTER)
        batch = NewBatch(
            tenant_id=tenant_id,
            device_type=device_type,
            file_name=file_name,
            created_by=operator,
            creation_time=now,
            expires_at=now + self._staged_for,
            records=len(decided),
            invalid_records=invalid_rows,
            invalid=sorted(invalid, key=lambda i: i.row),
            valid=valid,
        )
        batch_id = await self._store.save(batch)
        return await self.get(tenant_id, batch_id)

    async def get(self, tenant_id: str, batch_id: int) -> BatchState:
        found = await self._store.get(tenant_id, batch_id)
        if found is None:
            raise _not_found(batch_id)
        return found

    async def errmsg(self, tenant_id: str, batch_id: int) -> str:
        """``errmsg.txt``: the invalid records, a line per problem naming row and column."""
        return errmsg_text((await self.get(tenant_id, batch_id)).invalid)

    async def confirm(self, tenant_id: str, batch_id: int, operator: str) -> BatchState:
        """Apply the batch's valid records ("Update"), each atomically; a record whose
        device changed since the upload fails with the reason and changes nothing."""
        state = await self.get(tenant_id, batch_id)
        if state.valid_records == 0:
            raise ValidationFailed(
                f"batch update {batch_id} has no valid record: nothing to update"
            )
        claim = await self._store.claim(tenant_id, batch_id, operator, self._clock(), APPLY_LEASE)
        if claim is Claim.NOT_FOUND:
            raise _not_found(batch_id)
        if claim is Claim.EXPIRED:
            raise Conflict(
                f"batch update {batch_id} expired at {state.expires_at.isoformat()}: upload"
                " the file again",
                code="inventory/Conflict",
            )
        if claim is Claim.APPLIED:
            raise Conflict(f"batch update {batch_id} is applied already", code="inventory/Conflict")
        if claim is Claim.BUSY:
            raise Conflict(
                f"batch update {batch_id} is being applied by another request",
                code="inventory/Conflict",
            )
        while pending := await self._store.pending(batch_id, _CHUNK):
            for record in pending:
                await self._store.apply(tenant_id, batch_id, state.device_type, record)
        await self._store.finish(batch_id, self._clock())
        return await self.get(tenant_id, batch_id)

    async def discard(self, tenant_id: str, batch_id: int) -> None:
        state = await self.get(tenant_id, batch_id)
        if state.status == "APPLYING" or not await self._store.discard(tenant_id, batch_id):
            raise Conflict(f"batch update {batch_id} is being applied", code="inventory/Conflict")

    def now(self) -> datetime:
        return self._clock()


def _check_type(device_type: str) -> None:
    if not device_type or len(device_type) > 1000:
        raise ValidationFailed("type: give the device type (1 to 1000 characters)")


def _file_safe(text: str) -> str:
    """``text`` for a file name: letters, digits, ``-``, ``_`` and ``.`` kept, others ``_``."""
    kept = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in text)
    return kept[:100] or "devices"
