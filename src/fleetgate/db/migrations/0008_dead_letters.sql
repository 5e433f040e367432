-- Device messages that could not be applied (not JSON, out of range, a reserved fragment,
-- or a failure nobody foresaw), kept for operators to see: docs/protocol.md, "Bad
-- messages". The tenant and device are those holding the device id when the message
-- arrived (NULL when no device held it); each device keeps its newest ones only.
CREATE TABLE dead_letter (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         text REFERENCES tenant (id) ON DELETE CASCADE,
    managed_object_id bigint REFERENCES managed_object (id) ON DELETE SET NULL,
    device_id         text NOT NULL,
    topic             text NOT NULL,
    -- The payload's first bytes (all of it, up to the limit), and its whole size.
    payload           bytea NOT NULL,
    payload_size      integer NOT NULL CHECK (payload_size >= 0),
    error             text NOT NULL,
    reason            text NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dead_letter_tenant ON dead_letter (tenant_id, id);
CREATE INDEX dead_letter_device ON dead_letter (device_id, id);
CREATE INDEX dead_letter_object ON dead_letter (managed_object_id, id);
