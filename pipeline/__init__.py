"""A webhook delivery pipeline: events in Kafka, ordered signed deliveries, results in ClickHouse."""

__version__ = "0.1.0"
