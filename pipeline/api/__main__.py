"""`python -m pipeline.api`: the admin API on 127.0.0.1."""

import uvicorn

from pipeline import eventloop
from pipeline.api.app import create_app
from pipeline.config import Settings


def main() -> None:
    settings = Settings()
    eventloop.use_fastest_loop()
    uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.api_port, log_level="warning")


if __name__ == "__main__":
    main()
