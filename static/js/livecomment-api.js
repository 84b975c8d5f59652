/**
 * livecomment REST API calls and the small helpers the pages share.
 *
 * An ES module (ES2017+, no build step, no dependencies); runs in browsers and
 * under Node 20 (global fetch).
 *
 *   import { createApi, ApiError } from "https://live.example.com/static/js/livecomment-api.js";
 *   const api = createApi({ base: "https://live.example.com", token: "<token>" });
 *   try {
 *     const comment = await api.post(`/api/v1/videos/3/comments/`, { text: "hi" }, { "Idempotency-Key": key });
 *   } catch (err) {
 *     if (err instanceof ApiError && err.code === "slow_mode") wait(err.retryAfter);
 *   }
 *
 * createApi(options):
 *   base         origin the paths are relative to (default: the page's origin)
 *   token        API token, sent as `Authorization: Token <token>`; without it
 *                the page's session cookie is sent with its CSRF token
 *   csrfToken    CSRF token, or a function returning it (default: from the
 *                page's csrf input or the `csrftoken` cookie)
 *   fetch        a fetch implementation (default: the global one)
 *
 * A successful call resolves to the parsed JSON body (null when empty). Any
 * other answer rejects with an ApiError: `status` (0 when the server could not
 * be reached), `code` (the API's error code, `http_<status>` when the body
 * has none, `network`), `message`, `retryAfter` (seconds, from the body's
 * `retry_after` or the `Retry-After` header) and `detail` (the body's
 * `error` object, `{}` when there is none).
 */

export class ApiError extends Error {
  constructor(message, { status = 0, code = "network", retryAfter, detail = {} } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.detail = detail;
  }
}

/** The page's CSRF token: its form's hidden input, else Django's cookie. */
export function csrfToken(fallback = "") {
  if (typeof document === "undefined") return fallback;
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  if (input && input.value) return input.value;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : fallback;
}

function retryAfterOf(detail, headers) {
  if (detail && detail.retry_after !== undefined && detail.retry_after !== null) return Number(detail.retry_after);
  const header = headers && headers.get("Retry-After");
  return header ? Number(header) || undefined : undefined;
}

export function createApi({ base, token, csrfToken: csrf, fetch: fetchImpl } = {}) {
  const doFetch = fetchImpl || globalThis.fetch.bind(globalThis);
  const origin = base || (typeof location !== "undefined" ? location.origin : "");

  async function request(method, path, body, extraHeaders = {}) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Token ${token}`;
    else headers["X-CSRFToken"] = typeof csrf === "function" ? csrf() : csrf || csrfToken();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    Object.assign(headers, extraHeaders);
    const url = new URL(path, origin || undefined).href;
    let response;
    try {
      response = await doFetch(url, {
        method,
        headers,
        credentials: token ? "omit" : "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (exc) {
      throw new ApiError("Network error: the server could not be reached.");
    }
    let data = null;
    const text = await response.text().catch(() => "");
    try {
      data = text ? JSON.parse(text) : null;
    } catch (exc) {
      data = null;
    }
    if (response.ok) return data;
    const detail = (data && typeof data.error === "object" && data.error) || {};
    throw new ApiError(detail.message || `Request failed (HTTP ${response.status}).`, {
      status: response.status,
      code: detail.code || `http_${response.status}`,
      retryAfter: retryAfterOf(detail, response.headers),
      detail,
    });
  }

  return {
    request,
    get: (path, headers) => request("GET", path, undefined, headers),
    post: (path, body, headers) => request("POST", path, body, headers),
    patch: (path, body, headers) => request("PATCH", path, body, headers),
    delete: (path, headers) => request("DELETE", path, undefined, headers),
  };
}

/** Fill `{id}` in a URL template from the page's config. */
export function urlFor(template, id) {
  return template.replace("{id}", encodeURIComponent(id));
}

// ---- cursors: "<ms>-<seq>" (a Redis stream ID), compared numerically ----

export function parseCursor(cursor) {
  const text = String(cursor || "0-0");
  const dash = text.indexOf("-");
  if (dash < 0) return [Number(text) || 0, 0];
  return [Number(text.slice(0, dash)) || 0, Number(text.slice(dash + 1)) || 0];
}

/** Negative, zero or positive, as `a` is before, at or after `b`. */
export function compareCursors(a, b) {
  const [am, as] = parseCursor(a);
  const [bm, bs] = parseCursor(b);
  return am - bm || as - bs;
}

// ---- DOM ----

/** An element with a class and text; user text only ever goes in as text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
