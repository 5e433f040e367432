-- Cumulocity's option roles (ROLE_OPTION_MANAGEMENT_READ/_ADMIN, for /tenant/options).
-- New administrators get them with every role they are seeded with
-- (fleetgate.domain.users.ADMIN_ROLES); those seeded before get them here: the users who
-- hold ROLE_TENANT_ADMIN, which only administrators hold.
UPDATE app_user
   SET roles = ARRAY(SELECT DISTINCT r
                       FROM unnest(roles || ARRAY['ROLE_OPTION_MANAGEMENT_ADMIN',
                                                  'ROLE_OPTION_MANAGEMENT_READ']) AS r
                      ORDER BY r)
 WHERE 'ROLE_TENANT_ADMIN' = ANY (roles);
