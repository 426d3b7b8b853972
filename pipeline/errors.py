"""The project's exception tree.

PipelineError
 ├── InvalidInput          bad input from a user or producer; the message names the field
 │    └── InvalidEvent     an event that cannot be routed (goes to the dead-letter topic)
 ├── CodecError            bytes that are not a known Avro single-object or JSON message
 └── ServiceError          a local service (broker, ClickHouse) could not be started or reached
"""


class PipelineError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidInput(PipelineError):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def error_body(field: str | None, problem: str) -> dict[str, dict[str, str | None]]:
    """The one shape of every error the HTTP APIs answer; `field` is None when no input is at fault."""
    return {"error": {"field": field, "problem": problem}}


class InvalidEvent(InvalidInput):
    pass


class CodecError(PipelineError):
    pass


class ServiceError(PipelineError):
    pass
