-- Tenant options, as Cumulocity keeps them (/tenant/options/{category}/{key}): settings
-- of one tenant, such as whether gateways may register children
-- (fleetgate.gateways / childAutoRegistration).
CREATE TABLE tenant_option (
    tenant_id text NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    category  text NOT NULL CHECK (length(category) BETWEEN 1 AND 256),
    key       text NOT NULL CHECK (length(key) BETWEEN 1 AND 256),
    value     text NOT NULL CHECK (length(value) <= 65536),
    PRIMARY KEY (tenant_id, category, key)
);
