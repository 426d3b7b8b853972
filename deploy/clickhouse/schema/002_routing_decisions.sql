-- One row per routing decision of the router: the fields of schemas/routing_decision.avsc.
-- outcome: routed or dropped; reason (when dropped): no_match, paused, filtered or invalid.

CREATE TABLE IF NOT EXISTS routing_decisions
(
    event_id    String,
    event_type  LowCardinality(String),
    source      LowCardinality(String),
    tenant      LowCardinality(String),
    event_time  Nullable(DateTime64(3, 'UTC')),
    decided_at  DateTime64(6, 'UTC'),
    matched     Array(String),
    outcome     LowCardinality(String),
    reason      LowCardinality(Nullable(String)),
    error       Nullable(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(decided_at)
ORDER BY (decided_at, event_id)
TTL toDateTime(decided_at) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;
