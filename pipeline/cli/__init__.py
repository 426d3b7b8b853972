"""The `pipeline` command line."""
