"""`python -m pipeline.receiver [--port N] [--secret whsec_...]`: the same as `pipeline receiver`.

Its own one-command app, so a receiver process imports only what receiving needs.
"""

import typer

from pipeline.cli.receiver import register


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
