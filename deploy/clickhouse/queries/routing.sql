-- Routing decisions over time: one row per time step and key, the key being 'routed' or,
-- for dropped events, the reason (no_match, paused, filtered, invalid).
SELECT
    toStartOfInterval(r.minute, toIntervalSecond({step_s:UInt32})) AS time,
    if(r.outcome = 'routed', 'routed', r.reason) AS key,
    sum(r.decisions) AS decisions,
    sum(r.routes) AS routes
FROM routing_per_minute AS r
WHERE r.minute >= {from:DateTime('UTC')} AND r.minute < {to:DateTime('UTC')}
  AND ({tenant:String} = '' OR r.tenant = {tenant:String})
  AND ({event_type:String} = '' OR r.event_type = {event_type:String})
GROUP BY time, key
ORDER BY key, time
