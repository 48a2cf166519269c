import { api, ApiError, signIn } from "./app.js";

const form = document.getElementById("signin-form");
if (form) {
  const input = document.getElementById("api-key");
  const error = document.getElementById("signin-error");
  input.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    error.textContent = "";
    if (!key) {
      error.textContent = "Paste an API key first.";
      input.setAttribute("aria-invalid", "true");
      return;
    }
    signIn(key);
    try {
      await api("/v1/batches?limit=1", { keepKey: true });
    } catch (failure) {
      sessionStorage.clear();
      input.setAttribute("aria-invalid", "true");
      error.textContent =
        failure instanceof ApiError && failure.status === 401
          ? "That key is not valid (unknown or revoked)."
          : `The API did not answer: ${failure.message}`;
      return;
    }
    const next = new URLSearchParams(location.search).get("next");
    location.assign(next && next.startsWith("/ui") ? next : "/ui");
  });
}
