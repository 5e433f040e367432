-- Several service instances on one database (decision 0018).

-- The change log behind the live operation stream: one row per committed change of an
-- operation or a bulk operation, numbered in COMMIT order. The rows are written by a
-- deferred constraint trigger (so at commit, whoever wrote — any instance, any code
-- path), under a transaction advisory lock taken just before commit: two committing
-- transactions number their changes one after the other, so a reader that has seen
-- change n never finds a change below n committed later. Every instance LISTENs on
-- 'fleetgate_changes' (one empty notification per committing transaction) and reads the
-- rows after the last it saw; an SSE event id is a position here, so Last-Event-ID
-- resumes on any instance. A deferred trigger sees each row as its statement left it: an
-- operation updated twice in one transaction is two changes (the service's batches
-- update each operation once, to where the batch took it).
CREATE TABLE operation_change (
    position   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- A deleted tenant's changes go with it (they hold its operations' content).
    tenant_id  text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('operation', 'bulk_operation')),
    object_id  bigint NOT NULL,
    -- The row as this change committed it: each event shows its own state, never a
    -- later one (read back with jsonb_populate_record).
    state      jsonb NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operation_change_tenant ON operation_change (tenant_id);

CREATE FUNCTION record_operation_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Bookkeeping no watcher sees (when a command went out, when a scheduler looks next)
    -- is not a change.
    IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) - ARRAY['dispatched_at', 'next_step_at',
            'next_creation_at']) = (to_jsonb(NEW) - ARRAY['dispatched_at', 'next_step_at',
            'next_creation_at']) THEN
        RETURN NULL;
    END IF;
    -- Key 0x66676368 ('fgch'): the numbering lock, held from here until the commit.
    PERFORM pg_advisory_xact_lock(1718051688);
    INSERT INTO operation_change (tenant_id, kind, object_id, state)
         VALUES (NEW.tenant_id, TG_ARGV[0], NEW.id, to_jsonb(NEW));
    PERFORM pg_notify('fleetgate_changes', '');
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER operation_changed
    AFTER INSERT OR UPDATE ON operation
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION record_operation_change('operation');

CREATE CONSTRAINT TRIGGER bulk_operation_changed
    AFTER INSERT OR UPDATE ON bulk_operation
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION record_operation_change('bulk_operation');

-- The device link's sessions on the broker, one per slot an instance claimed (a session
-- advisory lock per slot, held while the instance lives): a slot whose lock is free but
-- whose row is here left a broker session behind, with messages not yet acknowledged;
-- a live instance adopts it, drains it and removes the row.
CREATE TABLE device_link_slot (
    slot       integer PRIMARY KEY CHECK (slot >= 0),
    claimed_at timestamptz NOT NULL DEFAULT now()
);
