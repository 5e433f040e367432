-- Parent/child references between managed objects (groups and their members, a device's
-- child devices), as Cumulocity keeps them: childAssets, childDevices, childAdditions.
-- Device groups themselves are managed objects (c8y_IsDeviceGroup at the top,
-- c8y_IsDeviceSubgroup below); a group is found by its name under its parent.

CREATE TABLE managed_object_child (
    parent_id bigint NOT NULL REFERENCES managed_object (id) ON DELETE CASCADE,
    child_id  bigint NOT NULL REFERENCES managed_object (id) ON DELETE CASCADE,
    kind      text NOT NULL CHECK (kind IN ('childAssets', 'childDevices', 'childAdditions')),
    PRIMARY KEY (parent_id, kind, child_id),
    CHECK (parent_id <> child_id)
);

-- assetParents / deviceParents: from the child.
CREATE INDEX managed_object_child_child ON managed_object_child (child_id, kind);

-- A device id (c8y_Serial) is also the MQTT client id, global in the broker: finding it
-- in any tenant must not scan every tenant's external ids.
CREATE INDEX external_id_type_value ON external_id (type, value);
