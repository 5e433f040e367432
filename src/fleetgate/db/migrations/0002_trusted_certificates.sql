-- The CA certificates each tenant trusts. One CA belongs to one tenant: a device's tenant
-- is the tenant of the CA that signed its certificate, so the fingerprint alone is the key
-- and the same CA uploaded to a second tenant is refused.

CREATE TABLE trusted_certificate (
    fingerprint       text PRIMARY KEY CHECK (fingerprint ~ '^[0-9a-f]{40}$'),
    tenant_id         text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 1000),
    status            text NOT NULL CHECK (status IN ('ENABLED', 'DISABLED')),
    auto_registration boolean NOT NULL DEFAULT false,
    der               bytea NOT NULL,
    pem               text NOT NULL,
    subject           text NOT NULL,
    issuer            text NOT NULL,
    serial_number     text NOT NULL,
    algorithm_name    text NOT NULL,
    not_before        timestamptz NOT NULL,
    not_after         timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- A tenant's certificates are listed oldest first.
CREATE INDEX trusted_certificate_tenant ON trusted_certificate (tenant_id, created_at, fingerprint);
