-- The last {limit} attempts, newest first: of one subscription, or of all when it is ''
-- (of one tenant's subscriptions, or of all tenants' when tenant is ''). HTTP attempts only:
-- a dead_lettered row sent nothing (it is in the error log instead).
SELECT
    started_at, subscription_id, tenant, event_id, event_type, attempt, endpoint_host,
    outcome, status_code, error, latency_ms, request_bytes, response_bytes, response_body, attempt_id,
    request_headers
FROM delivery_attempts
WHERE outcome != 'dead_lettered'
  AND ({subscription_id:String} = '' OR subscription_id = {subscription_id:String})
  AND ({tenant:String} = '' OR tenant = {tenant:String})
ORDER BY started_at DESC, attempt_id DESC
LIMIT {limit:UInt32}
