-- All-time totals per subscription: delivered (successful attempts), failed attempts, attempts
-- of unknown outcome, dead-lettered deliveries and latency percentiles. A dead_lettered row
-- records a delivery parked in the dead-letter topic, not an HTTP attempt: it is counted apart,
-- never as an attempt. An unknown row is a request whose dispatcher died before its outcome:
-- an attempt, neither delivered nor failed, with no latency. A filter given as '' means all.
WITH r.outcome != 'dead_lettered' AS is_attempt,
     r.outcome NOT IN ('dead_lettered', 'unknown') AS is_measured
SELECT
    r.subscription_id AS subscription_id,
    sumIf(r.attempts, is_attempt) AS attempts,
    sumIf(r.attempts, r.outcome = 'success') AS delivered,
    sumIf(r.attempts, r.outcome = 'unknown') AS unknown,
    attempts - delivered - unknown AS failed,
    sumIf(r.attempts, NOT is_attempt) AS dead_lettered,
    quantilesMergeIf(0.5, 0.95, 0.99)(r.latency_ms_quantiles, is_measured) AS latency_ms,
    latency_ms[1] AS p50_ms,
    latency_ms[2] AS p95_ms,
    latency_ms[3] AS p99_ms,
    if(attempts = 0, NULL, maxIf(r.last_attempt_at, is_attempt)) AS last_attempt_at
FROM attempts_per_minute AS r
WHERE ({subscription_id:String} = '' OR r.subscription_id = {subscription_id:String})
  AND ({tenant:String} = '' OR r.tenant = {tenant:String})
GROUP BY subscription_id
ORDER BY subscription_id
