-- Managed objects (devices, and later groups, repositories …), their external ids, and
-- which broker connection a device is on.

CREATE TABLE managed_object (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    name          text,
    type          text,
    owner         text,
    fragments     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(fragments) = 'object'),
    creation_time timestamptz NOT NULL DEFAULT now(),
    last_updated  timestamptz NOT NULL DEFAULT now(),
    -- The broker connection (plugin connection id) the device is on, when CONNECTED.
    connection_id text
);

CREATE INDEX managed_object_tenant ON managed_object (tenant_id, id);
CREATE INDEX managed_object_fragments ON managed_object USING gin (fragments);

CREATE TABLE external_id (
    tenant_id         text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    type              text NOT NULL CHECK (length(type) BETWEEN 1 AND 1000),
    value             text NOT NULL CHECK (length(value) BETWEEN 1 AND 1000),
    managed_object_id bigint NOT NULL REFERENCES managed_object (id) ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, type, value)
);

CREATE INDEX external_id_object ON external_id (managed_object_id);
