-- One row per HTTP attempt of a delivery: the fields of schemas/delivery_attempt.avsc. A delivery
-- parked in the dead-letter topic adds one row per event with outcome dead_lettered (no HTTP:
-- status_code null, latency 0, the reason in error); queries count those apart from attempts.
-- Run in the statistics database (`USE webhooks` or `clickhouse-client --database webhooks`).
--
-- outcome is a string, not an Enum: the dispatcher may add outcomes (refused, dead_lettered)
-- before this table learns them, and an Enum would refuse such rows and stall the sink.
-- Monthly partitions make old months cheap to drop; the TTL deletes rows past the retention
-- (the results service rewrites the interval to its `results_retention_days` at start).
-- The deduplication window lets the sink replay an interrupted insert with the same
-- insert_deduplication_token without storing it twice.

CREATE TABLE IF NOT EXISTS delivery_attempts
(
    attempt_id      String,
    event_id        String,
    event_type      LowCardinality(String),
    event_time      DateTime64(3, 'UTC'),
    subscription_id String,
    tenant          LowCardinality(String),
    attempt         UInt16,
    endpoint_host   LowCardinality(String),
    started_at      DateTime64(6, 'UTC'),
    latency_ms      Float64,
    status_code     Nullable(UInt16),
    outcome         LowCardinality(String),
    error           Nullable(String),
    request_bytes   UInt32,
    response_bytes  UInt32,
    response_body   String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (subscription_id, started_at, attempt_id)
TTL toDateTime(started_at) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- Tables created before deduplication existed get the window too.
ALTER TABLE delivery_attempts MODIFY SETTING non_replicated_deduplication_window = 10000;
