"""Properties of the bulk credentials CSV reader: it never crashes, and what a CSV writer
writes with any of the three separators reads back as the same rows."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgate.domain.bulk import DeviceRow, RowFailure
from fleetgate.domain.bulk_file import SEPARATORS, BulkFile
from fleetgate.domain.errors import ValidationFailed

from strategies import device_ids

HEADER = ["ID", "CREDENTIALS", "TYPE", "NAME", "ICCID", "PATH"]

passwords = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!;,\"'",
    min_size=8,
    max_size=32,
).filter(lambda s: not s.isdigit())
free_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20
).filter(lambda s: "\r" not in s and "\x00" not in s)
group_names = st.text(alphabet='abc xyz;,\t"', min_size=1, max_size=8).filter(
    lambda s: s.strip() != ""
)


@settings(max_examples=300)
@given(
    header=st.sampled_from([b"", b"ID;CREDENTIALS\n", b"\xef\xbb\xbfid,credentials,tenant\r\n"]),
    data=st.binary(max_size=2000),
    management=st.booleans(),
)
def test_any_bytes_give_rows_or_a_domain_error(
    header: bytes, data: bytes, management: bool
) -> None:
    try:
        bulk = BulkFile(io.BytesIO(header + data), management=management)
    except ValidationFailed as exc:
        message = exc.message
    else:
        for row in bulk:
            assert isinstance(row, DeviceRow | RowFailure)
            if isinstance(row, RowFailure):
                # Safe to put in the JSON answer: no lone surrogates.
                row.reason.encode("utf-8")
                row.text.encode("utf-8")
                (row.device_id or "").encode("utf-8")
        return
    assert message


@settings(max_examples=200)
@given(
    separator=st.sampled_from(SEPARATORS),
    records=st.lists(
        st.tuples(
            device_ids,
            passwords,
            free_text,
            free_text,
            free_text,
            st.lists(group_names, max_size=3),
        ),
        min_size=1,
        max_size=8,
        unique_by=lambda r: r[0],
    ),
    crlf=st.booleans(),
)
def test_rows_written_by_a_csv_writer_read_back(
    separator: str,
    records: list[tuple[str, str, str, str, str, list[str]]],
    crlf: bool,
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=separator, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(HEADER)
    for device_id, password, type_, name, iccid, path in records:
        writer.writerow([device_id, password, type_, name, iccid, "/".join(path)])
    rows = list(BulkFile(io.BytesIO(out.getvalue().encode("utf-8")), management=False))
    assert len(rows) == len(records)
    for row, (device_id, password, type_, name, iccid, path) in zip(rows, records, strict=True):
        assert isinstance(row, DeviceRow), row
        assert (row.device_id, row.password) == (device_id, password)
        assert (row.type, row.name, row.iccid) == (type_ or None, name or None, iccid or None)
        assert row.path == tuple(path)
