-- All-time totals per subscription: delivered (successful attempts), failed attempts and
-- latency percentiles. A filter given as '' means all.
SELECT
    r.subscription_id AS subscription_id,
    sum(r.attempts) AS attempts,
    sumIf(r.attempts, r.outcome = 'success') AS delivered,
    attempts - delivered AS failed,
    quantilesMerge(0.5, 0.95, 0.99)(r.latency_ms_quantiles) AS latency_ms,
    latency_ms[1] AS p50_ms,
    latency_ms[2] AS p95_ms,
    latency_ms[3] AS p99_ms,
    max(r.last_attempt_at) AS last_attempt_at
FROM attempts_per_minute AS r
WHERE ({subscription_id:String} = '' OR r.subscription_id = {subscription_id:String})
  AND ({tenant:String} = '' OR r.tenant = {tenant:String})
GROUP BY subscription_id
ORDER BY subscription_id
