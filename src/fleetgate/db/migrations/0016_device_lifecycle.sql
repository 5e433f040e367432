-- A device's lifecycle status, fleetgate_Lifecycle {"status", "reason"?}
-- (fleetgate.domain.lifecycle): written from now on with every connection change, and
-- INACTIVE when a device is created without a connection. Devices made before get theirs
-- here from what their connection fragments show: CONNECTED is ONLINE, DISCONNECTED
-- OFFLINE (with fleetgate_Connection's reason), none at all INACTIVE (never connected).
UPDATE managed_object
   SET fragments = fragments || jsonb_build_object(
       'fleetgate_Lifecycle',
       CASE
           WHEN fragments #>> '{c8y_Connection,status}' = 'CONNECTED'
               THEN '{"status": "ONLINE"}'::jsonb
           WHEN fragments ? 'c8y_Connection'
               THEN jsonb_strip_nulls(jsonb_build_object(
                   'status', 'OFFLINE',
                   'reason', fragments #> '{fleetgate_Connection,reason}'))
           ELSE '{"status": "INACTIVE"}'::jsonb
       END)
 WHERE fragments ? 'c8y_IsDevice' AND NOT fragments ? 'fleetgate_Lifecycle';
