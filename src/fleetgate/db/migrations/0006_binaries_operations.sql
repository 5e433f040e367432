-- Files of /inventory/binaries and device operations.
--
-- A binary is a managed object (c8y_IsBinary, as Cumulocity keeps it); its content lives
-- outside PostgreSQL in the content-addressed file store, named by its SHA-256, so equal
-- files are stored once and a file is removed when no binary names it any more.

CREATE TABLE binary_file (
    managed_object_id bigint PRIMARY KEY REFERENCES managed_object (id) ON DELETE CASCADE,
    sha256            text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    length            bigint NOT NULL CHECK (length >= 0),
    content_type      text NOT NULL
);

CREATE INDEX binary_file_sha256 ON binary_file (sha256);

-- Operations: one command for one device. `fragment_type` is the command fragment that is
-- dispatched (c8y_Firmware, c8y_SoftwareUpdate, …); `fragments` holds the operation body
-- as created (every fragment, the description excepted). Status moves only forward
-- (fleetgate.domain.operations); `status_time` is when it last moved.
CREATE TABLE operation (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    device_id         bigint NOT NULL REFERENCES managed_object (id) ON DELETE CASCADE,
    -- The device's id (c8y_Serial, its MQTT client id): status messages name it.
    serial            text NOT NULL,
    fragment_type     text NOT NULL,
    status            text NOT NULL DEFAULT 'PENDING'
                      CHECK (status IN ('PENDING', 'EXECUTING', 'SUCCESSFUL', 'FAILED')),
    failure_reason    text,
    description       text,
    fragments         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(fragments) = 'object'),
    bulk_operation_id bigint,
    creation_time     timestamptz NOT NULL DEFAULT now(),
    status_time       timestamptz NOT NULL DEFAULT now(),
    -- When the command was last published to the device (NULL: never).
    dispatched_at     timestamptz,
    -- A configuration snapshot the device uploaded for c8y_UploadConfigFile.
    snapshot_id       bigint REFERENCES managed_object (id) ON DELETE SET NULL,
    CHECK ((status = 'FAILED') = (failure_reason IS NOT NULL))
);

CREATE INDEX operation_tenant ON operation (tenant_id, id);
CREATE INDEX operation_device ON operation (device_id, id);
CREATE INDEX operation_open_serial ON operation (serial, id)
    WHERE status IN ('PENDING', 'EXECUTING');
CREATE INDEX operation_open_time ON operation (status, status_time)
    WHERE status IN ('PENDING', 'EXECUTING');

-- Seed rule: while a snapshot request for a configuration type is PENDING or EXECUTING on
-- a device, another one for that type is refused. Enforced here, so two operators at once
-- cannot both get theirs in.
CREATE UNIQUE INDEX operation_one_open_snapshot_per_type
    ON operation (device_id, (fragments -> 'c8y_UploadConfigFile' ->> 'type'))
    WHERE fragment_type = 'c8y_UploadConfigFile' AND status IN ('PENDING', 'EXECUTING');
