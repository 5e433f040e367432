-- New device requests: an operator registers a device id, the device asks for its
-- credentials (bootstrap), the operator accepts, the device receives them once.

CREATE TABLE new_device_request (
    tenant_id  text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    id         text NOT NULL CHECK (length(id) BETWEEN 1 AND 1000),
    status     text NOT NULL
               CHECK (status IN ('WAITING_FOR_CONNECTION', 'PENDING_ACCEPTANCE', 'ACCEPTED')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
