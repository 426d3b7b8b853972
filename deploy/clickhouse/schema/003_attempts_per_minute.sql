-- Per-minute rollup of delivery_attempts, filled by a materialized view on every insert,
-- so dashboards over months read thousands of rows instead of millions.
--
-- Counts are sums (retry_attempts: attempts after the first of their event); latency
-- percentiles are mergeable quantile states: query them with
-- quantilesMerge(0.5, 0.95, 0.99)(latency_ms_quantiles). status_class is status_code / 100,
-- 0 when there was no response (timeout, connection error, refused, dead_lettered).
-- dead_lettered rows keep a group of their own (outcome is in the key): queries leave them out
-- of attempts, failures and latency, and count them apart.
-- The view's inserts carry the source insert's deduplication token, so a replayed batch is
-- skipped here too (the window below must be set on this table as well).

CREATE TABLE IF NOT EXISTS attempts_per_minute
(
    minute               DateTime('UTC'),
    subscription_id      String,
    tenant               LowCardinality(String),
    event_type           LowCardinality(String),
    outcome              LowCardinality(String),
    status_class         UInt8,
    status               String ALIAS if(status_class = 0, 'none', concat(toString(status_class), 'xx')),
    attempts             SimpleAggregateFunction(sum, UInt64),
    retry_attempts       SimpleAggregateFunction(sum, UInt64),
    latency_ms_sum       SimpleAggregateFunction(sum, Float64),
    latency_ms_max       SimpleAggregateFunction(max, Float64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64),
    last_attempt_at      SimpleAggregateFunction(max, DateTime64(6, 'UTC')),
    latency_ms_quantiles AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (subscription_id, minute, tenant, event_type, outcome, status_class)
TTL minute + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS attempts_per_minute_mv TO attempts_per_minute AS
SELECT
    toStartOfMinute(started_at) AS minute,
    subscription_id,
    tenant,
    event_type,
    outcome,
    toUInt8(intDiv(ifNull(status_code, 0), 100)) AS status_class,
    count() AS attempts,
    countIf(attempt > 1) AS retry_attempts,
    sum(latency_ms) AS latency_ms_sum,
    max(latency_ms) AS latency_ms_max,
    sum(toUInt64(request_bytes)) AS request_bytes,
    sum(toUInt64(response_bytes)) AS response_bytes,
    max(started_at) AS last_attempt_at,
    quantilesState(0.5, 0.95, 0.99)(latency_ms) AS latency_ms_quantiles
FROM delivery_attempts
GROUP BY minute, subscription_id, tenant, event_type, outcome, status_class;

-- Attempts stored before this rollup existed: counted once, only while the rollup is empty
-- (a rerun after a crash in the middle of this file then adds nothing).
INSERT INTO attempts_per_minute (minute, subscription_id, tenant, event_type, outcome, status_class, attempts,
    retry_attempts, latency_ms_sum, latency_ms_max, request_bytes, response_bytes, last_attempt_at, latency_ms_quantiles)
SELECT
    toStartOfMinute(started_at) AS minute, subscription_id, tenant, event_type, outcome,
    toUInt8(intDiv(ifNull(status_code, 0), 100)) AS status_class,
    count(), countIf(attempt > 1), sum(latency_ms), max(latency_ms), sum(toUInt64(request_bytes)),
    sum(toUInt64(response_bytes)), max(started_at), quantilesState(0.5, 0.95, 0.99)(latency_ms)
FROM delivery_attempts
WHERE (SELECT count() FROM attempts_per_minute) = 0
GROUP BY minute, subscription_id, tenant, event_type, outcome, status_class;
