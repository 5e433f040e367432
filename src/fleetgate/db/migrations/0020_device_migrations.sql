-- Moving a device (a gateway with or without its children) from one tenant to another,
-- confirmed by a one-time verification code that only the target tenant's administrators
-- can read (docs/api.md "Device migrations", decision 0014). Every bit of a migration's
-- state is here: any service instance may answer any step, under the row's lock.
--
-- Only the code's hash is kept (code_hash, scrypt as passwords are); the code itself is
-- shown once, to the target's administrator who asks for it. A REQUESTED migration whose
-- expires_at has passed is EXPIRED whatever its stored status says: readers compute it,
-- writers store it when they next touch the row.
CREATE TABLE device_migration (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_tenant    text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    target_tenant    text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    CHECK (source_tenant <> target_tenant),
    -- The device's managed object (NULL once deleted) and its device id (c8y_Serial).
    object_id        bigint REFERENCES managed_object (id) ON DELETE SET NULL,
    device_id        text NOT NULL CHECK (length(device_id) BETWEEN 1 AND 128),
    with_children    boolean NOT NULL,
    status           text NOT NULL DEFAULT 'REQUESTED'
                     CHECK (status IN ('REQUESTED', 'CONFIRMED', 'EXPIRED', 'EXHAUSTED',
                                       'CANCELLED')),
    requested_by     text NOT NULL,
    requested_at     timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    code_hash        text,
    code_issued_at   timestamptz,
    code_issued_to   text,
    CHECK ((code_hash IS NULL) = (code_issued_at IS NULL)),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer NOT NULL CHECK (max_attempts > 0),
    finished_at      timestamptz,
    finished_by      text,
    CHECK ((status = 'REQUESTED') = (finished_at IS NULL)),
    -- The device ids that moved (CONFIRMED), the gateway first.
    moved            text[] NOT NULL DEFAULT '{}'
);

CREATE INDEX device_migration_source ON device_migration (source_tenant, id);
CREATE INDEX device_migration_target ON device_migration (target_tenant, id);
-- One open request per device at a time (an expired one is closed by the next request).
CREATE UNIQUE INDEX device_migration_one_open
    ON device_migration (object_id) WHERE status = 'REQUESTED';
