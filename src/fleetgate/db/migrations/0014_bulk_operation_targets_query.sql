-- fleetgate_Targets.query (docs/api.md "Bulk operations"): the inventory query that
-- narrowed a bulk operation's group when its targets were fixed (NULL: none), kept to
-- show it and to carry it over to the bulk operation a PUT makes.
ALTER TABLE bulk_operation ADD COLUMN target_query text;
