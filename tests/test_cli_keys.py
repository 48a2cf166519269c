"""`aivbatch keys`: made, listed and revoked in SQL; the secret is shown once and never listed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from models.apikeys import authenticate
from models.db import Database

AIVBATCH = str(Path(sys.executable).with_name("aivbatch"))
ROOT = Path(__file__).resolve().parents[1]


def keys(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `aivbatch keys ARGS` against ``database_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
    env["AIVBATCH_DATABASE_URL"] = database_url
    return subprocess.run(
        [AIVBATCH, "keys", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def key_id_in(text: str) -> str:
    """The key_… id named in a message."""
    return next(word for word in text.split() if word.startswith("key_"))


def test_keys_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'keys.db'}"  # not even its folder exists yet
    made = keys(url, "create", "--tenant", "acme", "--name", "ci runner")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("aivb-") and "\n" not in secret  # the secret alone, on stdout
    key_id = key_id_in(made.stderr)
    assert "shown only now" in made.stderr and secret not in made.stderr
    other = keys(url, "create", "--tenant", "beta")
    assert other.returncode == 0, other.stderr
    other_id = key_id_in(other.stderr)

    listed = keys(url, "list")
    assert listed.returncode == 0, listed.stderr
    for column in ("id", "tenant", "name", "prefix", "created", "last used", "revoked"):
        assert column in listed.stdout
    assert key_id in listed.stdout and other_id in listed.stdout
    assert "acme" in listed.stdout and "ci runner" in listed.stdout
    assert secret[:9] in listed.stdout  # the prefix, to recognise it…
    assert secret not in listed.stdout and secret[:12] not in listed.stdout  # …never the rest
    only_acme = keys(url, "list", "--tenant", "acme")
    assert key_id in only_acme.stdout and other_id not in only_acme.stdout

    db = Database.from_url(url)
    try:
        with db.read() as session:
            found = authenticate(session, secret)
            assert found is not None and found.id == key_id and found.tenant_id == "acme"
        revoked = keys(url, "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        assert f"revoked {key_id}" in revoked.stdout
        with db.read() as session:
            assert authenticate(session, secret) is None
    finally:
        db.dispose()

    rows = {
        line.split()[0]: line.rstrip()
        for line in keys(url, "list").stdout.splitlines()
        if line.startswith("key_")
    }
    assert rows[other_id].endswith(" no")
    assert not rows[key_id].endswith(" no")  # a revocation time instead


def test_keys_against_each_backend(database_url: str) -> None:
    made = keys(database_url, "create", "--tenant", "t1")
    assert made.returncode == 0, made.stderr
    key_id = key_id_in(made.stderr)
    assert key_id in keys(database_url, "list").stdout
    assert keys(database_url, "revoke", key_id).returncode == 0


def test_key_errors_are_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    unknown = keys(url, "revoke", "key_nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: no key 'key_nope'"
    blank = keys(url, "create", "--tenant", " ")
    assert blank.returncode == 1 and len(blank.stderr.strip().splitlines()) == 1
    assert "tenant" in blank.stderr and blank.stdout == ""
    empty = keys(url, "list")
    assert empty.returncode == 0 and "no keys" in empty.stderr
    down = keys("postgresql+psycopg://postgres@127.0.0.1:1/none", "list")
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1 and down.stderr.startswith("error: database")
