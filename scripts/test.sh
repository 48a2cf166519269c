#!/usr/bin/env bash
# Set up and run every check: lint, format, types, then the tests against real Redis,
# real PostgreSQL and SQLite (throwaway servers are started when none answers).
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python scripts/services.py -- .venv/bin/python -m pytest "$@"
