// Validates an AsyncAPI document with the official parser (@asyncapi/parser):
//   node validate_asyncapi.js <file.json>
// Prints {"errors": [...], "warnings": [...]} as JSON; exit code 1 when there are errors.
"use strict";
const fs = require("fs");
const { Parser } = require("@asyncapi/parser");

const SEVERITY = ["error", "warning", "info", "hint"];

async function main() {
  const text = fs.readFileSync(process.argv[2], "utf8");
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(text);
  const report = { errors: [], warnings: [] };
  for (const d of diagnostics) {
    const entry = { code: d.code, message: d.message, path: (d.path || []).join("/"), severity: SEVERITY[d.severity] };
    (d.severity === 0 ? report.errors : report.warnings).push(entry);
  }
  report.parsed = document !== undefined;
  if (document) {
    report.channels = document.channels().all().map((c) => c.id());
    report.operations = document.operations().all().length;
    report.messages = document.allMessages().all().length;
  }
  process.stdout.write(JSON.stringify(report, null, 1) + "\n");
  process.exit(report.errors.length || !report.parsed ? 1 : 0);
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(2);
});
