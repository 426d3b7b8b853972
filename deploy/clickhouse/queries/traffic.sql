-- Traffic, errors and latency over time: one row per time step and value of {by}.
-- Reads the per-minute rollup, so months of traffic cost a few thousand rows.
-- dead_lettered counts deliveries parked in the dead-letter topic; those rows are not HTTP
-- attempts, so attempts, failed and latency leave them out. unknown counts attempts whose
-- dispatcher died during the request: attempts, but neither succeeded nor failed, unmeasured.
WITH r.outcome != 'dead_lettered' AS is_attempt,
     r.outcome NOT IN ('dead_lettered', 'unknown') AS is_measured
SELECT
    toStartOfInterval(r.minute, toIntervalSecond({step_s:UInt32})) AS time,
    toString({by:Identifier}) AS key,
    sumIf(r.attempts, is_attempt) AS attempts,
    sumIf(r.attempts, r.outcome = 'success') AS succeeded,
    sumIf(r.attempts, r.outcome = 'unknown') AS unknown,
    attempts - succeeded - unknown AS failed,
    sumIf(r.attempts, NOT is_attempt) AS dead_lettered,
    quantilesMergeIf(0.5, 0.95, 0.99)(r.latency_ms_quantiles, is_measured) AS latency_ms
FROM attempts_per_minute AS r
WHERE r.minute >= {from:DateTime('UTC')} AND r.minute < {to:DateTime('UTC')}
  AND ({subscription_id:String} = '' OR r.subscription_id = {subscription_id:String})
  AND ({tenant:String} = '' OR r.tenant = {tenant:String})
  AND ({event_type:String} = '' OR r.event_type = {event_type:String})
  AND ({outcome:String} = '' OR r.outcome = {outcome:String})
  AND ({status:String} = '' OR r.status = {status:String})
GROUP BY time, key
ORDER BY key, time
