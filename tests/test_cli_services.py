"""`aivbatch emulator` serves the Aivvm protocol, and the seed's example reads an answer
from it when AIVBATCH_AIVVM_URL points there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cli.embedded import free_port

AIVBATCH = str(Path(sys.executable).with_name("aivbatch"))
ROOT = Path(__file__).resolve().parents[1]
SEED = """\
from worker.providers.aivvm import Aivvm
from worker.providers.base import Messages

provider = Aivvm()
messages: Messages = [{"role": "user", "content": "Привет! Как дела?"}]
response = provider.create_completion(model="gpt-3.5-turbo", messages=messages, stream=True)
for chunk in response:
    print(chunk)
"""


def test_the_emulator_command_serves_the_seed_example(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
    log = (tmp_path / "emulator.log").open("wb")
    proc = subprocess.Popen(
        [AIVBATCH, "emulator", "--host", "127.0.0.1", "--port", str(port), "--chunks", "6"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                models = httpx.get(url + "/api/models", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert {m["id"] for m in models.json()} >= {"gpt-3.5-turbo", "gpt-4"}
        assert models.headers["x-aivvm-emulator"] == "aivbatch"
        assert "stand-in" in (tmp_path / "emulator.log").read_text()

        script = tmp_path / "seed.py"
        script.write_text(SEED, encoding="utf-8")
        run = subprocess.run(
            [sys.executable, str(script)],
            cwd=ROOT,
            env={**env, "AIVBATCH_AIVVM_URL": url, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        printed = run.stdout.splitlines()
        assert len(printed) == 6  # one line per streamed chunk
        assert any("а" <= c <= "я" for c in "".join(printed))  # a Russian answer to Russian
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        log.close()
    # uvicorn re-raises the signal it stopped on, once it has shut down cleanly.
    assert proc.returncode in (0, -signal.SIGTERM)
