# Sourced by bootstrap.sh and lock.sh: puts the pinned uv at .venv/uv/bin/uv (in "$uv").
# uv installs and writes the locks in requirements/; pip installs uv itself, checking the
# hashes of requirements/uv.txt. It gets a small venv of its own so that syncing .venv to
# the lock, which removes whatever the lock does not name, never removes the installer.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python_bin="${PYTHON:-python3}"
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "aivbatch needs Python 3.11 or newer ($python_bin is older)" >&2; exit 1; }
uv_home=.venv/uv
uv_want="$(sha256sum requirements/uv.txt | cut -d' ' -f1)"
if [ ! -x "$uv_home/bin/uv" ] || [ "$(cat "$uv_home/.installed" 2>/dev/null)" != "$uv_want" ]; then
  rm -rf "$uv_home"
  "$python_bin" -m venv "$uv_home"
  "$uv_home/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r requirements/uv.txt
  echo "$uv_want" > "$uv_home/.installed"
fi
uv="$root/$uv_home/bin/uv"
