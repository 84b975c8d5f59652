// The stream client's reconnects when the gateway keeps refusing it: run by
// tests/test_stream_client_backoff.py.
//
//   LC_BASE=http://127.0.0.1:8000 LC_VIDEO=3 LC_IP=203.0.113.7 LC_MODE=ws|fallback \
//     LC_WATCH_MS=4000 node tests/node/reconnect_backoff_test.mjs
//
// Connects as from LC_IP (X-Forwarded-For: the gateway trusts one proxy) over
// the WebSocket (`ws` package), or over SSE (`eventsource` package) first in
// mode fallback; counts the connections it makes within LC_WATCH_MS, closes
// and prints {"sockets", "streams", "closeCodes", "states"} as JSON on the last line.
import { EventSource } from "eventsource";
import WebSocket from "ws";

import { openStream } from "../../static/js/livecomment-stream.js";

const { LC_BASE: base, LC_VIDEO: videoId, LC_IP: ip, LC_MODE: mode, LC_WATCH_MS: watchMs } = process.env;
const headers = { "X-Forwarded-For": ip };
let sockets = 0;
let streams = 0;
const closeCodes = [];
const states = [];

class CountingWebSocket extends WebSocket {
  constructor(url) {
    super(url, { headers });
    sockets += 1;
    this.addEventListener("close", (event) => closeCodes.push(event.code));
  }
}

class CountingEventSource extends EventSource {
  constructor(url, init) {
    super(url, {
      ...init,
      fetch: (input, options) => fetch(input, { ...options, headers: { ...options.headers, ...headers } }),
    });
    streams += 1;
  }
}

const stream = openStream({
  base,
  videoId,
  transport: mode === "ws" ? "ws" : undefined,
  WebSocket: CountingWebSocket,
  EventSource: CountingEventSource,
  onState: (state) => states.push(state),
});
await new Promise((resolve) => setTimeout(resolve, Number(watchMs)));
stream.close();
console.log(JSON.stringify({ sockets, streams, closeCodes, states }));
process.exit(0);
