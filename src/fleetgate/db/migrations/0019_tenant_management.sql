-- Tenant management (/tenant/tenants, decision 0013): what Cumulocity keeps of a tenant
-- (company, contact, admin e-mail) and whether it is suspended. A suspended tenant's
-- operators are refused (401) and its devices kicked and refused by the broker plugin.
ALTER TABLE tenant
    ADD COLUMN company       text CHECK (length(company) <= 256),
    ADD COLUMN contact_name  text CHECK (length(contact_name) <= 256),
    ADD COLUMN contact_phone text CHECK (length(contact_phone) <= 64),
    ADD COLUMN admin_email   text CHECK (length(admin_email) <= 254),
    ADD COLUMN admin_name    text,
    ADD COLUMN status        text NOT NULL DEFAULT 'ACTIVE'
                                  CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    -- the management tenant is never suspended
    ADD CONSTRAINT tenant_management_active CHECK (NOT (is_management AND status = 'SUSPENDED'));

-- Two tenants never share a domain (Cumulocity: the domain names the tenant).
CREATE UNIQUE INDEX tenant_domain_unique ON tenant (lower(domain_name))
    WHERE domain_name IS NOT NULL;
