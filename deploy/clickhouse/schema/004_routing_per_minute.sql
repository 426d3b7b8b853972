-- Per-minute rollup of routing_decisions: how many events were routed or dropped, and why.
-- routes counts the deliveries the routed events fanned out to (one per matched subscription).

CREATE TABLE IF NOT EXISTS routing_per_minute
(
    minute      DateTime('UTC'),
    tenant      LowCardinality(String),
    event_type  LowCardinality(String),
    source      LowCardinality(String),
    outcome     LowCardinality(String),
    reason      LowCardinality(String),
    decisions   SimpleAggregateFunction(sum, UInt64),
    routes      SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, tenant, event_type, source, outcome, reason)
TTL minute + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS routing_per_minute_mv TO routing_per_minute AS
SELECT
    toStartOfMinute(decided_at) AS minute,
    tenant,
    event_type,
    source,
    outcome,
    ifNull(reason, '') AS reason,
    count() AS decisions,
    sum(length(matched)) AS routes
FROM routing_decisions
GROUP BY minute, tenant, event_type, source, outcome, reason;
