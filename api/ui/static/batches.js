import { api, duration, el, ENDED, fillBar, finished, rate, requireKey } from "./app.js";

const EVERY_MS = 2000;
// `/ui?limit=N` shows N batches a page (1 to 100).
const PAGE = Math.min(100, Math.max(1, Number(new URLSearchParams(location.search).get("limit")) || 20));
const body = document.querySelector("#batches tbody");
const filter = document.getElementById("status-filter");
const status = document.getElementById("list-status");
const empty = document.getElementById("empty");
const newer = document.getElementById("newer");
const older = document.getElementById("older");
// Cursors of the pages seen so far: [null] is the newest page.
let cursors = [null];
let timer = null;

function throughput(batch) {
  const start = batch.in_progress_at || batch.created_at;
  const end = ENDED.includes(batch.status)
    ? batch.completed_at || batch.cancelled_at || batch.expired_at || batch.failed_at
    : Date.now() / 1000;
  const done = finished(batch.counts);
  return done && end > start ? done / (end - start) : NaN;
}

function row(batch) {
  const done = finished(batch.counts);
  const bar = el("div", { class: "bar", role: "img" });
  fillBar(bar, batch.counts, batch.request_counts.total);
  const link = el("a", { href: `/ui/batches/${encodeURIComponent(batch.id)}`, text: batch.id });
  return el(
    "tr",
    { "data-id": batch.id },
    el("td", {}, link),
    el("td", {}, el("span", { class: `badge ${batch.status}`, text: batch.status.replace("_", " ") })),
    el("td", { class: "bar-cell" }, bar),
    el("td", { class: "num", text: `${done} / ${batch.request_counts.total}` }),
    el("td", { class: "num", text: rate(throughput(batch)) }),
    el("td", { text: duration(Date.now() / 1000 - batch.created_at) }),
  );
}

async function load() {
  clearTimeout(timer);
  const params = new URLSearchParams({ limit: String(PAGE) });
  const after = cursors[cursors.length - 1];
  if (after) params.set("after", after);
  if (filter.value) params.set("status", filter.value);
  try {
    const page = await api(`/v1/batches?${params}`);
    body.replaceChildren(...page.data.map(row));
    empty.hidden = page.data.length > 0 || cursors.length > 1;
    newer.disabled = cursors.length === 1;
    older.disabled = !page.has_more;
    older.dataset.next = page.last_id || "";
    status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    status.textContent = `Could not load the batches: ${error.message}`;
  }
  timer = setTimeout(load, EVERY_MS);
}

if (requireKey()) {
  filter.addEventListener("change", () => {
    cursors = [null];
    load();
  });
  older.addEventListener("click", () => {
    cursors.push(older.dataset.next);
    load();
  });
  newer.addEventListener("click", () => {
    cursors.pop();
    load();
  });
  load();
}
