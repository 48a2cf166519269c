import {
  api, download, duration, el, ENDED, fillBar, finished, follow, rate, requireKey, STATES, when,
} from "./app.js";

const batchId = document.body.dataset.batchId;
const base = `/v1/batches/${encodeURIComponent(batchId)}`;
const $ = (id) => document.getElementById(id);
const CHART_POINTS = 120;
const ETA_WINDOW = 10;
const SMOOTH = 5;
const JOBS_PAGE = 25;

let batch = null;
let total = 0;
let counts = {};
let ended = false;
const samples = []; // {t, done}: finished jobs, sampled once a second
let lastUnsuccessful = -1;

// ---- the batch object: status, timestamps, files -------------------------------------

function showBatch(next) {
  batch = next;
  total = next.request_counts.total;
  ended = ENDED.includes(next.status);
  const badge = $("batch-status");
  badge.textContent = next.status.replace("_", " ");
  badge.className = `badge ${next.status}`;
  $("created").textContent = when(next.created_at);
  $("usage").textContent =
    `${next.usage.input_characters} / ${next.usage.output_characters}`;
  $("cancel").hidden = next.status !== "in_progress";
  $("download-output").hidden = !next.output_file_id;
  $("download-errors").hidden = !next.error_file_id;
  showCounts(next.counts);
}

function showCounts(next) {
  counts = next;
  fillBar($("bar"), counts, total);
  $("counts").replaceChildren(
    ...STATES.map((s) =>
      el("li", { class: s }, el("span", { class: `dot ${s}` }), `${s} `, el("strong", { text: String(counts[s] || 0) })),
    ),
  );
  const done = finished(counts);
  const summary = `${done} of ${total} finished` + (ended ? ` — batch ${batch.status}` : "");
  if ($("summary").textContent !== summary) $("summary").textContent = summary;
  const unsuccessful = (counts.failed || 0) + (counts.cancelled || 0) + (counts.expired || 0);
  if (unsuccessful !== lastUnsuccessful) {
    lastUnsuccessful = unsuccessful;
    loadErrors();
  }
}

// ---- throughput over time, drawn in SVG ----------------------------------------------

function sample() {
  samples.push({ t: Date.now() / 1000, done: finished(counts) });
  if (samples.length > CHART_POINTS + 1) samples.shift();
  drawChart();
  showRate();
  if (!ended) setTimeout(sample, 1000);
}

// Jobs per second over the last few seconds (or, once the batch has ended, over its life).
function showRate() {
  if (ended) {
    $("rate").textContent = overall();
    $("eta").textContent = "ended";
    return;
  }
  const last = samples[samples.length - 1];
  const first = samples.find((s) => s.t >= last.t - ETA_WINDOW) || last;
  const perSecond = last.t > first.t ? (last.done - first.done) / (last.t - first.t) : NaN;
  $("rate").textContent = `${rate(perSecond)} jobs/s`;
  $("eta").textContent = perSecond > 0 ? duration((total - last.done) / perSecond) : "—";
}

function overall() {
  const start = batch.in_progress_at || batch.created_at;
  const end = batch.completed_at || batch.cancelled_at || batch.expired_at || batch.failed_at;
  return end ? `${rate(finished(counts) / Math.max(1, end - start))} jobs/s overall` : "—";
}

// Each point: jobs finished per second over the SMOOTH seconds before it.
function drawChart() {
  const svg = $("chart");
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const from = samples[Math.max(0, i - SMOOTH)];
    const dt = samples[i].t - from.t;
    rates.push(dt > 0 ? (samples[i].done - from.done) / dt : 0);
  }
  const top = Math.max(1, ...rates);
  const x = (i) => (600 * i) / CHART_POINTS;
  const y = (r) => 115 - (105 * r) / top;
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", rates.map((r, i) => `${x(i).toFixed(1)},${y(r).toFixed(1)}`).join(" "));
  line.setAttribute("class", "line");
  svg.replaceChildren(line);
  const now = rates.length ? rate(rates[rates.length - 1]) : "0";
  const caption = `Jobs finished per second over the last ${rates.length} s: now ${now}, peak ${rate(top)}`;
  $("chart-caption").textContent = caption;
}

// ---- errors by code --------------------------------------------------------------------

async function loadErrors() {
  try {
    const errors = await api(`${base}/errors`);
    const table = $("errors");
    table.hidden = errors.data.length === 0;
    $("errors-none").hidden = errors.data.length > 0;
    table.querySelector("tbody").replaceChildren(
      ...errors.data.map((g) =>
        el("tr", {},
          el("td", {}, el("code", { text: g.code })),
          el("td", { class: "num", text: String(g.count) }),
          el("td", { text: g.message }),
          el("td", { text: g.custom_ids.join(", ") })),
      ),
    );
  } catch (error) {
    $("batch-error").textContent = `Could not load the errors: ${error.message}`;
  }
}

// ---- the jobs table ------------------------------------------------------------------

let jobCursor = null;
let jobsTimer = null;

async function loadJobs() {
  clearTimeout(jobsTimer);
  jobsTimer = null;
  const params = new URLSearchParams({ limit: String(JOBS_PAGE) });
  if ($("job-state").value) params.set("status", $("job-state").value);
  if ($("job-search").value.trim()) params.set("search", $("job-search").value.trim());
  if (jobCursor) params.set("after", jobCursor);
  try {
    const page = await api(`${base}/jobs?${params}`);
    const focused = document.activeElement?.dataset?.job;
    const body = $("jobs").querySelector("tbody");
    body.replaceChildren(...page.data.map(jobRow));
    if (focused) body.querySelector(`[data-job="${CSS.escape(focused)}"]`)?.focus();
    $("jobs-next").disabled = !page.has_more;
    $("jobs-next").dataset.after = page.last_id || "";
    $("jobs-first").disabled = !jobCursor;
  } catch (error) {
    $("batch-error").textContent = `Could not load the jobs: ${error.message}`;
  }
}

