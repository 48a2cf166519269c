# Sourced by the other scripts: make .venv hold exactly the locked packages and the project
# (editable), installing again only when pyproject.toml, a lock or this script changed.
# "run" (the default) installs requirements/run.txt, "dev" requirements/dev.txt: every
# package at its pinned version, each file checked against the hashes in the lock.
source "$(dirname "${BASH_SOURCE[0]}")/uv.sh"
want_set="${1:-run}"
case "$want_set" in run | dev) ;; *) echo "bootstrap.sh: run or dev, not $want_set" >&2; exit 2 ;; esac
if [ ! -x .venv/bin/python ]; then
  # No pip in it: .venv holds the lock and nothing else (uv installs, .venv/uv has pip).
  "$python_bin" -m venv --without-pip .venv
fi
stamp=".venv/.aivbatch-installed"
want="$(cat scripts/bootstrap.sh pyproject.toml requirements/build.txt requirements/uv.txt \
  "requirements/$want_set.txt" | sha256sum | cut -d' ' -f1)-$want_set"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # Compiled now, as pip would: where PYTHONDONTWRITEBYTECODE is set, nothing caches the
  # bytecode later, and every process would compile every module it imports (2.5x the CPU).
  "$uv" pip sync --quiet --python .venv/bin/python --require-hashes --compile-bytecode \
    "requirements/$want_set.txt"
  # The project's build backend (setuptools) is pinned and hash-checked as well.
  "$uv" pip install --quiet --python .venv/bin/python --no-deps --preview-features \
    build-dependency-hashes --require-build-hashes --build-constraints requirements/build.txt -e .
  echo "$want" > "$stamp"
fi
