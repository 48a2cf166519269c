#!/usr/bin/env bash
# Writes the hash-pinned locks in requirements/ from pyproject.toml, with the pinned uv:
#   bash scripts/lock.sh            after editing pyproject.toml: adds and drops what changed,
#                                   keeps every other pin
#   bash scripts/lock.sh --upgrade  moves every package to its newest release that
#                                   pyproject.toml allows (the refresh)
#   bash scripts/lock.sh --check    fails when pyproject.toml and the locks disagree (CI)
# dev.txt is resolved first; run.txt is then held to its versions, so the tests run on
# exactly what a deployment installs. build.txt pins the build backend. Each lock is
# universal (every platform, Python 3.11 and newer) and names no index: the installer's own.
source "$(dirname "${BASH_SOURCE[0]}")/uv.sh"
mode="${1:-}"
case "$mode" in "" | --upgrade | --check) ;; *) echo "usage: $0 [--upgrade | --check]" >&2; exit 2 ;; esac

compile() {  # compile OUTPUT [uv pip compile options…]: from the working directory
  local out="$1"
  shift
  "$uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --custom-compile-command "bash scripts/lock.sh" ${upgrade:+--upgrade} -o "$out" "$@"
}

write_locks() {  # in the working directory, which holds pyproject.toml and requirements/
  "$python_bin" -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
    | compile requirements/build.txt --no-annotate -
  compile requirements/dev.txt pyproject.toml --extra dev
  compile requirements/run.txt pyproject.toml -c requirements/dev.txt
}

upgrade=""
if [ "$mode" = --upgrade ]; then
  upgrade=1
fi
if [ "$mode" != --check ]; then
  write_locks
  exit 0
fi
# Lock a copy, starting from the committed pins: the same files come out unless
# pyproject.toml asks for something they do not hold.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp pyproject.toml "$scratch/"
cp -r requirements "$scratch/"
(cd "$scratch" && write_locks)
if ! diff -ru requirements "$scratch/requirements"; then
  echo "requirements/ does not match pyproject.toml: run 'bash scripts/lock.sh' and commit" \
    "what it changes" >&2
  exit 1
fi
