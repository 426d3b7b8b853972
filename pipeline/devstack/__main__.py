"""`python -m pipeline.devstack kafka start|stop|status`: the local broker, for the Makefile."""

import logging
import sys

from pipeline.config import Settings
from pipeline.devstack.kafka_broker import KafkaBroker
from pipeline.kafka.admin import broker_answers, ensure_core_topics


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] != ["kafka"] or len(argv) != 2 or argv[1] not in ("start", "stop", "status"):
        print("usage: python -m pipeline.devstack kafka start|stop|status", file=sys.stderr)
        return 2
    settings = Settings()
    broker = KafkaBroker(settings)
    if argv[1] == "start":
        broker.start()
        ensure_core_topics(settings)
    elif argv[1] == "stop":
        broker.stop()
    else:
        answering = broker_answers(settings.kafka_bootstrap_servers)
        print(f"Kafka at {settings.kafka_bootstrap_servers}: {'up' if answering else 'down'}")
        return 0 if answering else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
