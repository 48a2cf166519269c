"""The dashboard in a real headless Chromium over the real service: sign in, check and
submit a file, watch the bars move and a job's text grow, cancel, download; the batches
list with its filter and pages; a phone-width screen, the keyboard, auth off. Any console
error fails a test (tests/support/browser.py)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from models.migrate import upgrade
from tests.support.api import ApiServer
from tests.support.emulator import marker
from tests.support.service import Service
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

# Slow answers and two streams, so the batch visibly queues, streams and can be cancelled.
PACE = {"chunks": 30, "delay_ms": 80}
SETTINGS = {"WORKER_STREAMS": "2"}
WAIT_MS = 30_000
# Screenshots land here (git-ignored), for a person to look at after the run.
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def shared_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One backend for the browser tests, SQLite (what `aivbatch up` and the demo serve the
    dashboard on): the pages are the same on both, and every route they call is tested on
    both backends by the API tests; a browser pass per backend would double the time."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'aivbatch.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def service(module_service: Callable[..., Service]) -> Service:
    return module_service(settings=SETTINGS, **PACE)


def sign_in(page: Page, service: Service, key: str, path: str = "/ui") -> None:
    page.goto(service.api.url + path)
    page.wait_for_url(re.compile(r"/ui/signin\?next="))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(path) + r"$"))


def prompts() -> bytes:
    lines = [
        f"Привет! Как дела? {marker(fault='reset', after=8, times=1)}",  # cut once, retried
        f"Refuse this one {marker(fault='403')}",
        *(f"Question {n}: name {n} rivers." for n in range(3, 17)),
    ]
    return ("\n".join(lines) + "\n").encode()


def screenshot(page: Page, name: str, backend: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}-{backend}.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000
    return path


def backend_of(service: Service) -> str:
    return service.database_url.split(":", 1)[0].split("+", 1)[0]


def test_sign_in_submit_watch_cancel_and_download(service: Service, page: Page) -> None:
    key = service.key()
    api = service.api.client(key)
    sign_in(page, service, key)
    page.get_by_role("link", name="Submit a batch").click()
    page.wait_for_url(re.compile(r"/ui/submit$"))

    # A bad file: every bad line is shown, and nothing can be submitted.
    bad = b'{"custom_id": "a", "messages": [{"role": "user", "content": "hi"}]}\nnot json\n'
    bad += b'{"custom_id": "a", "messages": [{"role": "user", "content": "again"}]}\n'
    page.get_by_label("Input file").set_input_files(
        {"name": "bad.jsonl", "mimeType": "application/json", "buffer": bad}
    )
    errors = page.locator("#line-errors li")
    expect(errors).to_have_count(2)
    expect(errors.nth(0)).to_contain_text("line 2: not valid JSON")
    expect(errors.nth(1)).to_contain_text("line 3: custom_id 'a' is already used by line 1")
    expect(page.get_by_role("button", name="Submit batch")).to_be_disabled()

    # A prompts file, checked, then submitted with a model chosen from those served.
    page.get_by_label("Input file").set_input_files(
        {"name": "prompts.txt", "mimeType": "text/plain", "buffer": prompts()}
    )
    expect(page.locator("#check-result")).to_contain_text("16 requests (prompts) ready")
    expect(page.locator("#line-errors li")).to_have_count(0)
    model = page.get_by_label("Model (for lines that name none)")
    expect(model).to_have_js_property("tagName", "SELECT")
    model.select_option("gpt-4")
    page.get_by_label("Completion window").select_option("1h")
    page.get_by_role("button", name="Submit batch").click()
    page.wait_for_url(re.compile(r"/ui/batches/batch_[0-9a-f]+$"))
    batch_id = page.url.rsplit("/", 1)[1]
    batch = api.get(f"/v1/batches/{batch_id}").json()
    assert batch["completion_window"] == "1h" and batch["request_counts"]["total"] == 16

    # The bars move, and a running job's text grows as it streams.
    labels: set[str] = set()

    def bar_moved() -> bool:
        labels.add(page.locator("#bar").get_attribute("aria-label") or "")
        return len(labels) >= 3

    wait_until(bar_moved, timeout=30, what="the bar to move", context=lambda: str(labels))
    text = page.locator("#live-text")
    first = wait_until(lambda: len(text.text_content() or ""), timeout=30, what="live text")
    wait_until(lambda: len(text.text_content() or "") > first, timeout=30, what="more text")
    expect(page.locator("#rate")).to_contain_text("jobs/s")

    # The job whose first attempt was cut: its text is the retry's alone, as SQL has it.
    page.get_by_label("custom_id").fill("line-1")
    expect(page.locator("#jobs tbody tr")).to_have_count(1 + 7)  # line-1, line-10 … line-16
    page.get_by_role("button", name="Show the text of line-1", exact=True).click()
    expect(page.locator("#live-job")).to_have_text("of line-1")
    expect(page.locator("#live-status")).to_contain_text("succeeded", timeout=WAIT_MS)
    stored = api.get(f"/v1/batches/{batch_id}/jobs/line-1").json()
    assert stored["attempts"] == 2 and stored["output"]
    expect(text).to_have_text(stored["output"])

    screenshot(page, "batch-page", backend_of(service))

    # Cancel, confirmed in the dialog: the batch ends cancelled with its errors grouped.
    page.get_by_role("button", name="Cancel batch").click()
    page.get_by_role("button", name="Cancel the batch").click()
    expect(page.locator("#batch-status")).to_have_text("cancelled", timeout=WAIT_MS)
    codes = page.locator("#errors tbody tr td:first-child")
    expect(codes).to_contain_text(["upstream_refused"], timeout=WAIT_MS)
    expect(page.locator("#errors")).to_contain_text("batch_cancelled")
    expect(page.get_by_role("button", name="Cancel batch")).to_be_hidden()

    # Downloads: the results, and the error file, as the API serves them.
    final = api.get(f"/v1/batches/{batch_id}").json()
    with page.expect_download() as got:
        page.get_by_role("button", name="Download results (JSONL)").click()
    rows = [json.loads(x) for x in Path(got.value.path()).read_text().splitlines()]
    assert got.value.suggested_filename == f"{batch_id}_results.jsonl"
    assert len(rows) == 16 and {r["custom_id"] for r in rows} == {f"line-{n}" for n in range(1, 17)}
    with page.expect_download() as got:
        page.get_by_role("button", name="Download error file").click()
    failed = Path(got.value.path()).read_text().splitlines()
    assert len(failed) == final["request_counts"]["failed"] >= 2
    expect(page.locator("#action-status")).to_have_text("Error file downloaded.")


def _completed(api: httpx.Client, batch_id: str) -> bool:
    """Whether the batch has completed."""
    return bool(api.get(f"/v1/batches/{batch_id}").json()["status"] == "completed")


def test_the_batches_list_filters_pages_and_updates_live(service: Service, page: Page) -> None:
    key = service.key()
    api = service.api.client(key)
    quick = [{"custom_id": "a", "messages": [{"role": "user", "content": "hi"}]}]
    done = [api.post("/v1/batches", json={"requests": quick}).json()["id"] for _ in range(2)]
    for batch_id in done:
        wait_until(
            functools.partial(_completed, api, batch_id),
            timeout=30,
            what="the quick batches to complete",
        )
    sign_in(page, service, key, "/ui")
    rows = page.locator("#batches tbody tr")
    expect(rows).to_have_count(2)
    # A new batch appears without a reload.
    slow = [
        {"custom_id": f"s{i}", "messages": [{"role": "user", "content": "a long one"}]}
        for i in range(6)
    ]
    running = api.post("/v1/batches", json={"requests": slow}).json()["id"]
    expect(rows).to_have_count(3, timeout=WAIT_MS)
    expect(rows.first).to_have_attribute("data-id", running)
    expect(rows.first.locator(".bar")).to_have_attribute("aria-label", re.compile("of 6"))

    page.get_by_label("Status").select_option("completed")
    expect(rows).to_have_count(2)
    expect(page.locator("#batches")).not_to_contain_text(running)

    page.goto(service.api.url + "/ui?limit=1")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", running)
    page.get_by_role("button", name="Older").click()
    expect(rows.first).to_have_attribute("data-id", done[1])
    page.get_by_role("button", name="Older").click()
    expect(rows.first).to_have_attribute("data-id", done[0])
    expect(page.get_by_role("button", name="Older")).to_be_disabled()
    page.get_by_role("button", name="Newer").click()
    expect(rows.first).to_have_attribute("data-id", done[1])
    api.post(f"/v1/batches/{running}/cancel").raise_for_status()


def test_phone_width_keyboard_labels_and_auth_off(
    service: Service, page: Page, api_server: Callable[[dict[str, str]], ApiServer]
) -> None:
    open_api = api_server({**service.api.env, "AIVBATCH_AUTH_ENABLED": "false"})
    quick = [{"custom_id": "q/1", "messages": [{"role": "user", "content": "hi"}]}]
    batch_id = httpx.post(open_api.url + "/v1/batches", json={"requests": quick}).json()["id"]

    # Auth off: straight in, no sign-in page.
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(open_api.url + "/")
    page.get_by_role("link", name="Dashboard").click()
    page.wait_for_url(re.compile(r"/ui$"))
    expect(page.locator(f'#batches tr[data-id="{batch_id}"]')).to_be_visible()
    expect(page.locator("#signout")).to_have_count(0)

    page.goto(f"{open_api.url}/ui/batches/{batch_id}")
    expect(page.locator("#batch-status")).to_have_text("completed", timeout=WAIT_MS)
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    # Nothing is wider than a phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "batch-page-phone", backend_of(service))
    # Every field has a label; live regions are announced.
    unlabeled = page.evaluate(
        """[...document.querySelectorAll('input, select, textarea')]
             .filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.id)"""
    )
    assert unlabeled == []
    assert page.locator("#summary").get_attribute("aria-live") == "polite"
    # The keyboard reaches the skip link first, and focus is visible.
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    # The keyboard picks a job (a custom_id holding '/') and its text is shown.
    job = page.get_by_role("button", name="Show the text of q/1")
    job.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#live-status")).to_contain_text("succeeded", timeout=WAIT_MS)
    stored = httpx.get(f"{open_api.url}/v1/batches/{batch_id}/jobs/q/1").json()
    expect(page.locator("#live-text")).to_have_text(stored["output"])
