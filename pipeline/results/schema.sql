-- The results store: one row per delivery attempt, one column per field of
-- schemas/delivery_attempt.avsc. {database} is filled in from settings.
-- Partitions by month keep old months cheap to drop; the sort key serves the
-- per-subscription statistics, which always filter or group by subscription.

CREATE DATABASE IF NOT EXISTS {database};

CREATE TABLE IF NOT EXISTS {database}.delivery_attempts
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
ORDER BY (subscription_id, started_at, attempt_id);
