"""Typed settings, read once from the environment (prefix PIPELINE_) and passed in.

KAFKA_BOOTSTRAP_SERVERS and CLICKHOUSE_DSN are also read without the prefix, because
that is how tests and deployments point the pipeline at services they started themselves.
"""

from __future__ import annotations

from pathlib import Path

from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIPELINE_", extra="ignore", populate_by_name=True)

    data_dir: Path = PROJECT_ROOT / ".data"

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "PIPELINE_KAFKA_BOOTSTRAP_SERVERS"),
    )
    kafka_version: str = Field("4.1.1", description="The local broker's version; 3.9.x works too.")
    kafka_controller_port: int = 19093
    kafka_heap: str = Field("1g", description="Enough for ten thousand single-partition endpoint topics.")

    topic_prefix: str = Field("whk.", description="Namespaces every topic; tests use a fresh one each.")
    events_partitions: int = 8
    endpoint_partitions: int = Field(
        1, ge=1, description="Partitions of a new endpoint topic: one owner per endpoint, lanes per key inside it.")
    endpoint_topic_pool: int = Field(
        0, ge=0, le=10_000, description="Endpoint topics the admin API keeps made ahead, so a burst of new "
                                        "subscriptions does not wait for the broker to create each one's topic.")
    # The results sink inserts once per partition per batch, and each insert costs ClickHouse
    # about the same whatever its size: more partitions only pay off with more sinks (server mode).
    results_partitions: int = 2

    clickhouse_dsn: str = Field(
        "",
        validation_alias=AliasChoices("CLICKHOUSE_DSN", "PIPELINE_CLICKHOUSE_DSN"),
        description="chdb:///<dir> for embedded ClickHouse, http(s)://... for a server; empty means embedded under data_dir.",
    )
    clickhouse_database: str = "webhooks"
    results_retention_days: int = Field(90, ge=1, description="Attempts and routing decisions are kept this long.")
    results_outcome_grace_s: float = Field(
        60.0, gt=0, description="An attempt's intent with no outcome this long past its request's timeout is stored as "
                                "outcome unknown (its dispatcher died during the request).")
    backlog_horizon_days: float | None = Field(
        None, gt=0, description="How long endpoint, delay and dead-letter topics keep a record: what is still "
                                "undelivered after this long is deleted (and reported as lost). None keeps it until "
                                "it is delivered or redriven (Kafka's time retention off).")

    secrets_key: SecretStr | None = Field(
        None, description="Fernet key sealing subscription secrets at rest; a local key file when unset.")
    api_tokens: SecretStr | None = Field(
        None, description='JSON {"token": "tenant", "*" or {"tenant": ..., "scopes": [...]}}; a local admin token '
                          'file when unset.')
    api_token: SecretStr | None = Field(
        None, description="The token the CLI presents to the results service; an admin token of api_tokens when unset.")
    idempotency_window_s: float = Field(
        86_400, gt=0, description="How long POST /v1/events remembers an event id or Idempotency-Key.")
    secret_rotation_overlap_s: float = Field(86_400, description="How long a rotated-out secret keeps signing.")

    http_client: str = Field("aiohttp", pattern="^(aiohttp|httpx)$")
    allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Networks deliveries may reach despite the SSRF guard, e.g. 127.0.0.0/8.")
    allow_http: bool = Field(False, description="Deliver to plain http:// URLs (local development and tests).")
    max_connections_per_host: int = 32
    retry_schedule_s: tuple[float, ...] = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
    max_request_bytes: int = Field(1024 * 1024, description="Larger request bodies are dead-lettered.")
    max_record_bytes: int = Field(
        1_000_000, description="The largest Kafka record a stage writes (librdkafka's message.max.bytes); "
                               "the broker's message.max.bytes must be at least this.")
    max_retry_after_s: float = Field(3600, description="The longest Retry-After honoured.")
    auto_disable_after_s: float = Field(5 * 86_400, description="Only failures for this long disable an endpoint.")
    auto_disable_min_failures: int = Field(20, description="... and at least this many of them.")
    max_in_flight_per_partition: int = 64
    max_uncommitted_per_partition: int = Field(
        10_000, description="Finished tasks a partition may hold behind one still retrying, before it pauses.")
    max_connections: int = 200
    dispatcher_shards: int = Field(
        64, ge=1, description="Endpoints hash to this many shards, which dispatchers share; it bounds how many can share work.")
    dispatcher_session_timeout_ms: int = Field(
        10_000, description="A dispatcher that stops answering for this long has its shards handed to the others.")
    dispatcher_park_idle_s: float = Field(
        2.0, ge=2.0, description="An endpoint partition with nothing new for this long stops being fetched until it "
                                 "grows; longer than the second between two doorbells of one endpoint. Every fetch "
                                 "names each partition not parked, so the broker's work per fetch grows with them.")
    dispatcher_renew_after_topics: int = Field(
        500, ge=1, description="The dispatcher's endpoint consumer is replaced by a new one once it knows this many more "
                               "topics than it has partitions assigned: librdkafka keeps every topic it was assigned, "
                               "parked endpoints' included, and its work grows with them.")
    dispatcher_parked_sweep_s: float = Field(
        10.0, description="How often parked endpoint partitions' end offsets are looked at, should a doorbell be missed.")
    shutdown_grace_s: float = 5.0

    router_web_port: int = 6066
    results_port: int = 8601
    api_port: int = 8600
    receiver_port: int = 8700
    # Prometheus metrics: the admin API and the results service serve /metrics on their own ports;
    # the router and the dispatcher have no HTTP server of their own, so they get one here. A port
    # already taken (a second dispatcher on the machine) makes the stage take the next free one of
    # METRICS_PORT_TRIES; 0 turns the stage's metrics off.
    router_metrics_port: int = Field(9601, ge=0, description="The router's /metrics; 0 turns it off.")
    dispatcher_metrics_port: int = Field(9602, ge=0, description="The dispatcher's /metrics; 0 turns it off.")
    backlog_metrics_interval_s: float = Field(
        15.0, gt=0, description="How often a dispatcher measures its endpoints' backlogs for its metrics.")

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @property
    def resolved_clickhouse_dsn(self) -> str:
        return self.clickhouse_dsn or f"chdb://{self.data_dir / 'clickhouse'}"
