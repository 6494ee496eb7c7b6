// Every request the page makes goes through `request`: it adds the API key, and on a 401
// asks for the key (one dialog, however many requests were refused at once), then retries.

const KEY = "scopestream.apiKey";

export function storedKey() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
}

function storeKey(key, remember) {
  sessionStorage.setItem(KEY, key);
  if (remember) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

let asking = null; // the open key dialog's answer, shared by every refused request

function askForKey(message) {
  if (asking) return asking;
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-message").textContent = message;
  asking = new Promise((resolve) => {
    const done = (key) => {
      dialog.removeEventListener("close", onClose);
      asking = null;
      resolve(key);
    };
    const onClose = () => {
      const key = dialog.returnValue === "ok" ? input.value.trim() : "";
      if (key) storeKey(key, document.getElementById("key-remember").checked);
      done(key);
    };
    dialog.addEventListener("close", onClose);
    input.value = "";
    dialog.showModal();
    input.focus();
  });
  return asking;
}

/** An API error as the page shows it: the server's JSON error, never a stack trace. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || `http_${status}`;
  }
}

export async function request(path, { method = "GET", json, headers = {}, signal } = {}) {
  for (;;) {
    const all = { ...headers };
    const key = storedKey();
    if (key) all.Authorization = `Bearer ${key}`;
    if (json !== undefined) all["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers: all,
      body: json === undefined ? undefined : JSON.stringify(json),
      signal,
      cache: "no-store",
    });
    if (response.status !== 401) return response;
    const body = await response.json().catch(() => null);
    const retry = await askForKey(
      key ? "That key was refused. Enter a valid API key." : "This server needs an API key.",
    );
    if (!retry) throw new ApiError(401, body);
  }
}

/** A JSON answer, or an ApiError carrying the server's code and message. */
export async function requestJSON(path, options) {
  const response = await request(path, options);
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** A streaming answer: the response if it is an event stream, else an ApiError. */
export async function requestStream(path, options) {
  const response = await request(path, options);
  const type = response.headers.get("content-type") || "";
  if (response.ok && type.startsWith("text/event-stream")) return response;
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  throw new ApiError(response.status, body);
}
