"""`aivbatch submit`'s input files: three formats, and every bad line named before sending."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.inputs import InputError, parse_lines, read_requests

HELLO = "Привет! Как дела?"


def jsonl(*objs: object) -> list[str]:
    return [json.dumps(o, ensure_ascii=False) for o in objs]


def test_native_lines_pass_through() -> None:
    line = {
        "custom_id": "a",
        "model": "gpt-4",
        "temperature": 0.2,
        "messages": [{"role": "user", "content": HELLO}],
    }
    parsed = parse_lines(jsonl(line))
    assert parsed.format == "native"
    assert parsed.requests == [line]


def test_openai_lines_become_native_requests() -> None:
    parsed = parse_lines(
        jsonl(
            {
                "custom_id": "request-1",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "gpt-3.5-turbo",
                    "messages": [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": HELLO},
                    ],
                    "temperature": 0.5,
                },
            }
        )
    )
    assert parsed.format == "openai"
    assert parsed.requests == [
        {
            "custom_id": "request-1",
            "model": "gpt-3.5-turbo",
            "temperature": 0.5,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": HELLO},
            ],
        }
    ]


def test_both_json_formats_may_be_mixed() -> None:
    parsed = parse_lines(
        jsonl(
            {"custom_id": "n", "messages": [{"role": "user", "content": "hi"}]},
            {"custom_id": "o", "body": {"messages": [{"role": "user", "content": "hi"}]}},
        )
    )
    assert parsed.format == "native+openai"
    assert [r["custom_id"] for r in parsed.requests] == ["n", "o"]


def test_text_lines_are_prompts_numbered_by_file_line() -> None:
    parsed = parse_lines(["What is 2 + 2?", "", HELLO, "   "])
    assert parsed.format == "text"
    assert parsed.requests == [
        {"custom_id": "line-1", "messages": [{"role": "user", "content": "What is 2 + 2?"}]},
        {"custom_id": "line-3", "messages": [{"role": "user", "content": HELLO}]},
    ]


def test_a_text_file_may_be_forced_even_when_it_looks_like_json() -> None:
    parsed = parse_lines(['{"not": "json lines"}'], "text")
    assert parsed.requests[0]["messages"][0]["content"] == '{"not": "json lines"}'


def test_every_bad_line_is_reported_with_its_number() -> None:
    lines = [
        json.dumps({"custom_id": "ok", "messages": [{"role": "user", "content": "hi"}]}),
        "{broken",
        "",
        json.dumps({"custom_id": "ok", "messages": [{"role": "user", "content": "again"}]}),
        json.dumps({"custom_id": "x", "messages": []}),
        json.dumps({"custom_id": "y", "messages": [{"role": "robot", "content": "hi"}]}),
        json.dumps({"custom_id": "z", "body": {"messages": [{"role": "user", "content": 5}]}}),
        json.dumps({"custom_id": "w", "method": "GET", "body": {}}),
        json.dumps({"custom_id": "v", "url": "/v1/images/generations", "body": {}}),
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        json.dumps(["a list"]),
        json.dumps({"custom_id": "u", "prompt": "hi"}),
        json.dumps(
            {"custom_id": "t", "temperature": "hot", "messages": [{"role": "user", "content": "x"}]}
        ),
    ]
    with pytest.raises(InputError) as caught:
        parse_lines(lines)
    problems = dict(caught.value.problems)
    assert sorted(problems) == [2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert "not valid JSON" in problems[2]
    assert "already used on line 1" in problems[4]
    assert "non-empty list" in problems[5]
    assert "role" in problems[6]
    assert "content" in problems[7]
    assert "POST" in problems[8]
    assert "/v1/chat/completions" in problems[9]
    assert "custom_id" in problems[10]
    assert "JSON object" in problems[11]
    assert "neither" in problems[12]
    assert "temperature" in problems[13]
    assert str(caught.value).startswith("line 2: not valid JSON")


def test_an_empty_file_is_an_error() -> None:
    with pytest.raises(InputError, match="no request"):
        parse_lines(["", "  "])


def test_long_reports_are_shortened() -> None:
    with pytest.raises(InputError) as caught:
        parse_lines(["{"] * 30)
    assert len(caught.value.problems) == 30
    assert str(caught.value).endswith("… and 10 more")


def test_files_are_read_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text(f"\ufeff{HELLO}\nTell me a joke\n", encoding="utf-8")
    parsed = read_requests(path)
    assert [r["messages"][0]["content"] for r in parsed.requests] == [HELLO, "Tell me a joke"]


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_bytes(b"first\nsecond\n" + HELLO.encode("cp1251"))
    with pytest.raises(InputError) as caught:
        read_requests(path)
    assert caught.value.problems == [(3, "not UTF-8 text")]


def test_a_native_line_in_a_file_forced_to_openai_is_named() -> None:
    line = json.dumps({"custom_id": "a", "messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(InputError) as caught:
        parse_lines([line], "openai")
    assert caught.value.problems == [(1, "an OpenAI batch line needs a body")]
