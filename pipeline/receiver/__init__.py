"""A small local webhook endpoint for trying things and for tests."""

from pipeline.receiver.server import ReceivedDelivery, Receiver

__all__ = ["ReceivedDelivery", "Receiver"]
