// The stream client (static/js/livecomment-stream.js) and the API module under
// Node 20, against a real gateway: run by tests/test_stream_client_node.py.
//
//   LC_BASE=http://127.0.0.1:8000 LC_VIDEO=3 LC_TOKEN=... LC_MODE=sse|ws|fallback \
//     node --experimental-websocket tests/node/stream_client_test.mjs
// (LC_MODE=eventsource: SSE through the pinned `eventsource` package of tests/node)
//
// Three comments arrive, the connection is cut, four are posted while every
// reconnect is refused, then the way is open again: the client must get
// exactly the four it missed, once each, in order. Prints the comment ids it
// received as JSON on the last line.
import assert from "node:assert/strict";
import { ApiError, createApi } from "../../static/js/livecomment-api.js";
import { openStream } from "../../static/js/livecomment-stream.js";

const { LC_BASE: base, LC_VIDEO: videoId, LC_TOKEN: token, LC_MODE: mode } = process.env;
const DEAD = "http://127.0.0.1:1"; // nothing listens there: a refused connection
let blocked = false;
const connections = [];

// A minimal EventSource over fetch, for this test only: no retries of its own
// (the client reconnects itself when an EventSource is CLOSED).
class FetchEventSource {
  constructor(url) {
    this.url = blocked ? DEAD + new URL(url).pathname : url;
    this.readyState = 0;
    this.lastEventId = "";
    this.listeners = new Map();
    this.controller = new AbortController();
    connections.push(this);
    // After the caller has set its handlers, as a real EventSource.
    Promise.resolve().then(() => this.run());
  }

  addEventListener(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(listener);
  }

  close() {
    this.readyState = 2;
    this.controller.abort();
  }

  cut() {
    if (this.readyState === 2) return;
    this.close();
    if (this.onerror) this.onerror({ type: "error" });
  }

  dispatch(type, data) {
    for (const listener of this.listeners.get(type || "message") || []) {
      listener({ type, data: data.join("\n"), lastEventId: this.lastEventId });
    }
  }

  async run() {
    try {
      const response = await fetch(this.url, {
        headers: { Accept: "text/event-stream" },
        signal: this.controller.signal,
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      this.readyState = 1;
      if (this.onopen) this.onopen({ type: "open" });
      const decoder = new TextDecoder();
      let buffer = "";
      let type = "";
      let data = [];
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, end).replace(/\r$/, "");
          buffer = buffer.slice(end + 1);
          if (line === "") {
            if (data.length) this.dispatch(type, data);
            type = "";
            data = [];
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "id") this.lastEventId = value;
          else if (field === "event") type = value;
          else if (field === "data") data.push(value);
        }
      }
      throw new Error("the stream ended");
    } catch (exc) {
      if (this.readyState === 2) return; // closed by us
      this.readyState = 2;
      if (this.onerror) this.onerror({ type: "error" });
    }
  }
}

// The `eventsource` package (WHATWG EventSource for Node), as a Node user
// would pass it, with its fetch wrapped so the test can cut it and refuse
// reconnects. It would retry by itself after the server's retry:; the client
// reconnects itself instead, with jitter.
async function stockEventSource() {
  const { EventSource: Stock } = await import("eventsource");
  return class CutStockEventSource extends Stock {
    constructor(url, options) {
      const fetches = [];
      super(url, {
        ...options,
        fetch: (input, init) => {
          const controller = new AbortController();
          init.signal?.addEventListener("abort", () => controller.abort(init.signal.reason));
          fetches.push(controller);
          const target = blocked ? DEAD + new URL(input).pathname : input;
          return fetch(target, { ...init, signal: controller.signal });
        },
      });
      this.fetches = fetches;
      connections.push(this);
    }

    cut() {
      for (const controller of this.fetches) controller.abort(new Error("cut by the test"));
    }
  };
}

// SSE that never gets through (a proxy answering 502): the client must fall back.
class RefusedEventSource extends FetchEventSource {
  constructor(url) {
    super(DEAD + new URL(url).pathname);
  }
}

// Node 20's WebSocket (--experimental-websocket); browsers send Origin, and
// so do we, through the client's webSocketOptions.
class GatedWebSocket extends WebSocket {
  constructor(url, options) {
    super(blocked ? DEAD.replace("http", "ws") + new URL(url).pathname : url, options);
    connections.push(this);
  }

  cut() {
    this.close();
  }
}

function waitFor(predicate, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (predicate()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 20);
    };
    poll();
  });
}

const received = [];
const stream = openStream({
  base,
  videoId,
  token,
  transport: mode === "fallback" ? "auto" : mode === "eventsource" ? "sse" : mode,
  heartbeatSeconds: 15,
  EventSource:
    mode === "fallback" ? RefusedEventSource : mode === "eventsource" ? await stockEventSource() : FetchEventSource,
  WebSocket: GatedWebSocket,
  webSocketOptions: { headers: { Origin: new URL(base).origin } },
  onEvent(type, data, id) {
    if (type === "comment") received.push({ id, comment: data.id });
  },
});
const api = createApi({ base, token });
const post = async (text) => {
  const comment = await api.post(`/api/v1/videos/${videoId}/comments/`, { text }, {
    "Idempotency-Key": crypto.randomUUID(),
  });
  return comment.id;
};

await waitFor(() => stream.state === "live", "the stream to open");
const before = [];
for (let i = 0; i < 3; i++) before.push(await post(`before ${i}`));
await waitFor(() => received.length === 3, "the first three comments");

blocked = true;
const cutAt = connections.length;
connections[cutAt - 1].cut();
await waitFor(() => stream.state === "reconnecting", "the client to see the cut");
const during = [];
for (let i = 0; i < 4; i++) during.push(await post(`while cut off ${i}`));
await waitFor(() => connections.length > cutAt, "a refused reconnect");
blocked = false;
await waitFor(() => received.length >= 7, "the missed comments");
await new Promise((resolve) => setTimeout(resolve, 500)); // nothing more may come

const ids = received.map((r) => r.comment);
assert.deepEqual(ids, [...before, ...during]);
const positions = received.map((r) => r.id);
assert.equal(new Set(positions).size, positions.length);
assert.equal(stream.lastEventId, positions.at(-1));

// A refusal comes back as an ApiError carrying the API's code.
await assert.rejects(api.post(`/api/v1/videos/${videoId}/comments/`, { text: "   " }), (error) => {
  assert.ok(error instanceof ApiError);
  assert.equal(error.status, 400);
  assert.ok(error.code && !error.code.startsWith("http_"), error.code);
  return true;
});

stream.close();
console.log(JSON.stringify({ transport: stream.transport, comments: ids, connections: connections.length }));
process.exit(0);
