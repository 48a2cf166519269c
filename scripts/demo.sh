#!/usr/bin/env bash
# The README's first command: set up .venv on first run, then run the demo on embedded
# defaults (SQLite in .aivbatch/, an embedded Redis when none answers, the Aivvm emulator).
# Arguments go to `aivbatch demo` (try --help).
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" run
exec .venv/bin/aivbatch demo "$@"
