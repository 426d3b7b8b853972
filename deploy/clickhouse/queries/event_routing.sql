-- Finding one event: what the router decided for it, oldest first (more than one row when it was
-- published or routed more than once). Of one tenant's events, or of all when tenant is ''.
SELECT
    decided_at, event_type, source, tenant, event_time, matched, outcome, reason, error,
    events_partition, events_offset
FROM routing_decisions
WHERE event_id = {event_id:String}
  AND ({tenant:String} = '' OR tenant = {tenant:String})
ORDER BY decided_at
LIMIT 100
