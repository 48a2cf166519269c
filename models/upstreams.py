"""The upstreams of a deployment: read from ``aivbatch.toml``, or the Aivvm default.

    [[upstreams]]
    name = "local"                     # shown in results, metrics and errors
    kind = "openai"                    # or "aivvm"
    base_url = "http://127.0.0.1:8001/v1"
    api_key_env = "LOCAL_API_KEY"      # the key is read from this variable by the workers
    models = ["llama-*", "qwen2.5-7b"] # glob patterns; the first upstream that matches serves
    model_map = { "gpt-4o-mini" = "qwen2.5-7b" }   # requested name -> the upstream's name
    max_in_flight = 64                 # streams at once across all workers
    requests_per_minute = 600
    fallback = ["backup"]              # tried when this one fails in a way a retry may fix

The file is ``AIVBATCH_CONFIG``, else ``./aivbatch.toml`` when it exists; without one the
deployment has one upstream, ``aivvm``, at ``AIVBATCH_AIVVM_URL``. A bad file is a
``ConfigError`` naming the key, raised when a process starts. Keys are never held here:
only the name of the variable that holds one.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from models.errors import ConfigError
from models.settings import Settings

DEFAULT_CONFIG = Path("aivbatch.toml")
AIVVM_URL = "https://chat.aivvm.com"
# The models of the seed's Aivvm table (worker/providers/aivvm.py sends their display names).
AIVVM_MODELS = (
    "gpt-3.5-turbo",
    "gpt-3.5-turbo-0613",
    "gpt-3.5-turbo-16k",
    "gpt-3.5-turbo-16k-0613",
    "gpt-4",
    "gpt-4-0613",
    "gpt-4-32k",
    "gpt-4-32k-0613",
)
DEFAULT_UPSTREAM = "aivvm"
Kind = Literal["openai", "aivvm"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream: where it is, what it serves, how much it may be asked at once."""

    name: str
    kind: str
    base_url: str
    models: tuple[str, ...]
    model_map: Mapping[str, str] = field(default_factory=dict)
    api_key_env: str | None = None
    max_in_flight: int | None = None
    requests_per_minute: int | None = None
    fallback: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def limited(self) -> bool:
        """Whether the deployment must count this upstream's streams or requests."""
        return self.max_in_flight is not None or self.requests_per_minute is not None

    def key(self, settings: Settings, environ: Mapping[str, str]) -> str:
        """The key sent to this upstream: from its ``api_key_env`` variable (named by the
        file, so read from the environment handed in), else the Aivvm default's setting."""
        if self.api_key_env:
            return environ.get(self.api_key_env, "")
        if self.kind == "aivvm":
            return settings.aivvm_key.get_secret_value()
        return ""


class _Entry(BaseModel):
    """One ``[[upstreams]]`` table, as written."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=_NAME)
    kind: Kind
    base_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    models: list[str] | None = Field(default=None, min_length=1)
    model_map: dict[str, str] = Field(default_factory=dict)
    max_in_flight: PositiveInt | None = None
    requests_per_minute: PositiveInt | None = None
    fallback: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    upstreams: list[_Entry] = Field(min_length=1)


def config_path(settings: Settings) -> Path | None:
    """The routing file in force: ``AIVBATCH_CONFIG``, else ``./aivbatch.toml`` if present."""
    if settings.config is not None:
        return settings.config
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def default_upstreams(settings: Settings) -> list[Upstream]:
    """The deployment without a routing file: the Aivvm upstream, as before there was one."""
    return [
        Upstream(
            name=DEFAULT_UPSTREAM,
            kind="aivvm",
            base_url=(settings.aivvm_url or AIVVM_URL).rstrip("/"),
            models=AIVVM_MODELS,
        )
    ]


def load_upstreams(settings: Settings) -> tuple[list[Upstream], str]:
    """The upstreams in force and where they come from; raises ConfigError naming the key."""
    path = config_path(settings)
    if path is None:
        return default_upstreams(settings), "the default Aivvm upstream (no aivbatch.toml)"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_upstreams(text, str(path), settings), str(path)


def parse_upstreams(text: str, source: str, settings: Settings) -> list[Upstream]:
    """The upstreams of a routing file's text; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    try:
        entries = _File.model_validate(data).upstreams
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_problems(exc, data)}") from None
    upstreams = [_upstream(entry, i, source, settings) for i, entry in enumerate(entries)]
    _check_names(upstreams, source)
    return upstreams


def _upstream(entry: _Entry, i: int, source: str, settings: Settings) -> Upstream:
    where = f"{source}: upstreams[{i}] ({entry.name})"
    base_url = entry.base_url
    if base_url is None:
        if entry.kind != "aivvm":
            raise ConfigError(f"{where}.base_url: required for kind {entry.kind!r}")
        base_url = settings.aivvm_url or AIVVM_URL
    models = tuple(entry.models) if entry.models is not None else ()
    if not models and entry.kind == "aivvm":
        models = AIVVM_MODELS
    if not models and not entry.model_map:
        raise ConfigError(f"{where}.models: name at least one model (glob patterns allowed)")
    for requested, upstream_name in entry.model_map.items():
        if not requested.strip() or not upstream_name.strip():
            raise ConfigError(f"{where}.model_map: names must not be empty")
        if entry.kind == "aivvm" and upstream_name not in AIVVM_MODELS:
            raise ConfigError(
                f"{where}.model_map.{requested}: {upstream_name!r} is not an Aivvm model"
                f" ({', '.join(AIVVM_MODELS)})"
            )
    return Upstream(
        name=entry.name,
        kind=entry.kind,
        base_url=base_url.rstrip("/"),
        models=models,
        model_map=dict(entry.model_map),
        api_key_env=entry.api_key_env,
        max_in_flight=entry.max_in_flight,
        requests_per_minute=entry.requests_per_minute,
        fallback=tuple(entry.fallback),
        headers=dict(entry.headers),
    )


def _check_names(upstreams: list[Upstream], source: str) -> None:
    names: dict[str, int] = {}
    for i, upstream in enumerate(upstreams):
        if upstream.name in names:
            raise ConfigError(
                f"{source}: upstreams[{i}].name: {upstream.name!r} is already the name of"
                f" upstreams[{names[upstream.name]}]"
            )
        names[upstream.name] = i
    for i, upstream in enumerate(upstreams):
        for other in upstream.fallback:
            if other == upstream.name:
                raise ConfigError(
                    f"{source}: upstreams[{i}] ({upstream.name}).fallback: names itself"
                )
            if other not in names:
                raise ConfigError(
                    f"{source}: upstreams[{i}] ({upstream.name}).fallback: no upstream is named"
                    f" {other!r} (names: {', '.join(names)})"
                )


def _problems(exc: ValidationError, data: Any) -> str:
    """Pydantic's errors as ``upstreams[1] (local).max_in_flight: …``, the first few."""
    shown = []
    for error in exc.errors()[:3]:
        shown.append(f"{_where(error['loc'], data)}: {error['msg']}")
    more = f" (and {len(exc.errors()) - 3} more)" if len(exc.errors()) > 3 else ""
    return "; ".join(shown) + more


def _where(loc: tuple[Any, ...], data: Any) -> str:
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" ({node['name']})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return re.sub(r"^\.", "", out) or "the file"
