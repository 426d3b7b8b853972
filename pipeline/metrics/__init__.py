"""Prometheus metrics: what each stage counts, and how it serves them.

Each stage builds its metrics on a registry of its own (so tests and several apps in one process
never collide) and serves them at /metrics: the admin API and the results service on their own
HTTP servers, the router and the dispatcher on a small server of their own (server.py). Labels
stay few: outcomes, reasons and status classes, and the subscription id only for backlogs.
"""
