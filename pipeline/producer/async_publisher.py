"""The SDK's publishing for asyncio servers (the admin API's POST /v1/events): the same envelope,
Avro single-object encoded and keyed by ordering key, each call awaiting its own acknowledgements."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.config import Settings
from pipeline.kafka.acked import AcknowledgedProducer, Outgoing
from pipeline.models import Event
from pipeline.topics import TopicNames


class AsyncEventPublisher:
    def __init__(self, settings: Settings, producer: AcknowledgedProducer):
        self.topic = TopicNames.from_settings(settings).events
        self._producer = producer

    async def publish(self, events: Sequence[Event]) -> None:
        """Returns once Kafka has every event, written in the order given."""
        await self._producer.send([Outgoing(self.topic, event.partition_key, event.to_avro()) for event in events])
