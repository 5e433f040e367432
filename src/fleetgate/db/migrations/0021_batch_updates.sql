-- Batch updates from a template (fleetgate.domain.batch): an upload is parsed and
-- checked, then staged here until an operator confirms it, so that any service instance
-- can confirm it; it expires at expires_at. Confirming claims the batch (status
-- APPLYING, claimed_until a lease: an instance that died while applying leaves it to be
-- confirmed again), then applies each record in its own transaction with its outcome,
-- so that a second confirmation goes on where the first stopped.
CREATE TABLE batch_update (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    device_type    text NOT NULL,
    file_name      text,
    created_by     text NOT NULL,
    creation_time  timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    status         text NOT NULL DEFAULT 'STAGED'
                   CHECK (status IN ('STAGED', 'APPLYING', 'APPLIED')),
    claimed_until  timestamptz,
    confirmed_by   text,
    applied_at     timestamptz,
    records        integer NOT NULL CHECK (records >= 0),
    invalid_records integer NOT NULL CHECK (invalid_records >= 0),
    -- Every problem of the invalid records: [{"row", "column", "cause"}], by row.
    invalid        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(invalid) = 'array')
);

CREATE INDEX batch_update_tenant ON batch_update (tenant_id, id);
CREATE INDEX batch_update_expiry ON batch_update (expires_at);

CREATE TABLE batch_update_record (
    batch_id          bigint NOT NULL REFERENCES batch_update (id) ON DELETE CASCADE,
    row_number        integer NOT NULL,
    managed_object_id bigint NOT NULL,
    -- Column → new value, and column → its value at the upload (the optimistic check).
    changes           jsonb NOT NULL,
    before            jsonb NOT NULL,
    -- NULL until confirmed: UPDATED, UNCHANGED or FAILED (with its cause).
    outcome           text CHECK (outcome IN ('UPDATED', 'UNCHANGED', 'FAILED')),
    cause             text,
    PRIMARY KEY (batch_id, row_number)
);
