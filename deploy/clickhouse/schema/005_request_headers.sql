-- The headers each attempt sent (credentials masked by the dispatcher), for the last requests view.
ALTER TABLE delivery_attempts ADD COLUMN IF NOT EXISTS request_headers Map(String, String);
