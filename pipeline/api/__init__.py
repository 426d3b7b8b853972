"""The admin HTTP API: subscriptions and statistics."""
