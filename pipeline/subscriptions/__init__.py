"""Subscriptions: written to a compacted topic keyed by id, read back by every stage as a table."""
