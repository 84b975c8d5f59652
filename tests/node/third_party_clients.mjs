// Stock Node clients of the real-time API, driven by tests/test_third_party_clients.py.
//
//   node third_party_clients.mjs eventsource <SSE url>
//   node third_party_clients.mjs ws <WebSocket url>
//
// `eventsource` (the npm package, WHATWG EventSource) reads the stream through
// a TCP proxy of this script's, so the test can cut the connection under it
// and hold its reconnect: the package reconnects by itself, after the
// server's `retry:`, with its own Last-Event-ID. `ws` connects with no Origin
// (as a native app does); after a cut it resumes as its users must, with
// `?last_event_id=` of the last id it saw.
//
// One JSON object a line on stdout: {"open"} (ws: and "origin_sent"), {"event", "id", "data"} per
// event, {"cut"}, {"reconnect", "last_event_id", "delay_ms"}, {"error"}.
// Commands on stdin, a line each: "cut" (sever the connection; hold any
// reconnect), "resume" (let it through), "exit".
import http from "node:http";
import net from "node:net";
import readline from "node:readline";
import { EventSource } from "eventsource";
import WebSocket from "ws";

const EVENTS = ["comment", "comment.removed", "comment.held", "report.created", "viewers", "video.state", "video.settings"];
const [mode, url] = process.argv.slice(2);
const say = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const fail = (why) => {
  say({ error: String(why) });
  process.exit(1);
};
setTimeout(() => fail("timed out"), 90000).unref();

// -- a cuttable TCP proxy in front of the gateway (for eventsource) ----------
function startProxy(target) {
  const live = new Set();
  const held = [];
  let cut = false;
  const forward = (client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    const pair = { client, upstream };
    live.add(pair);
    const drop = () => {
      live.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    upstream.pipe(client);
    client.pipe(upstream);
    client.resume();
  };
  const server = net.createServer((client) => {
    client.pause();
    if (cut) held.push(client);
    else forward(client);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: server.address().port,
        cut() {
          cut = true;
          for (const { client, upstream } of live) {
            client.destroy();
            upstream.destroy();
          }
          live.clear();
        },
        resume() {
          cut = false;
          for (const client of held.splice(0)) forward(client);
        },
      }),
    );
  });
}

// -- eventsource -------------------------------------------------------------
async function runEventSource() {
  const target = new URL(url);
  const proxy = await startProxy(target);
  const proxied = new URL(url);
  proxied.port = String(proxy.port);
  let cutAt = null;
  let connects = 0;
  // The package's own fetch, watched: each (re)connect and the Last-Event-ID
  // the package chose to send.
  const watchedFetch = (input, init) => {
    connects += 1;
    if (connects > 1) {
      const headers = new Headers(init.headers);
      say({ reconnect: true, last_event_id: headers.get("last-event-id"), delay_ms: Date.now() - cutAt });
    }
    return fetch(input, init);
  };
  const source = new EventSource(proxied.href, { fetch: watchedFetch });
  source.onopen = () => say({ open: true });
  source.onerror = () => {
    if (cutAt === null) cutAt = Date.now();
  };
  // Unnamed (`message`) events: the stream sends none; an empty block would land here.
  source.onmessage = (event) => say({ event: "message", id: event.lastEventId, data: event.data });
  for (const type of EVENTS) {
    source.addEventListener(type, (event) => say({ event: type, id: event.lastEventId, data: JSON.parse(event.data) }));
  }
  return {
    cut() {
      cutAt = null;
      proxy.cut();
      say({ cut: true });
    },
    resume: () => proxy.resume(),
    close: () => source.close(),
  };
}

// -- ws ----------------------------------------------------------------------
function runWs() {
  // Whether a handshake carried an Origin header (ws sends none unless told).
  let originSent = null;
  const request = http.request;
  http.request = (...args) => {
    const req = request(...args);
    originSent = Boolean(originSent) || req.hasHeader("origin");
    return req;
  };
  let socket = null;
  let lastId = null;
  let cutAt = null;
  const open = (resumeFrom) => {
    const target = new URL(url);
    if (resumeFrom) target.searchParams.set("last_event_id", resumeFrom);
    const ws = new WebSocket(target.href); // no Origin option: a native client
    socket = ws;
    ws.on("open", () => say({ open: true, origin_sent: originSent }));
    ws.on("message", (raw) => {
      if (ws !== socket) return;
      const frame = JSON.parse(raw.toString());
      if (frame.event === "ping") return;
      if (frame.id) lastId = frame.id;
      say({ event: frame.event, id: frame.id || "", data: frame.data });
    });
    ws.on("unexpected-response", (req, res) => fail(`handshake refused: ${res.statusCode}`));
    ws.on("error", (err) => {
      if (ws === socket) fail(err);
    });
  };
  open(null);
  return {
    cut() {
      const ws = socket;
      socket = null;
      ws.terminate();
      cutAt = Date.now();
      say({ cut: true });
    },
    resume() {
      say({ reconnect: true, last_event_id: lastId, delay_ms: Date.now() - cutAt });
      open(lastId);
    },
    close: () => socket && socket.close(),
  };
}

const client = mode === "eventsource" ? await runEventSource() : mode === "ws" ? runWs() : fail(`mode ${mode}?`);
for await (const line of readline.createInterface({ input: process.stdin })) {
  if (line === "cut") client.cut();
  else if (line === "resume") client.resume();
  else if (line === "exit") break;
}
client.close();
process.exit(0);
