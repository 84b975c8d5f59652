/**
 * livecomment stream client: one video's live events, in order, exactly once.
 *
 * An ES module (ES2017+, no build step, no dependencies). In a page:
 *
 *   <script type="module">
 *     import { openStream } from "https://live.example.com/static/js/livecomment-stream.js";
 *     const stream = openStream({
 *       base: "https://live.example.com", videoId: 3,
 *       onEvent(type, data, id) { ... },  // "comment", "comment.removed", "viewers", ...
 *       onState(state, message) { ... },  // "connecting" | "live" | "reconnecting" | "offline"
 *     });
 *     // later: stream.close();
 *   </script>
 *
 * Under Node 20 pass the constructors it lacks, e.g. from the `eventsource`
 * and `ws` packages: openStream({..., EventSource, WebSocket,
 * webSocketOptions: {headers: {Origin: "https://live.example.com"}}}).
 *
 * EventSource to GET /api/v1/videos/<id>/stream first; the WebSocket
 * /ws/videos/<id>/ when SSE cannot connect (no event ever came through it)
 * or a connection stays silent past the heartbeat window (a buffering proxy);
 * SSE again when that WebSocket is never let in either (they take turns).
 * Reconnects with jittered backoff (0.5 s doubling to 5 s, each +-25 %; not
 * EventSource's own retry, which would bring back every viewer of a lost
 * gateway at the same moment) and resumes after the last event id seen (a new
 * connection passes `?last_event_id=`). An event whose id is not after the last one seen is a
 * duplicate and is dropped, so events reach onEvent once, in stream order.
 * Comments are still deduplicated by comment id by the caller: a restored
 * comment is announced again (a new event id, its original cursor).
 *
 * Options:
 *   base              origin of the livecomment server (default: the page's)
 *   videoId           the video; or streamPath / wsPath to give the paths
 *   lastEventId       resume after this position (e.g. saved from a past visit)
 *   token             API token (`?token=`); otherwise the session cookie
 *   transport         "auto" (default), "sse" or "ws": only that one
 *   heartbeatSeconds  the server's REALTIME_HEARTBEAT_SECONDS (default 15)
 *   events            SSE event types to listen to (default STREAM_EVENTS)
 *   withCredentials   EventSource's option, for a cross-origin session
 *   EventSource, WebSocket   constructors (default: the global ones)
 *   webSocketOptions  second argument of `new WebSocket(url, ...)` (Node)
 *   onEvent(type, data, id)   every event; id is null for `viewers`
 *   onState(state, message)   connection state; message on "offline"
 *   onTransport(transport)    "sse" or "ws", when a connection starts
 *
 * The returned stream has `state`, `transport`, `lastEventId`,
 * `post({text, idempotencyKey})` (over an open WebSocket: resolves to
 * `{ok: true, comment}` or `{ok: false, error}`, or null when the socket is
 * not there or closes first -- then post through the REST API with the same
 * key), `reconnect()` and `close()`.
 */

import { compareCursors } from "./livecomment-api.js";

export const STREAM_EVENTS = [
  "comment",
  "comment.removed",
  "comment.held",
  "report.created",
  "viewers",
  "video.state",
  "video.settings",
  "pin",
  "pin.cleared",
];

// Not in the video's stream, so never carry an id of their own.
const UNSTREAMED = new Set(["viewers"]);
// Refusals at connect (4000 + HTTP status) that a retry cannot fix.
const FINAL_CLOSE_CODES = new Set([4400, 4401, 4403, 4404]);
const POST_TIMEOUT_MS = 8000;

export function openStream(options) {
  return new LiveCommentStream(options);
}

export class LiveCommentStream {
  constructor(options = {}) {
    const o = options;
    const page = typeof location !== "undefined" ? location.href : undefined;
    this._base = o.base || page;
    this._streamPath = o.streamPath || `/api/v1/videos/${o.videoId}/stream`;
    this._wsPath = o.wsPath || `/ws/videos/${o.videoId}/`;
    this._token = o.token || null;
    this._events = o.events || STREAM_EVENTS;
    this._withCredentials = Boolean(o.withCredentials);
    this._EventSource = o.EventSource || globalThis.EventSource;
    this._WebSocket = o.WebSocket || globalThis.WebSocket;
    this._wsOptions = o.webSocketOptions;
    this._onEvent = o.onEvent || (() => {});
    this._onState = o.onState || (() => {});
    this._onTransport = o.onTransport || (() => {});
    // SSE that delivers nothing within the heartbeat window (plus a grace for
    // the first viewers count) is buffered; a WebSocket without a frame
    // (pings included) for two windows is dead.
    const heartbeatMs = Math.max(50, Number(o.heartbeatSeconds || 15) * 1000);
    this._sseSilenceMs = heartbeatMs + 3000;
    this._wsSilenceMs = 2 * heartbeatMs + 3000;

    this._forced = o.transport === "sse" || o.transport === "ws" ? o.transport : null;
    this.transport = this._forced === "ws" || !this._EventSource ? "ws" : "sse";
    this.lastEventId = o.lastEventId || null;
    this.state = null;
    this._source = null;
    this._socket = null;
    this._sseProven = false; // SSE has delivered at least one event here
    this._wsProven = false; // a WebSocket has been let in (a frame other than a refusal)
    this._silenceTimer = null;
    this._retryTimer = null;
    this._attempts = 0;
    this._stopped = false;
    this._pending = new Map(); // ref -> settle(frame or null), posts over the WebSocket

    this._onTransport(this.transport);
    this._setState("connecting");
    this._connect();
  }

