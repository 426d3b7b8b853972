"""`python -m pipeline.api`: the admin API on 127.0.0.1."""

import uvicorn

from pipeline import eventloop
from pipeline.api.app import create_app
from pipeline.config import Settings

KEEP_ALIVE_S = 75  # as aiohttp's server, which the results service runs on


def main() -> None:
    settings = Settings()
    eventloop.use_fastest_loop()
    # Idle connections are kept longer than clients pool them (httpx: 5 s, uvicorn's default too):
    # at equal times a client sends its next request on a connection the server is closing, and
    # gets a reset (httpx.ReadError) on a request that may or may not have been carried out.
    uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.api_port, log_level="warning",
                timeout_keep_alive=KEEP_ALIVE_S)


if __name__ == "__main__":
    main()
