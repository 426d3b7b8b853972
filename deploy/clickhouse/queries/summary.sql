-- Totals over a time range, one row per value of {by}: attempts by outcome and status class,
-- the error rate's parts, retries, and latency percentiles.
SELECT
    toString({by:Identifier}) AS key,
    sum(r.attempts) AS attempts,
    sumIf(r.attempts, r.outcome = 'success') AS succeeded,
    attempts - succeeded AS failed,
    sum(r.retry_attempts) AS retry_attempts,
    sumIf(r.retry_attempts, r.outcome = 'success') AS succeeded_on_retry,
    quantilesMerge(0.5, 0.95, 0.99)(r.latency_ms_quantiles) AS latency_ms,
    sum(r.latency_ms_sum) / attempts AS mean_latency_ms,
    max(r.latency_ms_max) AS max_latency_ms,
    sum(r.request_bytes) AS request_bytes,
    sum(r.response_bytes) AS response_bytes,
    sumMap(map(r.outcome, r.attempts)) AS outcomes,
    sumMap(map(r.status, r.attempts)) AS statuses,
    max(r.last_attempt_at) AS last_attempt_at
FROM attempts_per_minute AS r
WHERE r.minute >= {from:DateTime('UTC')} AND r.minute < {to:DateTime('UTC')}
  AND ({subscription_id:String} = '' OR r.subscription_id = {subscription_id:String})
  AND ({tenant:String} = '' OR r.tenant = {tenant:String})
  AND ({event_type:String} = '' OR r.event_type = {event_type:String})
  AND ({outcome:String} = '' OR r.outcome = {outcome:String})
  AND ({status:String} = '' OR r.status = {status:String})
GROUP BY key
ORDER BY key
