-- Totals over a time range, one row per value of {by}: attempts by outcome and status class,
-- the error rate's parts, retries, latency percentiles, and the deliveries dead-lettered.
-- A dead_lettered row is not an HTTP attempt: no attempt count, rate, latency, outcome or
-- status below includes it; dead_lettered counts those rows alone. An unknown row (its
-- dispatcher died during the request) is an attempt, neither succeeded nor failed, unmeasured.
WITH r.outcome != 'dead_lettered' AS is_attempt,
     r.outcome NOT IN ('dead_lettered', 'unknown') AS is_measured
SELECT
    toString({by:Identifier}) AS key,
    sumIf(r.attempts, is_attempt) AS attempts,
    sumIf(r.attempts, r.outcome = 'success') AS succeeded,
    sumIf(r.attempts, r.outcome = 'unknown') AS unknown,
    attempts - succeeded - unknown AS failed,
    sumIf(r.attempts, NOT is_attempt) AS dead_lettered,
    sumIf(r.retry_attempts, is_attempt) AS retry_attempts,
    sumIf(r.retry_attempts, r.outcome = 'success') AS succeeded_on_retry,
    quantilesMergeIf(0.5, 0.95, 0.99)(r.latency_ms_quantiles, is_measured) AS latency_ms,
    sumIf(r.latency_ms_sum, is_measured) / (attempts - unknown) AS mean_latency_ms,
    if(attempts = unknown, NULL, maxIf(r.latency_ms_max, is_measured)) AS max_latency_ms,
    sum(r.request_bytes) AS request_bytes,
    sum(r.response_bytes) AS response_bytes,
    sumMapIf(map(r.outcome, r.attempts), is_attempt) AS outcomes,
    sumMapIf(map(r.status, r.attempts), is_attempt) AS statuses,
    if(attempts = 0, NULL, maxIf(r.last_attempt_at, is_attempt)) AS last_attempt_at
FROM attempts_per_minute AS r
WHERE r.minute >= {from:DateTime('UTC')} AND r.minute < {to:DateTime('UTC')}
  AND ({subscription_id:String} = '' OR r.subscription_id = {subscription_id:String})
  AND ({tenant:String} = '' OR r.tenant = {tenant:String})
  AND ({event_type:String} = '' OR r.event_type = {event_type:String})
  AND ({outcome:String} = '' OR r.outcome = {outcome:String})
  AND ({status:String} = '' OR r.status = {status:String})
GROUP BY key
ORDER BY key
