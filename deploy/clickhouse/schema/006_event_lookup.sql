-- Finding one event (`pipeline events show`, GET /v1/events/{id}): its routing decisions and every
-- attempt, by event id. Neither table is ordered by event id, so each gets a bloom filter index
-- on it, which skips the granules that cannot hold the id instead of reading the whole column.
-- events_partition and events_offset say where a routed event is in the events topic, so it can be
-- read again to be resent (null for decisions recorded before they were kept).

ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS events_partition Nullable(Int32);
ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS events_offset Nullable(Int64);

ALTER TABLE routing_decisions ADD INDEX IF NOT EXISTS event_id_lookup event_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE routing_decisions MATERIALIZE INDEX event_id_lookup;
ALTER TABLE delivery_attempts ADD INDEX IF NOT EXISTS event_id_lookup event_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE delivery_attempts MATERIALIZE INDEX event_id_lookup;
