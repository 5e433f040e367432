-- Device ids are global (docs/decisions/0006-global-device-ids.md): a c8y_Serial names one
-- managed object in the whole installation, because it is the broker's client id, and a
-- managed object has at most one. A new device request's id is a device id too.
--
-- Databases made before this migration may already hold the same device id in two
-- tenants; the migration then stops with the list, for an operator to resolve (delete
-- one of the two external ids), instead of picking a winner.

DO $$
DECLARE
    clash text;
BEGIN
    SELECT string_agg(format('%s (tenants %s)', value, tenants), '; ')
      INTO clash
      FROM (SELECT value, string_agg(tenant_id, ', ' ORDER BY tenant_id) AS tenants
              FROM external_id WHERE type = 'c8y_Serial'
             GROUP BY value HAVING count(*) > 1) AS c;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'device ids held by several managed objects: %', clash
            USING HINT = 'delete all but one c8y_Serial of each, then start again';
    END IF;
    SELECT string_agg(format('managed object %s (%s)', managed_object_id, ids), '; ')
      INTO clash
      FROM (SELECT managed_object_id, string_agg(value, ', ' ORDER BY value) AS ids
              FROM external_id WHERE type = 'c8y_Serial'
             GROUP BY managed_object_id HAVING count(*) > 1) AS c;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'managed objects with several device ids: %', clash
            USING HINT = 'delete all but one c8y_Serial of each, then start again';
    END IF;
    SELECT string_agg(format('%s (tenants %s)', id, tenants), '; ')
      INTO clash
      FROM (SELECT id, string_agg(tenant_id, ', ' ORDER BY tenant_id) AS tenants
              FROM new_device_request GROUP BY id HAVING count(*) > 1) AS c;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'new device requests for one device id in several tenants: %', clash
            USING HINT = 'delete all but one of them, then start again';
    END IF;
    SELECT string_agg(format('%s (request in %s, device in %s)', r.id, r.tenant_id, e.tenant_id),
                      '; ')
      INTO clash
      FROM new_device_request r
      JOIN external_id e ON e.type = 'c8y_Serial' AND e.value = r.id
                        AND e.tenant_id <> r.tenant_id;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'new device requests for device ids of another tenant: %', clash
            USING HINT = 'delete those requests, then start again';
    END IF;
END
$$;

CREATE UNIQUE INDEX external_id_one_device_id ON external_id (value) WHERE type = 'c8y_Serial';
CREATE UNIQUE INDEX external_id_one_per_device
    ON external_id (managed_object_id) WHERE type = 'c8y_Serial';
CREATE UNIQUE INDEX new_device_request_one_id ON new_device_request (id);

-- What the broker keeps under a device id (a persistent session: subscriptions, queued
-- commands with their signed file URLs) must not reach the next holder of that id, in
-- another tenant perhaps. Every deletion of a device id — an operator's, a device's
-- deletion, a tenant's, whatever deletes the row — leaves the id here until the service
-- has discarded the broker's session for it (and it is drained before the broker's state
-- is pushed at each connect, so before any device can log in again).
CREATE TABLE device_session_release (
    device_id   text PRIMARY KEY,
    released_at timestamptz NOT NULL DEFAULT now()
);

-- The device's user (device_<id>) goes with its device id, in the same transaction,
-- whatever deleted the id: no user is left whose device is gone.
CREATE FUNCTION release_device_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_session_release (device_id) VALUES (OLD.value)
        ON CONFLICT (device_id) DO UPDATE SET released_at = now();
    DELETE FROM app_user
     WHERE tenant_id = OLD.tenant_id AND username = 'device_' || OLD.value
       AND 'ROLE_DEVICE' = ANY (roles);
    RETURN NULL;
END
$$;

CREATE TRIGGER external_id_release_device_session
    AFTER DELETE ON external_id
    FOR EACH ROW WHEN (OLD.type = 'c8y_Serial')
    EXECUTE FUNCTION release_device_session();
