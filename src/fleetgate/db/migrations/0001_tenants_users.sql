-- Tenants, and the users who log in to them (operators, the bootstrap account, devices).

CREATE TABLE tenant (
    id            text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_-]{0,61}$'),
    is_management boolean NOT NULL DEFAULT false,
    domain_name   text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- At most one management tenant.
CREATE UNIQUE INDEX tenant_one_management ON tenant ((true)) WHERE is_management;

CREATE TABLE app_user (
    tenant_id            text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    username             text NOT NULL CHECK (length(username) BETWEEN 1 AND 1000
                                              AND username !~ '[[:space:]/+$:]'),
    password_hash        text NOT NULL,
    enabled              boolean NOT NULL DEFAULT true,
    roles                text[] NOT NULL DEFAULT '{}',
    email                text,
    first_name           text,
    last_name            text,
    last_password_change timestamptz NOT NULL DEFAULT now(),
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, username)
);

CREATE INDEX app_user_roles ON app_user USING gin (roles);
