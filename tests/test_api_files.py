"""The OpenAI Files API over real HTTP: upload, list, retrieve, content, delete, and batches
made from a file (no workers run here)."""

from __future__ import annotations

import json

import httpx
import pytest


def _line(custom_id: str) -> str:
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": f"Привет, {custom_id}"}]}
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body},
        ensure_ascii=False,
    )


@pytest.fixture
def api(tenant_client: httpx.Client) -> httpx.Client:
    return tenant_client


def _upload(api: httpx.Client, name: str, content: bytes) -> dict[str, object]:
    r = api.post("/v1/files", data={"purpose": "batch"}, files={"file": (name, content)})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_upload_retrieve_content_list_delete(api: httpx.Client) -> None:
    content = ("\n".join(_line(f"r{i}") for i in range(3)) + "\n").encode()
    made = _upload(api, "requests.jsonl", content)
    assert made["object"] == "file" and str(made["id"]).startswith("file-")
    assert (made["bytes"], made["filename"], made["purpose"]) == (
        len(content),
        "requests.jsonl",
        "batch",
    )
    assert made["status"] == "processed"
    assert api.get(f"/v1/files/{made['id']}").json() == made
    assert api.get(f"/v1/files/{made['id']}/content").content == content

    others = [_upload(api, f"f{i}.jsonl", _line("x").encode())["id"] for i in range(3)]
    page = api.get("/v1/files", params={"limit": 2}).json()
    assert [f["id"] for f in page["data"]] == others[::-1][:2] and page["has_more"] is True
    rest = api.get("/v1/files", params={"limit": 10, "after": page["last_id"]}).json()
    assert [f["id"] for f in rest["data"]] == [others[0], made["id"]]
    assert api.get("/v1/files", params={"purpose": "batch_output"}).json()["data"] == []

    deleted = api.delete(f"/v1/files/{made['id']}")
    assert deleted.json() == {"id": made["id"], "object": "file", "deleted": True}
    assert api.get(f"/v1/files/{made['id']}").status_code == 404
    assert api.delete(f"/v1/files/{made['id']}").status_code == 404


def test_a_batch_from_a_file_takes_its_lines_and_keeps_the_file_id(api: httpx.Client) -> None:
    made = _upload(api, "in.jsonl", "\n".join(_line(f"r{i}") for i in range(4)).encode())
    r = api.post(
        "/v1/batches",
        json={
            "input_file_id": made["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": {"source": "file"},
            "output_expires_after": {"anchor": "created_at", "seconds": 3600},  # ignored
        },
    )
    assert r.status_code == 200, r.text
    batch = r.json()
    assert batch["input_file_id"] == made["id"] and batch["request_counts"]["total"] == 4
    job = api.get(f"/v1/batches/{batch['id']}/jobs/r2").json()
    assert job["model"] == "gpt-4" and job["messages"][0]["content"] == "Привет, r2"
    assert job["position"] == 2
    # The output files exist once the batch has ended, not before.
    suffix = batch["id"].removeprefix("batch_")
    for file_id in (f"file-output-{suffix}", f"file-errors-{suffix}"):
        r = api.get(f"/v1/files/{file_id}")
        assert r.status_code == 404 and "has not ended" in r.json()["error"]["message"]
        assert api.get(f"/v1/files/{file_id}/content").status_code == 404
