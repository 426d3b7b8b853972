-- Routing decisions over a time range by outcome and reason ('' when routed); routes counts
-- the deliveries the routed events fanned out to.
SELECT
    r.outcome AS outcome,
    r.reason AS reason,
    sum(r.decisions) AS decisions,
    sum(r.routes) AS routes
FROM routing_per_minute AS r
WHERE r.minute >= {from:DateTime('UTC')} AND r.minute < {to:DateTime('UTC')}
  AND ({tenant:String} = '' OR r.tenant = {tenant:String})
  AND ({event_type:String} = '' OR r.event_type = {event_type:String})
GROUP BY outcome, reason
ORDER BY outcome DESC, decisions DESC, reason
