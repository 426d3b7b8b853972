"""The results stage: delivery attempts and routing decisions from Kafka into ClickHouse,
exactly once, and the statistics queries over them (HTTP, for the CLI, the admin API and the dashboard)."""
