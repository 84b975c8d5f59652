// A native client as a Node app connects: the `ws` package, no Origin header.
// Usage: node native_client.js <ws url with ?token=> <text>
// Prints {"origin_sent": bool, "ack": <the reply to the post>} and exits 0.
const http = require("http");
const WebSocket = require("ws");

// Record whether the handshake request carries an Origin header.
let originSent = null;
const request = http.request;
http.request = (...args) => {
  const req = request(...args);
  originSent = req.hasHeader("origin");
  return req;
};

const [url, text] = process.argv.slice(2);
const ws = new WebSocket(url);
const timer = setTimeout(() => fail("timed out"), 30000);

function fail(why) {
  console.error(why);
  process.exit(1);
}

ws.on("open", () => ws.send(JSON.stringify({ action: "post", text, ref: "node" })));
ws.on("message", (raw) => {
  const frame = JSON.parse(raw.toString());
  if (frame.ref !== "node") return;
  clearTimeout(timer);
  process.stdout.write(JSON.stringify({ origin_sent: originSent, ack: frame }));
  ws.close();
});
ws.on("unexpected-response", (req, res) => fail(`handshake refused: ${res.statusCode}`));
ws.on("error", (err) => fail(String(err)));
