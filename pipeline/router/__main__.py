"""`python -m pipeline.router`: runs one router worker; start more to share the events topic."""

from faust import Worker

from pipeline import eventloop
from pipeline.config import Settings
from pipeline.router.app import create_app


def main() -> None:
    settings = Settings()
    eventloop.use_fastest_loop()
    app = create_app(settings)
    worker = Worker(app, loglevel="WARNING")
    worker.spinner = None  # its cursor codes and "OK ^" would land in `pipeline run`'s output
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
