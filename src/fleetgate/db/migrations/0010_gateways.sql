-- Gateways and their children (docs/protocol.md "Gateways and their children",
-- docs/api.md "Child devices"). A child is a managed object referenced as a childDevices
-- child of its gateway; it reports and takes operations through the gateway's connection.

-- A device belongs to one gateway at a time. No release before this one made childDevices
-- references (only child additions and assets), so none can break the rule; should one
-- have been made by hand, the migration says which instead of picking a parent.
DO $$
DECLARE
    clash text;
BEGIN
    SELECT string_agg(format('%s (parents %s)', child_id, parents), '; ')
      INTO clash
      FROM (SELECT child_id, string_agg(parent_id::text, ', ' ORDER BY parent_id) AS parents
              FROM managed_object_child WHERE kind = 'childDevices'
             GROUP BY child_id HAVING count(*) > 1) AS c;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'devices with several gateways: %', clash
            USING HINT = 'remove all but one childDevices reference of each, then start again';
    END IF;
END
$$;

CREATE UNIQUE INDEX managed_object_one_gateway
    ON managed_object_child (child_id) WHERE kind = 'childDevices';

-- A child an operator took from a gateway (detached, or deleted with the device): that
-- gateway's next message about it must not silently bring it back. The gateway is told
-- that an operator removed the child, until an operator attaches the child to it again.
CREATE TABLE removed_child (
    gateway_id bigint NOT NULL REFERENCES managed_object (id) ON DELETE CASCADE,
    device_id  text NOT NULL CHECK (length(device_id) BETWEEN 1 AND 128),
    removed_at timestamptz NOT NULL DEFAULT now(),
    removed_by text,
    how        text NOT NULL CHECK (how IN ('detached', 'deleted')),
    PRIMARY KEY (gateway_id, device_id)
);
