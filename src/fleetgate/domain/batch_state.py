"""Batch updates as they are kept between the upload and the confirmation: values only
(the rules are :mod:`fleetgate.domain.batch`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from fleetgate.domain.batch import Invalid
from fleetgate.domain.batch_apply import StagedRecord


class Outcome(StrEnum):
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    FAILED = "FAILED"


class Claim(StrEnum):
    """What came of trying to take a batch to apply it."""

    CLAIMED = "CLAIMED"
    NOT_FOUND = "NOT_FOUND"
    EXPIRED = "EXPIRED"
    APPLIED = "APPLIED"
    #: Another confirmation is applying it now.
    BUSY = "BUSY"


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    row: int
    object_id: int
    outcome: Outcome
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class NewBatch:
    """A checked upload, to be staged."""

    tenant_id: str
    device_type: str
    file_name: str | None
    created_by: str
    creation_time: datetime
    expires_at: datetime
    #: Every record of the file (valid and invalid).
    records: int
    invalid_records: int
    invalid: list[Invalid]
    valid: list[StagedRecord]


@dataclass(frozen=True, slots=True)
class BatchState:
    """A staged (or applied) batch as the API shows it."""

    id: int
    tenant_id: str
    device_type: str
    file_name: str | None
    created_by: str
    creation_time: datetime
    expires_at: datetime
    #: STAGED, APPLYING or APPLIED as stored; see :meth:`status_at`.
    status: str
    confirmed_by: str | None
    applied_at: datetime | None
    records: int
    invalid_records: int
    invalid: list[Invalid]
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    failures: list[RecordOutcome] = field(default_factory=list)

    @property
    def valid_records(self) -> int:
        return self.records - self.invalid_records

    def status_at(self, now: datetime) -> str:
        """STAGED, EXPIRED (staged and past its expiry), APPLYING or APPLIED."""
        if self.status == "STAGED" and self.expires_at <= now:
            return "EXPIRED"
        return self.status
