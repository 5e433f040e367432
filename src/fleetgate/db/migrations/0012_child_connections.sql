-- What a gateway last reported of its child's connectivity (fg/d/<gw>/c/<child>/connection,
-- docs/protocol.md "Online and offline"). A child is CONNECTED exactly while its gateway is
-- connected and this report, when there is one, is not DISCONNECTED (decision 0008). One
-- row per child: the last report wins. It counts only while gateway_id is still the
-- child's gateway; a report of a former gateway is dropped when the child's connection is
-- next brought up to date.
CREATE TABLE child_connection (
    child_id    bigint PRIMARY KEY REFERENCES managed_object (id) ON DELETE CASCADE,
    gateway_id  bigint NOT NULL REFERENCES managed_object (id) ON DELETE CASCADE,
    connected   boolean NOT NULL,
    reason      text CHECK (length(reason) BETWEEN 1 AND 1000),
    reported_at timestamptz NOT NULL,
    CHECK (child_id <> gateway_id)
);

-- A gateway deleted: its children's rows go with it (ON DELETE CASCADE) without a scan.
CREATE INDEX child_connection_gateway ON child_connection (gateway_id);
