import { api, el, requireKey } from "./app.js";

const $ = (id) => document.getElementById(id);
const form = $("submit-form");
const file = $("input-file");
const result = $("check-result");
const lines = $("line-errors");
const submit = $("submit");
let checked = null; // {bytes, name}: the JSONL that passed the check

// A prompts file becomes native JSONL, a prompt a line, named line-<n> after its line in
// the file (as `aivbatch submit` names them); blank lines stay blank so numbers still match.
function promptsToJsonl(text) {
  return text
    .split(/\r?\n/)
    .map((line, i) => {
      const prompt = line.trim();
      if (!prompt) return "";
      return JSON.stringify({ custom_id: `line-${i + 1}`, messages: [{ role: "user", content: prompt }] });
    })
    .join("\n");
}

async function asJsonl(chosen) {
  const text = await chosen.text();
  const format = $("input-format").value;
  const firstLine = text.split(/\r?\n/).find((line) => line.trim()) || "";
  const isText = format === "text" || (format === "auto" && !firstLine.trim().startsWith("{"));
  return isText ? { text: promptsToJsonl(text), kind: "prompts" } : { text, kind: "JSONL" };
}

function model() {
  return $("model").hidden ? $("model-text").value.trim() : $("model").value;
}

async function check() {
  checked = null;
  submit.disabled = true;
  lines.replaceChildren();
  const chosen = file.files[0];
  if (!chosen) {
    result.textContent = "Choose a file first.";
    file.setAttribute("aria-invalid", "true");
    return;
  }
  file.removeAttribute("aria-invalid");
  result.textContent = "Checking…";
  const { text, kind } = await asJsonl(chosen);
  const bytes = new Blob([text], { type: "application/jsonl" });
  const data = new FormData();
  data.append("file", bytes, chosen.name);
  if (model()) data.append("model", model());
  data.append("completion_window", $("window").value);
  try {
    const report = await api("/v1/input_checks", { method: "POST", body: data });
    if (report.valid) {
      const models = Object.entries(report.models).map(([m, n]) => `${n} × ${m}`).join(", ");
      result.textContent = `${report.requests} requests (${kind}) ready: ${models}.`;
      checked = { bytes, name: chosen.name };
      submit.disabled = false;
    } else {
      result.textContent = `${report.error_count} bad line(s) in ${chosen.name}; nothing was stored.`;
      lines.replaceChildren(
        ...report.errors.map((e) => el("li", {}, el("strong", { text: `line ${e.line}: ` }), e.message)),
      );
      file.setAttribute("aria-invalid", "true");
    }
  } catch (error) {
    result.textContent = `Could not check the file: ${error.message}`;
  }
}

async function send(event) {
  event.preventDefault();
  if (!checked) return check();
  submit.disabled = true;
  result.textContent = "Uploading…";
  try {
    const data = new FormData();
    data.append("purpose", "batch");
    data.append("file", checked.bytes, checked.name);
    const upload = await api("/v1/files", { method: "POST", body: data });
    const batch = await api("/v1/batches", {
      method: "POST",
      json: { input_file_id: upload.id, model: model() || null, completion_window: $("window").value },
    });
    result.textContent = `Submitted as ${batch.id}.`;
    location.assign(`/ui/batches/${encodeURIComponent(batch.id)}`);
  } catch (error) {
    result.textContent = `Could not submit: ${error.message}`;
    submit.disabled = false;
  }
}

// The models the server serves (GET /v1/models); a free text field if they cannot be listed.
async function loadModels() {
  const note = $("model-note");
  try {
    const listed = await api("/v1/models");
    const ids = (listed.data || []).map((m) => m.id).filter(Boolean);
    if (!ids.length) throw new Error("no models listed");
    const select = $("model");
    const wanted = $("model-text").value;
    select.replaceChildren(
      ...ids.map((id) => el("option", { value: id, text: id, selected: id === wanted })),
    );
    select.hidden = false;
    $("model-text").hidden = true;
    $("model-label").htmlFor = "model";
    note.textContent = "";
  } catch (error) {
    note.textContent = `Could not list the models (${error.message}): type one.`;
  }
}

if (requireKey()) {
  loadModels();
  file.addEventListener("change", check);
  $("input-format").addEventListener("change", () => file.files[0] && check());
  $("check").addEventListener("click", check);
  form.addEventListener("submit", send);
}
