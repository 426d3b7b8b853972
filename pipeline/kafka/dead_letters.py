"""Dead letters: what a stage could not route or deliver, kept with the reason.

A dead letter is the original record (key, value) with headers saying why (`error`, and more
the caller adds) and where it came from (`source-topic`, `source-partition`, `source-offset`).
When that does not fit in one Kafka record, the dead letter keeps a reference instead of the
payload: the same headers, an empty value, and `payload: reference` with the original's
`source-size` and `source-sha256`. The original stays in its topic, for its retention.
"""

from __future__ import annotations

import hashlib

from pipeline.kafka.position import Position
from pipeline.kafka.writer import Headers, KafkaWriter

MAX_REASON_BYTES = 2048  # a reason is for people; one that long was never meant to be read whole


def dead_letter(writer: KafkaWriter, topic: str, key: bytes | None, value: bytes, position: Position,
                reason: str, extra_headers: Headers = None) -> bool:
    """Writes the dead letter; True if it holds the payload, False if only a reference to it."""
    headers = [("error", reason.encode("utf-8", "replace")[:MAX_REASON_BYTES]), *(extra_headers or ()),
               *position.headers()]
    if writer.fits(key, value, headers):
        writer.write(topic, key, value, headers)
        return True
    headers += reference_headers(value)
    if not writer.fits(key, b"", headers):
        key = None  # a key too large to keep beside the headers: the original record still has it
    writer.write(topic, key, b"", headers)
    return False


def reference_headers(value: bytes) -> list[tuple[str, bytes]]:
    return [("payload", b"reference"), ("source-size", str(len(value)).encode()),
            ("source-sha256", hashlib.sha256(value).hexdigest().encode())]


def is_reference(headers: dict[str, bytes]) -> bool:
    return headers.get("payload") == b"reference"
