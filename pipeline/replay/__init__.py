"""Replay and redrive: deliver again what an endpoint already got, or what was parked."""
