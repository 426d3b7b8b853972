-- Finding one event: every attempt to deliver it, per subscription in time order, with the
-- deliveries parked in the dead-letter topic as outcome dead_lettered and their reason.
SELECT
    started_at, subscription_id, tenant, event_type, event_time, attempt, endpoint_host,
    outcome, status_code, error, latency_ms, response_body, attempt_id
FROM delivery_attempts
WHERE event_id = {event_id:String}
  AND ({tenant:String} = '' OR tenant = {tenant:String})
ORDER BY subscription_id, started_at, attempt_id
LIMIT 1000
