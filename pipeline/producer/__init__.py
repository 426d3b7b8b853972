"""The producer SDK: publish event envelopes to the events topic."""

from pipeline.producer.publisher import EventPublisher

__all__ = ["EventPublisher"]
