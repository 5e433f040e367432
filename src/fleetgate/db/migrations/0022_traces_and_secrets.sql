-- Message tracing (docs/decisions/0016-message-tracing.md): a running trace per device,
-- and the bounded record of what happened to it; both go when the trace ends (expiry or
-- stop). And who regenerated which password device's secret, when (docs/api.md,
-- "Device credentials view").

CREATE TABLE device_trace (
    managed_object_id bigint PRIMARY KEY REFERENCES managed_object (id) ON DELETE CASCADE,
    tenant_id         text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    -- The device id (c8y_Serial = the broker's client id) the broker reports under.
    device_id         text NOT NULL UNIQUE,
    started_by        text NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    CHECK (expires_at > started_at AND expires_at <= started_at + interval '3 days')
);

CREATE INDEX device_trace_expiry ON device_trace (expires_at);

CREATE TABLE trace_entry (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id text NOT NULL REFERENCES device_trace (device_id) ON DELETE CASCADE
                                                                ON UPDATE CASCADE,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind      text NOT NULL,
    summary   text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object')
);

CREATE INDEX trace_entry_device ON trace_entry (device_id, id);

CREATE TABLE secret_regeneration (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    managed_object_id bigint REFERENCES managed_object (id) ON DELETE SET NULL,
    device_id         text NOT NULL,
    regenerated_by    text NOT NULL,
    regenerated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX secret_regeneration_object ON secret_regeneration (managed_object_id, id);
