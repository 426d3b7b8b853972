"""Every Kafka client the pipeline makes is configured here."""
