-- The error log: failed attempts in a time range, newest first, with what went wrong;
-- deliveries parked in the dead-letter topic appear too, as outcome dead_lettered with the reason.
SELECT
    started_at, subscription_id, tenant, event_id, event_type, attempt, endpoint_host,
    outcome, status_code, error, latency_ms, response_body, attempt_id
FROM delivery_attempts
WHERE started_at >= {from:DateTime('UTC')} AND started_at < {to:DateTime('UTC')}
  AND outcome != 'success'
  AND ({subscription_id:String} = '' OR subscription_id = {subscription_id:String})
  AND ({tenant:String} = '' OR tenant = {tenant:String})
  AND ({event_type:String} = '' OR event_type = {event_type:String})
ORDER BY started_at DESC, attempt_id DESC
LIMIT {limit:UInt32}
