"""`python -m pipeline.receiver`: the same as `pipeline receiver`."""

from pipeline.cli.main import app

if __name__ == "__main__":
    app(["receiver", *__import__("sys").argv[1:]])
