"""aivbatch.toml and the routing table: what a file means, and what a bad one is told.

Requests checked against the table (refused at submission when no upstream can serve
them) are here too; through the API and the whole stack: test_upstreams_stack.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import ConfigError
from models.requests import Defaults, UnsupportedRequest, request_from
from models.routing import Routing
from models.settings import Settings
from models.upstreams import AIVVM_MODELS, config_path, parse_upstreams

GOOD = """
[[upstreams]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:8001/v1/"
api_key_env = "LOCAL_API_KEY"
models = ["llama-*", "qwen2.5-7b"]
model_map = { "gpt-4o-mini" = "qwen2.5-7b" }
max_in_flight = 64
requests_per_minute = 600
fallback = ["backup"]

[[upstreams]]
name = "backup"
kind = "openai"
base_url = "http://127.0.0.1:8002/v1"
models = ["qwen2.5-7b", "gpt-4o-mini"]

[[upstreams]]
name = "seed"
kind = "aivvm"
"""


def routing(text: str = GOOD, settings: Settings | None = None) -> Routing:
    return Routing(parse_upstreams(text, "aivbatch.toml", settings or Settings()))


def test_a_good_file_is_read_in_order_with_defaults_filled() -> None:
    table = routing(GOOD, Settings(aivvm_url="http://127.0.0.1:9/"))
    local, backup, seed = table
    assert (local.name, local.kind, local.base_url) == (
        "local",
        "openai",
        "http://127.0.0.1:8001/v1",
    )
    assert (local.max_in_flight, local.requests_per_minute, local.fallback) == (
        64,
        600,
        ("backup",),
    )
    assert local.api_key_env == "LOCAL_API_KEY" and local.limited and not backup.limited
    assert (seed.kind, seed.base_url, seed.models) == ("aivvm", "http://127.0.0.1:9", AIVVM_MODELS)
    assert local.key(Settings(), {"LOCAL_API_KEY": "sk-1"}) == "sk-1"
    assert seed.key(Settings(aivvm_key="k"), {}) == "k"


def test_models_route_to_the_first_upstream_that_serves_them() -> None:
    table = routing()
    cases = {
        "llama-3.1-8b": ("local", "llama-3.1-8b"),
        "qwen2.5-7b": ("local", "qwen2.5-7b"),
        "gpt-4o-mini": ("local", "qwen2.5-7b"),  # model_map, before backup's own name
        "gpt-4": ("seed", "gpt-4"),
    }
    for model, (upstream, name) in cases.items():
        route = table.route(model)
        assert route is not None and (route.upstream.name, route.model) == (upstream, name)
    assert table.route("gpt-4o") is None
    assert table.served()[0][0] == "gpt-4o-mini"
    assert "llama-*" in table.served_text() and "gpt-4o" not in table.served_text().split(", ")


def test_the_fallback_chain_is_walked_in_turn_and_a_fallback_uses_its_own_names() -> None:
    table = routing()
    assert table.chain("gpt-4o-mini") == ["local", "backup"]
    assert table.after("gpt-4o-mini", "local") == "backup"
    assert table.after("gpt-4o-mini", "backup") == "local"
    assert table.after("gpt-4", "seed") == "seed"  # no fallback: the same one again
    on_backup = table.on("backup", "gpt-4o-mini")
    assert on_backup is not None and on_backup.model == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[upstreams]\nname=", "not valid TOML"),
        ("", "upstreams: Field required"),
        (
            '[[upstreams]]\nname = "a"\nkind = "grpc"\nmodels=["m"]',
            "upstreams[0] (a).kind: Input should be 'openai' or 'aivvm'",
        ),
        (
            '[[upstreams]]\nname = "a"\nkind = "openai"\nmodels=["m"]',
            "upstreams[0] (a).base_url: required for kind 'openai'",
        ),
        (
            '[[upstreams]]\nname = "a"\nkind = "openai"\nbase_url="ftp://x"\nmodels=["m"]',
            "upstreams[0] (a).base_url: String should match pattern",
        ),
        (
            '[[upstreams]]\nname = "a"\nkind = "aivvm"\nmax_in_flight = 0',
            "upstreams[0] (a).max_in_flight: Input should be greater than 0",
        ),
        (
            '[[upstreams]]\nname = "a"\nkind = "aivvm"\nmax_in_flight = "8"',
            "upstreams[0] (a).max_in_flight: Input should be a valid integer",
        ),
        (
            '[[upstreams]]\nname = "a"\nkind = "aivvm"\nmax_inflight = 8',
            "upstreams[0] (a).max_inflight: Extra inputs are not permitted",
        ),
        (
            '[[upstreams]]\nname = "a"\nkind = "aivvm"\nfallback = ["b"]',
            "upstreams[0] (a).fallback: no upstream is named 'b'",
        ),
        (
            '[[upstreams]]\nname = "a"\nkind = "aivvm"\nfallback = ["a"]',
            "upstreams[0] (a).fallback: names itself",
        ),
        (
            '[[upstreams]]\nname = "a"\nkind = "aivvm"\n[[upstreams]]\nname = "a"\nkind = "aivvm"',
            "upstreams[1].name: 'a' is already the name of upstreams[0]",
        ),
        (
            '[[upstreams]]\nname = "a b"\nkind = "aivvm"',
            "upstreams[0] (a b).name: String should match pattern",
        ),
        (
            '[[upstreams]]\nname = "a"\nkind = "openai"\nbase_url="http://x/v1"',
            "upstreams[0] (a).models: name at least one model",
        ),
        (
            '[[upstreams]]\nname = "a"\nkind = "aivvm"\nmodel_map = { "x" = "gpt-5" }',
            "upstreams[0] (a).model_map.x: 'gpt-5' is not an Aivvm model",
        ),
        (
            '[[upstreams]]\nname = "a"\nkind = "openai"\nbase_url="http://x/v1"\nmodels=["m"]\n'
            'api_key_env = "MY-KEY"',
            "upstreams[0] (a).api_key_env: String should match pattern",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_upstreams(text, "aivbatch.toml", Settings())
    assert str(caught.value).startswith("aivbatch.toml: ")
    assert message in str(caught.value)


def test_the_file_is_aivbatch_config_else_aivbatch_toml_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert config_path(Settings()) is None
    default = Routing.from_settings(Settings(aivvm_url="http://127.0.0.1:9"))
    assert [(u.name, u.kind, u.base_url) for u in default] == [
        ("aivvm", "aivvm", "http://127.0.0.1:9")
    ]
    (tmp_path / "aivbatch.toml").write_text(GOOD)
    assert [u.name for u in Routing.from_settings(Settings())] == ["local", "backup", "seed"]
    other = tmp_path / "other.toml"
    other.write_text('[[upstreams]]\nname = "only"\nkind = "aivvm"\n')
    assert [u.name for u in Routing.from_settings(Settings(config=other))] == ["only"]
    with pytest.raises(ConfigError, match="missing.toml: cannot be read"):
        Routing.from_settings(Settings(config=tmp_path / "missing.toml"))


def line(body: dict[str, object], url: str = "/v1/chat/completions") -> dict[str, object]:
    return {"custom_id": "q", "method": "POST", "url": url, "body": body}


def test_requests_bind_to_their_upstream_and_keep_every_field() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}
        ],
        "max_tokens": 5,
        "tools": [],
        "stream": False,
        "stream_options": {"include_usage": False},
    }
    job = request_from(line(body), Defaults(endpoint="/v1/chat/completions"), routing())
    assert (job.model, job.upstream) == ("gpt-4o-mini", "local")
    assert job.params == {"max_tokens": 5, "tools": []}
    assert job.messages == body["messages"]


@pytest.mark.parametrize(
    ("request_", "defaults", "message"),
    [
        (
            line({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}),
            Defaults(),
            "model 'gpt-4o' is not served here; models served: gpt-4o-mini, qwen2.5-7b",
        ),
        (
            line({"model": "gpt-4", "input": "x"}, "/v1/embeddings"),
            Defaults(endpoint="/v1/embeddings"),
            "model 'gpt-4' is served by upstream 'seed' (kind aivvm), which supports only"
            " /v1/chat/completions, not /v1/embeddings",
        ),
        (
            line(
                {"model": "gpt-4", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}
            ),
            Defaults(),
            "which takes only messages, temperature and system_message, not max_tokens",
        ),
        (
            line(
                {
                    "model": "gpt-4",
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "image_url", "image_url": {"url": "u"}}],
                        }
                    ],
                }
            ),
            Defaults(),
            "messages[0].content: model 'gpt-4' is served by upstream 'seed' (kind aivvm),"
            " which takes text only, not image_url parts",
        ),
        (
            line(
                {
                    "model": "gpt-4",
                    "messages": [{"role": "tool", "tool_call_id": "c", "content": "x"}],
                }
            ),
            Defaults(),
            "only text messages of the roles system, developer, user, assistant, not role tool",
        ),
    ],
)
def test_what_no_upstream_can_serve_is_refused_naming_what_is_served(
    request_: dict[str, object], defaults: Defaults, message: str
) -> None:
    with pytest.raises(UnsupportedRequest) as caught:
        request_from(request_, defaults, routing())
    assert message in str(caught.value)


def test_text_parts_are_joined_for_the_aivvm_protocol() -> None:
    parts = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]
    job = request_from(
        line({"model": "gpt-4", "messages": [{"role": "user", "content": parts}]}),
        Defaults(),
        routing(),
    )
    assert job.messages == [{"role": "user", "content": "Hello, world"}]
    assert (job.upstream, job.chars_in) == ("seed", 12)