function soonLoadJobs() {
  if (!jobsTimer) jobsTimer = setTimeout(loadJobs, 1000);
}

function jobRow(job) {
  const pick = el("button", {
    type: "button", class: "link", "data-job": job.custom_id, text: job.custom_id,
    "aria-label": `Show the text of ${job.custom_id}`, onclick: () => watchJob(job.custom_id, true),
  });
  const preview = job.output ? job.output.slice(0, 80) + (job.output.length > 80 ? "…" : "") : job.error ? job.error.code : "";
  return el("tr", { "data-status": job.status },
    el("td", {}, pick),
    el("td", {}, el("span", { class: `badge ${job.status}`, text: job.status })),
    el("td", { class: "num", text: String(job.attempts) }),
    el("td", { class: "preview", text: preview }));
}

// ---- one job's live text, attempt by attempt ------------------------------------------

let watching = null; // {customId, controller, chosen}

function watchJob(customId, chosen) {
  if (watching) {
    if (watching.customId === customId) return;
    watching.controller.abort();
  }
  const controller = new AbortController();
  watching = { customId, controller, chosen };
  const text = $("live-text");
  const state = $("live-status");
  $("live-job").textContent = `of ${customId}`;
  text.textContent = "";
  state.textContent = "waiting for text…";
  let attempt = 0;
  const path = `${base}/jobs/${encodeURIComponent(customId)}/events`;
  follow(path, (event, data) => {
    if (data.attempt < attempt) return; // a late write of an abandoned attempt
    if (data.attempt > attempt) {
      attempt = data.attempt; // a new attempt starts over
      text.textContent = "";
    }
    if (event === "chunk") {
      text.textContent += data.text;
      text.scrollTop = text.scrollHeight;
      state.textContent = `streaming (attempt ${attempt})`;
    } else if (event === "retry") {
      state.textContent = `attempt ${attempt} failed (${data.code}); it will be retried`;
    } else if (event === "done") {
      state.textContent = `succeeded: ${data.chars} characters (attempt ${attempt})`;
    } else if (event === "error") {
      state.textContent = `${data.status}: ${data.code} — ${data.message}`;
    }
  }, controller.signal).catch((error) => {
    state.textContent = `Could not follow ${customId}: ${error.message}`;
  });
  if (chosen) $("live").scrollIntoView({ block: "nearest" });
}

// ---- the batch's event stream -------------------------------------------------------

async function followBatch(controller) {
  await follow(`${base}/events`, (event, data) => {
    if (event === "progress") {
      if (batch && data.status !== batch.status) {
        batch.status = data.status;
        $("batch-status").textContent = data.status.replace("_", " ");
        $("batch-status").className = `badge ${data.status}`;
        $("cancel").hidden = data.status !== "in_progress";
      }
      showCounts(data.counts);
    } else if (event === "job") {
      soonLoadJobs();
      if (!watching && data.status === "running") watchJob(data.custom_id, false);
    } else if (event === "end") {
      showBatch(data);
      showRate();
      loadJobs();
      loadErrors();
    }
  }, controller.signal);
}

// ---- actions ----------------------------------------------------------------------------

function action(button, work) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      $("action-status").textContent = `Failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
}

function wireActions() {
  const dialog = $("cancel-dialog");
  $("cancel").addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "cancel") return;
    try {
      showBatch(await api(`${base}/cancel`, { method: "POST" }));
      $("action-status").textContent = "Cancelling: running jobs stop within a second.";
    } catch (error) {
      $("action-status").textContent = `Could not cancel: ${error.message}`;
    }
    $("cancel").focus();
  });
  action($("download-results"), async () => {
    await download(`${base}/results`, `${batchId}_results.jsonl`);
    $("action-status").textContent = "Results downloaded.";
  });
  action($("download-output"), async () => {
    await download(`/v1/files/${batch.output_file_id}/content`, `${batchId}_output.jsonl`);
    $("action-status").textContent = "Output file downloaded.";
  });
  action($("download-errors"), async () => {
    await download(`/v1/files/${batch.error_file_id}/content`, `${batchId}_errors.jsonl`);
    $("action-status").textContent = "Error file downloaded.";
  });
  $("job-state").addEventListener("change", () => { jobCursor = null; loadJobs(); });
  let typing = null;
  $("job-search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { jobCursor = null; loadJobs(); }, 250);
  });
  $("jobs-filter").addEventListener("submit", (event) => { event.preventDefault(); loadJobs(); });
  $("jobs-next").addEventListener("click", () => { jobCursor = $("jobs-next").dataset.after; loadJobs(); });
  $("jobs-first").addEventListener("click", () => { jobCursor = null; loadJobs(); });
}

async function start() {
  if (!requireKey()) return;
  wireActions();
  try {
    showBatch(await api(base));
  } catch (error) {
    $("batch-error").textContent = `Could not load the batch: ${error.message}`;
    $("batch-status").textContent = "unknown";
    return;
  }
  loadJobs();
  sample();
  const controller = new AbortController();
  addEventListener("pagehide", () => {
    controller.abort();
    watching?.controller.abort();
  });
  followBatch(controller).catch((error) => {
    $("batch-error").textContent = `Live updates stopped: ${error.message}`;
  });
}

start();
