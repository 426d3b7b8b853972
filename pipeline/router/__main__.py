"""`python -m pipeline.router`: runs one router worker; start more to share the events topic."""

from faust import Worker

from pipeline.config import Settings
from pipeline.router.app import create_app


def main() -> None:
    settings = Settings()
    app = create_app(settings)
    Worker(app, loglevel="WARNING").execute_from_commandline()


if __name__ == "__main__":
    main()