  // ------------------------------------------------------------ public

  /** Post a comment over the open WebSocket; null means "use the REST API". */
  post({ text, idempotencyKey }) {
    const ws = this._socket;
    if (!ws || ws.readyState !== 1) return Promise.resolve(null);
    return new Promise((resolve) => {
      const ref = `r${idempotencyKey}`;
      const timer = setTimeout(() => {
        this._pending.delete(ref);
        resolve(null);
      }, POST_TIMEOUT_MS);
      this._pending.set(ref, (frame) => {
        clearTimeout(timer);
        if (!frame) resolve(null);
        else if (frame.event === "ack") resolve({ ok: true, comment: frame.data });
        else resolve({ ok: false, error: frame.error || {} });
      });
      try {
        ws.send(JSON.stringify({ action: "post", text, idempotency_key: idempotencyKey, ref }));
      } catch (exc) {
        // The socket is closing: the caller posts through the REST API instead.
        clearTimeout(timer);
        this._pending.delete(ref);
        resolve(null);
      }
    });
  }

  /** Connect now (e.g. back online, or back from the page cache), resuming. */
  reconnect() {
    if (this._stopped) {
      this._stopped = false;
      this._setState("reconnecting");
    }
    this._attempts = 0;
    this._connect();
  }

  close() {
    this._stopped = true;
    this._clearTimers();
    this._closeSSE();
    this._dropSocket();
  }

  // ----------------------------------------------------------- delivery

  _setState(state, message) {
    this.state = state;
    this._onState(state, message);
  }

  _deliver(type, id, data) {
    if (UNSTREAMED.has(type)) id = null;
    // The current pin a stream open sends first has no id of its own (an
    // EventSource reports the last one it saw): only a pin at its own position is in the stream.
    if (type === "pin" && data && id !== data.cursor) id = null;
    if (id) {
      if (this.lastEventId && compareCursors(id, this.lastEventId) <= 0) return;
      this.lastEventId = id;
    }
    this._onEvent(type, data, id);
  }

  // ---------------------------------------------------------- connecting

