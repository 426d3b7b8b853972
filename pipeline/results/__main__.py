"""`python -m pipeline.results`: the results service (sink and query server) until SIGINT or SIGTERM."""

from pipeline.results.service import main

if __name__ == "__main__":
    main()
