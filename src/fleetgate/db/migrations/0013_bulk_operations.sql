-- Bulk operations and staged rollouts (docs/api.md "Bulk operations", decision 0010).
--
-- A bulk operation sends one operation prototype to the devices of a group (or to the
-- devices whose operation failed in an earlier one). Its targets are fixed when it is
-- created, one row each, and every bit of the rollout's state lives here: any service
-- instance's scheduler may take the next step of any bulk operation, under its row lock.

CREATE TABLE bulk_operation (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    group_id          bigint,
    failed_parent_id  bigint,
    CHECK (num_nonnulls(group_id, failed_parent_id) = 1),
    start_date        timestamptz NOT NULL,
    creation_ramp     double precision NOT NULL CHECK (creation_ramp >= 0),
    prototype         jsonb NOT NULL CHECK (jsonb_typeof(prototype) = 'object'),
    note              text,
    -- fleetgate_Rollout as given (normalised), NULL when there is none.
    rollout           jsonb,
    status            text NOT NULL DEFAULT 'ACTIVE'
                      CHECK (status IN ('ACTIVE', 'IN_PROGRESS', 'COMPLETED', 'DELETED')),
    -- Why creation is paused (NULL: it is not) or why it was cancelled.
    paused_reason     text,
    cancel_reason     text,
    canary_passed     boolean NOT NULL DEFAULT false,
    -- Counts, kept as operations change (folded from bulk_operation_change, below):
    -- targets, devices that got a first operation, devices skipped (refused), retries
    -- made, and the latest operation of each device by status.
    targets           integer NOT NULL DEFAULT 0,
    created           integer NOT NULL DEFAULT 0,
    skipped           integer NOT NULL DEFAULT 0,
    retried           integer NOT NULL DEFAULT 0,
    pending           integer NOT NULL DEFAULT 0,
    executing         integer NOT NULL DEFAULT 0,
    successful        integer NOT NULL DEFAULT 0,
    failed            integer NOT NULL DEFAULT 0,
    timed_out         integer NOT NULL DEFAULT 0,
    -- The counts an operator's resume started from: abort criteria look at what
    -- finished after it.
    baseline          jsonb NOT NULL DEFAULT '{}',
    -- Rate limiting across instances: no operation is created before next_creation_at.
    next_creation_at  timestamptz NOT NULL,
    -- When a scheduler next looks at it; settled: nothing will change any more.
    next_step_at      timestamptz NOT NULL,
    settled           boolean NOT NULL DEFAULT false,
    creation_time     timestamptz NOT NULL DEFAULT now(),
    last_updated      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX bulk_operation_tenant ON bulk_operation (tenant_id, id);
CREATE INDEX bulk_operation_due ON bulk_operation (next_step_at) WHERE NOT settled;

-- One row per device of a bulk operation, in the order operations are created.
-- state: WAITING (no operation yet), CREATED (operation_id is its latest), SKIPPED
-- (refused with reason, never sent), CANCELED (the bulk operation was cancelled first).
CREATE TABLE bulk_operation_target (
    bulk_operation_id bigint NOT NULL REFERENCES bulk_operation (id) ON DELETE CASCADE,
    device_id         bigint NOT NULL REFERENCES managed_object (id) ON DELETE CASCADE,
    position          integer NOT NULL,
    canary            boolean NOT NULL DEFAULT false,
    state             text NOT NULL DEFAULT 'WAITING'
                      CHECK (state IN ('WAITING', 'CREATED', 'SKIPPED', 'CANCELED')),
    attempts          integer NOT NULL DEFAULT 0,
    operation_id      bigint,
    reason            text,
    PRIMARY KEY (bulk_operation_id, device_id)
);

CREATE INDEX bulk_operation_target_waiting
    ON bulk_operation_target (bulk_operation_id, canary DESC, position)
    WHERE state = 'WAITING';
CREATE INDEX bulk_operation_target_operation ON bulk_operation_target (operation_id);

-- Which attempt of its bulk operation an operation is (1, then one more per retry). No
-- device can get a second operation of one attempt of one bulk operation: not after a
-- crash, not from two schedulers at once.
ALTER TABLE operation ADD COLUMN bulk_attempt integer;
ALTER TABLE operation ADD CHECK ((bulk_operation_id IS NULL) = (bulk_attempt IS NULL));
CREATE UNIQUE INDEX operation_one_per_bulk_attempt
    ON operation (bulk_operation_id, device_id, bulk_attempt)
    WHERE bulk_operation_id IS NOT NULL;

-- Status changes of bulk operations' operations, appended (no hot row: each change is a
-- row of its own) and folded into bulk_operation's counts by the scheduler, under the
-- bulk operation's lock. 'TIMED_OUT' is a FAILED that the timeout sweep made.
CREATE TABLE bulk_operation_change (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bulk_operation_id bigint NOT NULL,
    old_status        text,
    new_status        text
);

CREATE INDEX bulk_operation_change_bulk ON bulk_operation_change (bulk_operation_id, id);

CREATE FUNCTION bulk_operation_status(status text, reason text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN status = 'FAILED' AND reason LIKE 'Timed out: %' THEN 'TIMED_OUT'
                ELSE status END
$$;

CREATE FUNCTION bulk_operation_record_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO bulk_operation_change (bulk_operation_id, old_status, new_status)
        VALUES (NEW.bulk_operation_id, NULL, NEW.status);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO bulk_operation_change (bulk_operation_id, old_status, new_status)
        VALUES (OLD.bulk_operation_id,
                bulk_operation_status(OLD.status, OLD.failure_reason), NULL);
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO bulk_operation_change (bulk_operation_id, old_status, new_status)
        VALUES (NEW.bulk_operation_id,
                bulk_operation_status(OLD.status, OLD.failure_reason),
                bulk_operation_status(NEW.status, NEW.failure_reason));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER operation_bulk_insert AFTER INSERT ON operation
    FOR EACH ROW WHEN (NEW.bulk_operation_id IS NOT NULL)
    EXECUTE FUNCTION bulk_operation_record_change();
CREATE TRIGGER operation_bulk_update AFTER UPDATE OF status ON operation
    FOR EACH ROW WHEN (NEW.bulk_operation_id IS NOT NULL)
    EXECUTE FUNCTION bulk_operation_record_change();
CREATE TRIGGER operation_bulk_delete AFTER DELETE ON operation
    FOR EACH ROW WHEN (OLD.bulk_operation_id IS NOT NULL)
    EXECUTE FUNCTION bulk_operation_record_change();

-- Cumulocity's bulk-operation roles, for the administrators that exist already (new
-- ones get them from the seed).
UPDATE app_user
   SET roles = roles || ARRAY['ROLE_BULK_OPERATION_ADMIN', 'ROLE_BULK_OPERATION_READ']
 WHERE 'ROLE_DEVICE_CONTROL_ADMIN' = ANY (roles)
   AND NOT 'ROLE_BULK_OPERATION_ADMIN' = ANY (roles);
