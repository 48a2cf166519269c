// What every page shares: the key kept in this tab, calls to the API, its event streams,
// and how numbers and times are shown.

const KEY = "aivbatch.apiKey";
const authOn = document.body.dataset.auth === "on";

export const STATES = ["queued", "running", "succeeded", "failed", "cancelled", "expired"];
export const ENDED = ["completed", "failed", "cancelled", "expired"];

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function signIn(key) {
  sessionStorage.setItem(KEY, key);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  location.assign("/ui/signin");
}

// Pages other than the sign-in page need a key when auth is on: go and get one.
export function requireKey() {
  if (authOn && !apiKey()) {
    const next = location.pathname + location.search;
    location.replace(`/ui/signin?next=${encodeURIComponent(next)}`);
    return false;
  }
  return true;
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

// A call to the API; answers the parsed JSON, or throws ApiError (a 401 signs out).
export async function api(path, { method = "GET", body, json, signal, keepKey = false } = {}) {
  const init = { method, headers: headers(), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401 && authOn && !keepKey) signOut();
    throw new ApiError(response.status, parsed);
  }
  return parsed;
}

// Save what a route answers as a file (a link cannot send the key, so fetch and hand the
// browser the bytes).
export async function download(path, filename) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) {
    const text = await response.text();
    throw new ApiError(response.status, text ? JSON.parse(text) : null);
  }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// Follow a server-sent event stream with the key (EventSource cannot send one). Calls
// onEvent(name, data, id) per event, reconnects after a dropped connection with
// Last-Event-ID, and resolves when the server ends the stream or `signal` aborts.
export async function follow(path, onEvent, signal) {
  let lastId = null;
  for (let tries = 0; !signal.aborted; tries++) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastId) extra["Last-Event-ID"] = lastId;
      const response = await fetch(path, { headers: headers(extra), signal });
      if (!response.ok) {
        throw new ApiError(response.status, await response.json().catch(() => null));
      }
      tries = 0;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let event = { name: "message", data: [], id: null };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, cut).replace(/\r$/, "");
          buffer = buffer.slice(cut + 1);
          if (line === "") {
            if (event.data.length) {
              if (event.id) lastId = event.id;
              onEvent(event.name, JSON.parse(event.data.join("\n")), event.id);
            }
            event = { name: "message", data: [], id: null };
          } else if (!line.startsWith(":")) {
            const at = line.indexOf(":");
            const field = at < 0 ? line : line.slice(0, at);
            const text = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
            if (field === "event") event.name = text;
            else if (field === "data") event.data.push(text);
            else if (field === "id") event.id = text;
          }
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status < 500) throw error;
      // The connection dropped (an API restart, say): try again, resuming after lastId.
      await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 500 * 2 ** tries)));
    }
  }
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

// A bar of the jobs by state; its text alternative lists the counts.
export function fillBar(bar, counts, total) {
  bar.replaceChildren();
  const parts = [];
  for (const state of STATES) {
    const n = counts[state] || 0;
    if (!n) continue;
    parts.push(`${n} ${state}`);
    bar.append(el("span", { class: `seg ${state}`, style: `width:${(100 * n) / total}%` }));
  }
  bar.setAttribute("aria-label", parts.length ? `${parts.join(", ")} of ${total}` : "no jobs");
}

export function finished(counts) {
  return STATES.slice(2).reduce((sum, s) => sum + (counts[s] || 0), 0);
}

export function duration(seconds) {
  if (!isFinite(seconds) || seconds < 0) return "—";
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

export function rate(perSecond) {
  if (!isFinite(perSecond)) return "—";
  return perSecond >= 10 ? perSecond.toFixed(0) : perSecond.toFixed(1);
}

export function when(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : "—";
}

// Every page: show "Sign out" when a key is held.
const signout = document.getElementById("signout");
if (signout && apiKey()) {
  signout.hidden = false;
  signout.addEventListener("click", signOut);
}
