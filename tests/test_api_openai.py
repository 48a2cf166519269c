"""The official ``openai`` package, unmodified, runs a whole batch against the service."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import openai
import pytest

from models.db import Database
from tests.support.api import Running
from tests.support.emulator import marker
from tests.support.pipeline import jobs_of
from tests.support.wait import wait_until

ENDED = ("completed", "failed", "expired", "cancelled")

pytestmark = pytest.mark.slow


@pytest.fixture
def client(running: Running) -> Iterator[openai.OpenAI]:
    """The official client, pointed at the service with the test tenant's key."""
    key = running.api.headers["authorization"].removeprefix("Bearer ")
    with openai.OpenAI(base_url=f"{running.server.url}/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


def _line(custom_id: str, content: str, model: str = "gpt-3.5-turbo") -> str:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "temperature": 0.3}
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body},
        ensure_ascii=False,
    )


def test_files_create_batches_create_retrieve_content_parse(
    running: Running, database: Database, client: openai.OpenAI
) -> None:
    lines = [_line(f"req-{i}", f"Привет! Как дела? #{i}") for i in range(8)]
    lines.append(_line("refused", marker(fault="403")))
    # A model no upstream serves is refused at upload, not accepted to fail line by line.
    with pytest.raises(openai.BadRequestError) as caught:
        unserved = [*lines, _line("no-such-model", "hi", model="gpt-5")]
        client.files.create(
            file=("x.jsonl", io.BytesIO("\n".join(unserved).encode())), purpose="batch"
        )
    assert caught.value.code == "unsupported_request"
    assert "line 10: model 'gpt-5' is not served here; models served: gpt-3.5-turbo" in (
        caught.value.message
    )
    upload = client.files.create(
        file=("input.jsonl", io.BytesIO("\n".join(lines).encode())), purpose="batch"
    )
    assert upload.purpose == "batch" and upload.bytes == len("\n".join(lines).encode())
    assert client.files.retrieve(upload.id).filename == "input.jsonl"

    batch = client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "sdk"},
    )
    assert batch.status == "in_progress" and batch.request_counts is not None
    assert batch.request_counts.total == 9
    batch_id = batch.id

    def ended() -> openai.types.Batch | None:
        latest = client.batches.retrieve(batch_id)
        return latest if latest.status in ENDED else None

    batch = wait_until(
        ended,
        timeout=60,
        every=0.5,
        what="the batch to end",
        context=running.logs,
    )
    assert batch.status == "completed" and batch.metadata == {"run": "sdk"}
    # The package's own Batch type holds the whole object, usage in its token shape.
    assert batch.usage is not None and batch.usage.total_tokens is not None
    raw = client.batches.with_raw_response.retrieve(batch.id).http_response.json()
    openai.types.Batch.model_validate(raw, strict=True)
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (8, 1)
    assert batch.output_file_id and batch.error_file_id

    stored = {job.custom_id: job for job in jobs_of(database, batch.id)}
    output = client.files.content(batch.output_file_id).text
    results = [json.loads(line) for line in output.splitlines()]
    assert [r["custom_id"] for r in results] == [f"req-{i}" for i in range(8)]
    for result in results:
        assert result["error"] is None and result["response"]["status_code"] == 200
        completion = openai.types.chat.ChatCompletion.model_validate(result["response"]["body"])
        assert completion.choices[0].message.content == stored[result["custom_id"]].output
        assert completion.choices[0].finish_reason == "stop" and completion.model == "gpt-3.5-turbo"
    assert client.files.retrieve(batch.output_file_id).bytes == len(output.encode())

    # The upstream's refusal is written as OpenAI writes one: its status and its error body.
    errors = [json.loads(x) for x in client.files.content(batch.error_file_id).text.splitlines()]
    assert [e["custom_id"] for e in errors] == ["refused"]
    assert errors[0]["error"] is None and errors[0]["response"]["status_code"] == 403
    assert errors[0]["response"]["body"]["error"]["message"] == "Just a moment..."

    listed = client.batches.list(limit=5)
    assert [b.id for b in listed.data] == [batch.id]
    assert client.files.delete(upload.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(upload.id)
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_sdk_errors_carry_the_line_numbers(running: Running, client: openai.OpenAI) -> None:
    bad = "\n".join([_line("a", "x"), "{oops", _line("a", "y")]).encode()
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("bad.jsonl", io.BytesIO(bad)), purpose="batch")
    assert caught.value.code == "invalid_jsonl"
    assert "line 2: not valid JSON" in caught.value.message
    with (
        openai.OpenAI(
            base_url=f"{running.server.url}/v1", api_key="aivb-wrong", max_retries=0
        ) as stranger,
        pytest.raises(openai.AuthenticationError),
    ):
        stranger.batches.list()
