"""``python -m emulator [flags]``: serve the emulator with uvicorn (httptools, uvloop)."""

from __future__ import annotations

import argparse
import logging
import socket
import sys

import uvicorn
from pydantic import ValidationError

from emulator.app import EmulatedReset, create_app
from emulator.config import EmulatorSettings

_FLAGS: list[tuple[str, type, str]] = [
    ("host", str, "address to listen on"),
    ("port", int, "port to listen on (0: any free port)"),
    ("chunks", int, "body chunks per answer"),
    ("chunk_size", int, "bytes per chunk (the answer is about chunks x chunk-size bytes)"),
    ("ttfb_ms", float, "milliseconds before the first chunk"),
    ("delay_ms", float, "milliseconds between chunks"),
    ("fault_rate", float, "share of calls faulted, 0..1, deterministic per request"),
    ("faults", str, "comma list of fault kinds drawn by --fault-rate"),
    ("fault_times", int, "at most this many rate faults per request fingerprint"),
    ("retry_after", int, "Retry-After seconds of a 429"),
    ("stall_seconds", float, "silence of a stall before the answer resumes"),
    ("openai_models", str, "comma list of the models served under /v1 (the OpenAI protocol)"),
    ("api_key", str, "key /v1 calls must send as 'Authorization: Bearer KEY'"),
]


class _DropEmulatedResets(logging.Filter):
    """Keep the log for real errors: a reset fault is raised on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], EmulatedReset))


def parse_settings(argv: list[str] | None = None) -> EmulatorSettings:
    """Settings from flags, falling back to AIVBATCH_EMULATOR_* variables, then defaults."""
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description="The emulator of an LLM upstream, speaking the Aivvm protocol (/api) and "
        "the OpenAI protocol (/v1) on one port: a stand-in, not a real service. "
        "Each flag defaults to AIVBATCH_EMULATOR_<NAME>, else to the value shown.",
    )
    defaults = EmulatorSettings.model_fields
    for name, kind, help_text in _FLAGS:
        default = defaults[name].default
        shown = ",".join(default) if isinstance(default, tuple) else default
        shown = "none: no auth" if default is None else shown
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            default=argparse.SUPPRESS,
            help=f"{help_text} (default: {shown})",
        )
    given = vars(parser.parse_args(argv))
    try:
        return EmulatorSettings(**given)
    except ValidationError as exc:
        parser.error(str(exc))


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # So a restarted emulator can take its port back at once.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    return sock


def main(argv: list[str] | None = None) -> None:
    """Bind, announce, serve until SIGINT or SIGTERM."""
    settings = parse_settings(argv)
    sock = _listen(settings.host, settings.port)
    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        http="httptools",
        lifespan="off",
        ws="none",
        access_log=False,
        log_level="warning",
        server_header=False,
        backlog=4096,
        # Stalled streams would otherwise hold a shutdown for stall_seconds.
        timeout_graceful_shutdown=1,
    )
    logging.getLogger("uvicorn.error").addFilter(_DropEmulatedResets())
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    auth = "key required" if settings.api_key else "no auth"
    sys.stderr.write(
        f"aivbatch emulator (Aivvm at /api, OpenAI-compatible at /v1) — a stand-in, not the "
        f"real service — listening on http://{shown}:{port} "
        f"(chunks {settings.chunks}×{settings.chunk_size} B, ttfb {settings.ttfb_ms:g} ms, "
        f"delay {settings.delay_ms:g} ms, fault rate {settings.fault_rate:g}; /v1 models "
        f"{','.join(settings.openai_models)}, {auth})\n"
    )
    sys.stderr.flush()
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
