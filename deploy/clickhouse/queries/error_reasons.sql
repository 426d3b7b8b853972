-- Why attempts failed: failed attempts in a time range grouped by outcome, status and error.
-- Dead-lettered deliveries form groups of their own (outcome dead_lettered, the reason as error;
-- there `attempts` counts dead-letterings, not HTTP attempts).
SELECT
    outcome,
    status_code,
    ifNull(error, '') AS reason,
    count() AS attempts,
    uniqExact(event_id) AS events,
    uniqExact(subscription_id) AS subscriptions,
    max(started_at) AS last_seen
FROM delivery_attempts
WHERE started_at >= {from:DateTime('UTC')} AND started_at < {to:DateTime('UTC')}
  AND outcome != 'success'
  AND ({subscription_id:String} = '' OR subscription_id = {subscription_id:String})
  AND ({tenant:String} = '' OR tenant = {tenant:String})
  AND ({event_type:String} = '' OR event_type = {event_type:String})
GROUP BY outcome, status_code, reason
ORDER BY attempts DESC, outcome, reason
LIMIT {limit:UInt32}
