"""The `aivbatch` command line: client commands, process commands, the local stack."""
