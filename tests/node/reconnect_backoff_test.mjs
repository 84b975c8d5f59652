// The stream client's reconnects when the gateway refuses it: run by
// tests/test_stream_client_backoff.py.
//
//   LC_BASE=http://127.0.0.1:8000 LC_VIDEO=3 LC_IP=203.0.113.7 LC_MODE=ws|fallback|foreign \
//     LC_WATCH_MS=4000 node tests/node/reconnect_backoff_test.mjs
//
// Connects as from LC_IP (X-Forwarded-For: the gateway trusts one proxy) over
// the WebSocket (`ws` package), or over SSE (`eventsource` package) first.
// ws, fallback: counts the connections made within LC_WATCH_MS.
// foreign: as a page of another site (its WebSocket has an Origin the
// gateway refuses); prints "refused" once SSE and the WebSocket have both
// been refused, then waits up to LC_WATCH_MS for the stream to go live.
// Prints {"sockets", "streams", "closeCodes", "states", "transport"} as JSON on the last line.
import { EventSource } from "eventsource";
import WebSocket from "ws";

import { openStream } from "../../static/js/livecomment-stream.js";

const { LC_BASE: base, LC_VIDEO: videoId, LC_IP: ip, LC_MODE: mode, LC_WATCH_MS: watchMs } = process.env;
const headers = { "X-Forwarded-For": ip };
let sockets = 0;
let streams = 0;
const closeCodes = [];
const states = [];
let transport = null;
let announced = false;

class CountingWebSocket extends WebSocket {
  constructor(url) {
    super(url, { headers: mode === "foreign" ? { ...headers, Origin: "https://other.example" } : headers });
    sockets += 1;
    this.addEventListener("error", () => {}); // the client sees it through onerror
    this.addEventListener("close", (event) => {
      closeCodes.push(event.code);
      if (mode === "foreign" && !announced && streams > 0) {
        announced = true;
        console.log("refused");
      }
    });
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

let wentLive = null;
const live = new Promise((resolve) => (wentLive = resolve));
const stream = openStream({
  base,
  videoId,
  transport: mode === "ws" ? "ws" : undefined,
  WebSocket: CountingWebSocket,
  EventSource: CountingEventSource,
  onState: (state) => {
    states.push(state);
    if (state === "live" && mode === "foreign") wentLive();
  },
  onTransport: (name) => (transport = name),
});
await Promise.race([live, new Promise((resolve) => setTimeout(resolve, Number(watchMs)))]);
stream.close();
console.log(JSON.stringify({ sockets, streams, closeCodes, states, transport }));
process.exit(0);