  _url(path, scheme) {
    const url = new URL(path, this._base);
    if (scheme) url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.lastEventId) url.searchParams.set("last_event_id", this.lastEventId);
    if (this._token) url.searchParams.set("token", this._token);
    return url.href;
  }

  _clearTimers() {
    clearTimeout(this._silenceTimer);
    clearTimeout(this._retryTimer);
    this._silenceTimer = this._retryTimer = null;
  }

  _backoff() {
    const delay = Math.min(5000, 500 * 2 ** this._attempts) * (0.75 + Math.random() * 0.5);
    this._attempts += 1;
    return delay;
  }

  _scheduleReconnect(delay) {
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._connect(), delay === undefined ? this._backoff() : delay);
  }

  _connect() {
    this._clearTimers();
    if (this._stopped) return;
    if (this.transport === "sse") this._connectSSE();
    else this._connectWS();
  }

  _fallBackToWebSocket(why) {
    if (this._forced === "sse" || !this._WebSocket) return false;
    if (typeof console !== "undefined") console.info(`livecomment: SSE ${why}; using the WebSocket`);
    this._closeSSE();
    this.transport = "ws";
    this._onTransport("ws");
    // Not back to the shortest wait: SSE and a WebSocket that both fail take
    // turns (see _connectWS), and each round must wait longer than the last.
    this._connect();
    return true;
  }

  // ----------------------------------------------------------------- SSE

  _closeSSE() {
    if (this._source) {
      this._source.close();
      this._source = null;
    }
  }

  _connectSSE() {
    this._onTransport("sse");
    this._closeSSE();
    const ES = this._EventSource;
    const es = new ES(this._url(this._streamPath), { withCredentials: this._withCredentials });
    this._source = es;
    let heard = false;
    const heardSomething = () => {
      if (heard) return;
      heard = true;
      this._sseProven = true;
      this._attempts = 0;
      clearTimeout(this._silenceTimer);
      this._setState("live");
    };
    this._silenceTimer = setTimeout(() => {
      if (heard || this._source !== es) return;
      if (!this._fallBackToWebSocket("stayed silent")) {
        this._closeSSE();
        this._setState("reconnecting");
        this._scheduleReconnect();
      }
    }, this._sseSilenceMs);
    es.onopen = () => {
      // The response started; the silence watchdog still checks that events
      // actually come through (a buffering proxy sends headers, then nothing).
      if (this._source === es) this._setState("live");
    };
    for (const type of this._events) {
      es.addEventListener(type, (event) => {
        if (this._source !== es) return;
        heardSomething();
        let data;
        try {
          data = JSON.parse(event.data);
        } catch (exc) {
          return;
        }
        this._deliver(type, event.lastEventId || null, data);
      });
    }
    es.onerror = () => {
      if (this._source !== es) return;
      // Never delivered anything here: it cannot connect. Try the WebSocket.
      if (!this._sseProven && this._fallBackToWebSocket("could not connect")) return;
      this._setState("reconnecting");
      // Reconnect ourselves, resuming from the last id, with jittered backoff:
      // whether an HTTP error (e.g. 503 while the server starts) closed it for
      // good, or EventSource would retry by itself -- after the server's
      // `retry:`, the same moment for every viewer of a gateway that went away.
      this._closeSSE();
      this._scheduleReconnect();
    };
  }

  // ----------------------------------------------------------- WebSocket

  _armWsWatchdog(ws) {
    clearTimeout(this._silenceTimer);
    this._silenceTimer = setTimeout(() => {
      if (this._socket !== ws) return;
      this._dropSocket();
      this._setState("reconnecting");
      this._scheduleReconnect(0);
    }, this._wsSilenceMs);
  }

  _failPendingPosts() {
    for (const settle of this._pending.values()) settle(null);
    this._pending.clear();
  }

  _dropSocket() {
    const ws = this._socket;
    if (!ws) return;
    this._socket = null;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close();
    } catch (exc) {
      /* already closed */
    }
    this._failPendingPosts();
  }

  _connectWS() {
    this._onTransport("ws");
    this._dropSocket();
    const WS = this._WebSocket;
    let ws;
    try {
      const url = this._url(this._wsPath, "ws");
      ws = this._wsOptions === undefined ? new WS(url) : new WS(url, this._wsOptions);
    } catch (exc) {
      this._setState("offline", "cannot connect");
      return;
    }
    this._socket = ws;
    let refusal = null;
    let admitted = false;
    this._armWsWatchdog(ws);
    // A refusal (too many streams, shutting down) is an opened socket too: an
    // `error` frame, then a close. So the socket is live, and the backoff starts
    // again, only at its first other frame (the viewers count, comes at once);
    // refused again and again, it keeps backing off.
    const admit = () => {
      if (admitted) return;
      admitted = true;
      this._wsProven = true;
      this._attempts = 0;
      this._setState("live");
    };
    ws.onmessage = (message) => {
      if (this._socket !== ws) return;
      this._armWsWatchdog(ws);
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch (exc) {
        return;
      }
      if (!frame) return;
      if (frame.event !== "error" || frame.ref) admit();
      if (frame.event === "ping") return;
      if (frame.event === "ack" || (frame.event === "error" && frame.ref)) {
        const settle = this._pending.get(frame.ref);
        if (settle) {
          this._pending.delete(frame.ref);
          settle(frame);
        }
        return;
      }
      if (frame.event === "error") {
        refusal = frame.error || {};
        return;
      }
      this._deliver(frame.event, frame.id || null, frame.data);
    };
    const lost = (code) => {
      if (this._socket !== ws) return;
      this._dropSocket();
      clearTimeout(this._silenceTimer);
      if (FINAL_CLOSE_CODES.has(code)) {
        this._setState("offline", (refusal && refusal.message) || "offline");
        return;
      }
      // A WebSocket never let in here, reached by falling back from SSE: SSE
      // again next time. A page of another site has SSE only (the WebSocket
      // refuses its Origin): after one refused SSE connection (a full or
      // starting gateway) it must not keep knocking on the WebSocket.
      if (!admitted && !this._wsProven && !this._forced && this._EventSource) this.transport = "sse";
      this._setState("reconnecting");
      this._scheduleReconnect();
    };
    ws.onclose = (event) => lost(event.code);
    // Browsers follow an error with a close; some WebSocket implementations
    // (Node 20's) fire only the error when the connection cannot be made.
    ws.onerror = () => lost(1006);
  }
}
