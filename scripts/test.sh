#!/usr/bin/env bash
# Set up and run every check: lint, format, types, then the tests against real Redis,
# real PostgreSQL and SQLite (throwaway servers are started when none answers).
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" dev
# The locks must say what pyproject.toml asks for, and what they installed must fit together.
bash scripts/lock.sh --check
.venv/uv/bin/python -m pip --python .venv/bin/python check
# The dashboard tests drive Debian's Chromium (Playwright never downloads a browser): install
# it when it is missing and this machine can (root with apt-get); otherwise those tests skip
# locally, and fail in CI.
if [ ! -x "${AIVBATCH_TEST_CHROMIUM:-/usr/bin/chromium}" ] && command -v apt-get >/dev/null \
   && [ "$(id -u)" = 0 ]; then
  echo "installing chromium for the dashboard tests (apt-get)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Two test processes (most tests wait on the processes they start); a module's tests stay in
# one, so its shared API process starts once. AIVBATCH_TEST_PROCESSES=0 runs them in this one.
exec .venv/bin/python scripts/services.py -- .venv/bin/python -m pytest \
  -n "${AIVBATCH_TEST_PROCESSES:-2}" --dist loadscope "$@"
