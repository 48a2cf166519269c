"""The HTTP API and the `aivbatch` command line."""
