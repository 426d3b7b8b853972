"""The dispatcher: delivers each endpoint topic's tasks as signed webhooks, in order per key."""
