-- A device disabled by an operator (docs/api.md "Enabling and disabling a device",
-- decision 0012): the device itself, not only its device_<id> user. Both are kept
-- consistent from now on: disabling the device disables its user, enabling it enables
-- the user, and an operator's change of a device user's `enabled` changes its device.
ALTER TABLE managed_object ADD COLUMN disabled boolean NOT NULL DEFAULT false;

-- Devices whose user an operator disabled before: the device is disabled too, and shows it.
UPDATE managed_object m
   SET disabled = true,
       fragments = m.fragments
           || '{"fleetgate_Lifecycle": {"status": "DISABLED", "reason": "disabled"}}'::jsonb
  FROM external_id e
  JOIN app_user u ON u.tenant_id = e.tenant_id AND u.username = 'device_' || e.value
 WHERE e.type = 'c8y_Serial' AND e.managed_object_id = m.id
   AND 'ROLE_DEVICE' = ANY (u.roles) AND NOT u.enabled;

-- Their children (a disabled gateway's) are DISABLED by their parent, unless disabled
-- themselves.
UPDATE managed_object m
   SET fragments = m.fragments || jsonb_build_object(
       'fleetgate_Lifecycle',
       jsonb_build_object('status', 'DISABLED', 'reason', 'gateway ' || ge.value || ' disabled'))
  FROM managed_object_child c
  JOIN managed_object g ON g.id = c.parent_id AND g.disabled
  JOIN external_id ge ON ge.managed_object_id = g.id AND ge.type = 'c8y_Serial'
 WHERE c.kind = 'childDevices' AND c.child_id = m.id AND NOT m.disabled;
