/* livecomment: the live moderation console (templates/moderation/console.html).
 *
 * One stream (the viewers' stream, from livecomment-stream.js; as a moderator
 * this session also gets `comment.held` and `report.created`), the moderator
 * REST API for every action, and the page's JSON config for what must show
 * at once (open reports, the held queue, the video's switches). An ES module;
 * no framework, no build.
 *
 * Every piece of user text goes into the DOM through textContent: nothing a
 * user typed is ever parsed as HTML.
 */
import { compareCursors, createApi, csrfToken, el, urlFor as url } from "./livecomment-api.js";
import { openStream } from "./livecomment-stream.js";

(() => {
  const cfg = JSON.parse(document.getElementById("mod-config").textContent);
  const $ = (id) => document.getElementById(id);
  const MAX_ROWS = 500;
  const LOG_REFRESH_MS = 15000;
  const BANS_REFRESH_MS = 30000;

  // ---- small helpers ---------------------------------------------------------------

  const before = (a, b) => compareCursors(a, b) < 0;

  const pad = (n) => String(n).padStart(2, "0");
  function clock(iso) {
    const d = iso ? new Date(iso) : new Date();
    if (Number.isNaN(d.getTime())) return "";
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function ago(iso) {
    const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "permanently";
    if (seconds % 3600 === 0) return `${seconds / 3600} h`;
    if (seconds % 60 === 0) return `${seconds / 60} min`;
    return `${seconds} s`;
  }

  function remaining(iso) {
    if (!iso) return "permanent";
    const s = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    if (s <= 0) return "ending";
    if (s < 60) return `${s}s left`;
    if (s < 3600) return `${Math.ceil(s / 60)}m left`;
    if (s < 86400) return `${Math.round(s / 3600)}h left`;
    return `${Math.round(s / 86400)}d left`;
  }

  function snippet(text, n = 80) {
    text = String(text || "").replace(/\s+/g, " ");
    return text.length > n ? `${text.slice(0, n - 1)}…` : text;
  }

  function hue(name) {
    let h = 0;
    for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  const client = createApi({ csrfToken: () => csrfToken(cfg.csrfToken) });

  async function api(method, path, body) {
    try {
      return await client.request(method, path, body);
    } catch (error) {
      if (error.status === 401) error.message = "Your session has ended: sign in again.";
      throw error;
    }
  }

  // ---- toasts ------------------------------------------------------------------------

  function toast(message, kind = "ok", undo = null) {
    const box = $("toasts");
    const node = el("div", `toast toast-${kind}`);
    node.append(el("span", "toast-text", message));
    if (undo) {
      const button = el("button", "toast-undo", "Undo");
      button.type = "button";
      button.addEventListener("click", async () => {
        button.disabled = true;
        node.remove();
        try { await undo(); } catch (exc) { toast(exc.message, "error"); }
      });
      node.append(button);
    }
    box.append(node);
    while (box.children.length > 3) box.firstChild.remove();
    setTimeout(() => node.remove(), kind === "error" ? 8000 : 5000);
  }

  // ---- state -------------------------------------------------------------------------

  const isModerator = new Set(cfg.moderatorIds || []);
  const comments = new Map(); // id -> {data, status, row}
  const held = new Map(); // id -> comment data (the held queue)
  const reports = new Map(); // comment id -> {comment, reports: Map(report id -> report)}
  const known = new Map(); // id -> latest comment data seen anywhere (for log / reports)
  const recent = []; // arrival times of live comments, for the rate
  let openedAt = 0; // when the stream (re)opened; its backlog arrives in the first moments
  // Live, not backlog: an event arriving well after the stream opened. Measured
  // on arrival rather than by a timer (background tabs throttle timers).
  const isLive = () => openedAt > 0 && performance.now() - openedAt > 250;

  function remember(data) {
    if (data && data.id !== undefined) known.set(data.id, Object.assign(known.get(data.id) || {}, data));
  }

  // ---- action buttons ----------------------------------------------------------------

  function actionButton(act, label, title, extraClass = "") {
    const button = el("button", `act act-${act} ${extraClass}`.trim(), label);
    button.type = "button";
    button.dataset.act = act;
    button.title = title;
    return button;
  }

  function canSanction(author) {
    return author && author.id !== cfg.user.id && !isModerator.has(author.id);
  }

  function actionsFor(data, status, where) {
    const box = el("span", "acts");
    if (status === "held") {
      box.append(actionButton("approve", "Approve", "Show it to everyone"));
      box.append(actionButton("remove", "Remove", "Reject it: nobody will see it"));
    } else if (status === "removed") {
      box.append(actionButton("restore", "Restore", "Show it to everyone again"));
    } else {
      box.append(actionButton("remove", "Remove", "Remove it from every screen"));
      box.append(pinButton(data.id));
    }
    if (where === "report") box.append(actionButton("dismiss", "Dismiss", "Close the reports, keep the comment"));
    if (canSanction(data.author)) {
      box.append(actionButton("timeout", "10m", `Time ${data.author.name} out for 10 minutes`));
      box.append(actionButton("ban", "Ban", `Ban ${data.author.name} from this video and remove their recent comments`));
    }
    return box;
  }

  // ---- the pin: Pin / Unpin on each visible message, and announcements ----------------

  let pinned = null; // the `pin` event's data now shown to viewers, or null

  function pinButton(commentId) {
    const mine = pinned && pinned.comment && pinned.comment.id === commentId;
    return mine
      ? actionButton("unpin", "Unpin", "Take this pin down for everyone")
      : actionButton("pin", "Pin", "Pin it above the chat for everyone (replaces the pin)");
  }

  function showPin(data) {
    pinned = data && (!data.expires || Date.parse(data.expires) > Date.now()) ? data : null;
    const text = $("c-pin-text");
    if (!pinned) text.textContent = "Nothing pinned.";
    else if (pinned.comment) text.textContent = `${pinned.comment.author.name}: ${snippet(pinned.comment.text)}`;
    else text.textContent = `Announcement: ${snippet(pinned.text)}` + (pinned.expires ? ` (until ${clock(pinned.expires)})` : "");
    $("c-unpin").hidden = !pinned;
    for (const button of document.querySelectorAll("button[data-act=pin], button[data-act=unpin]")) {
      const holder = button.closest("[data-id]");
      if (holder) button.replaceWith(pinButton(Number(holder.dataset.id)));
    }
  }

  async function unpin() {
    try {
      await api("DELETE", cfg.urls.pin);
      toast("Unpinned", "ok");
    } catch (exc) {
      toast(exc.message, "error");
    }
    scheduleLog(150);
  }

  $("c-unpin").addEventListener("click", unpin);
  $("c-announce").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("c-announce-text");
    const duration = $("c-announce-duration").value;
    try {
      await api("PUT", cfg.urls.pin, { text: input.value, duration_s: duration ? Number(duration) : null });
      input.value = "";
      toast("Announcement pinned", "ok");
    } catch (exc) {
      toast(exc.message, "error");
    }
    scheduleLog(150);
  });

  function authorNode(author) {
    const name = el("span", "uname", author.name);
    name.style.setProperty("--hue", hue(author.name));
    name.title = `${author.name} (user #${author.id})`;
    if (isModerator.has(author.id)) name.classList.add("is-mod");
    return name;
  }

  async function perform(act, commentId, button) {
    const data = known.get(commentId) || (comments.get(commentId) || {}).data;
    if (!data) return;
    const author = data.author;
    if (button) button.disabled = true;
    try {
      if (act === "approve" || act === "remove" || act === "restore") {
        const result = await api("POST", url(cfg.urls.moderate, commentId), { action: act, reason: "" });
        applyStatus(result, result.status);
        if (act === "remove") {
          if (reports.has(commentId)) await resolveReports(commentId, "removed");
          toast(`Removed ${author.name}'s comment`, "ok", () => perform("restore", commentId));
        } else if (act === "approve") {
          toast(`Approved ${author.name}'s comment`, "ok");
        } else {
          toast(`Restored ${author.name}'s comment`, "ok");
        }
      } else if (act === "pin") {
        await api("PUT", cfg.urls.pin, { comment: commentId });
        toast(`Pinned ${author.name}'s comment`, "ok", () => unpin());
      } else if (act === "unpin") {
        await unpin();
      } else if (act === "dismiss") {
        await resolveReports(commentId, "");
        toast(`Dismissed the reports on ${author.name}'s comment`, "ok");
      } else if (act === "timeout" || act === "ban") {
        const permanent = act === "ban";
        await api("POST", cfg.urls.bans, {
          user: author.id,
          duration_seconds: permanent ? null : cfg.timeoutSeconds,
          reason: "",
          remove_comments: permanent,
        });
        const what = permanent
          ? `Banned ${author.name} and removed their comments of the last hour`
          : `Timed out ${author.name} for ${duration(cfg.timeoutSeconds)}`;
        toast(what, "ok", () => liftBan(author));
        refreshBans();
      }
    } catch (exc) {
      toast(exc.message, "error");
    } finally {
      if (button && button.isConnected) button.disabled = false;
      scheduleLog(150);
    }
  }

  async function liftBan(author) {
    await api("DELETE", url(cfg.urls.ban, author.id));
    toast(`Lifted the ban on ${author.name}`, "ok");
    refreshBans();
    scheduleLog(150);
  }

  async function resolveReports(commentId, reason) {
    await api("POST", cfg.urls.resolve, { comment: commentId, reason });
    dropReports(commentId);
  }

  function onActionClick(event) {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const holder = button.closest("[data-id]");
    if (!holder) return;
    perform(button.dataset.act, Number(holder.dataset.id), button);
  }

  // ---- the live chat (every comment, held and removed included) ----------------------

  const streamList = $("stream");
  const scroller = $("stream-scroll");
  const moreButton = $("stream-more");
  let hovering = false; // Twitch-style: the chat holds still under the pointer
  let stick = true; // the reader is at the bottom (false once they scroll up)
  let unseen = 0;

  function atBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  }

  function paused() {
    return hovering || !stick;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
    stick = true;
    unseen = 0;
    moreButton.hidden = true;
  }

  function buildRow(data, status) {
    const row = el("li", "row");
    row.dataset.id = data.id;
    row.dataset.cursor = data.cursor || "";
    row.dataset.author = data.author.id;
    row.append(el("time", "t", clock(data.created)));
    const body = el("span", "body");
    const tags = el("span", "tags");
    body.append(tags, authorNode(data.author), el("span", "txt", data.text));
    row.append(body);
    row.append(el("span", "acts-slot"));
    setRowStatus(row, data, status);
    return row;
  }

  // The author's roles as the comment carries them (fixed when it was
  // posted); without them, the page's list of moderators.
  const ROLE_TAGS = {
    host: ["Host", "Host of this video"],
    moderator: ["Mod", "Moderator of this video"],
    staff: ["Staff", "Site staff"],
  };

  function roleTags(author) {
    const roles = Array.isArray(author.roles) ? author.roles : isModerator.has(author.id) ? ["moderator"] : [];
    return roles
      .filter((role) => ROLE_TAGS[role])
      .map((role) => {
        const [text, title] = ROLE_TAGS[role];
        const tag = el("span", `tag tag-role tag-${role === "moderator" ? "mod" : role}`, text);
        tag.dataset.role = role;
        tag.title = title;
        tag.setAttribute("aria-label", title);
        tag.setAttribute("role", "img");
        return tag;
      });
  }

  function setRowStatus(row, data, status) {
    row.dataset.status = status;
    const tags = row.querySelector(".tags");
    tags.replaceChildren();
    if (status === "held") tags.append(el("span", "tag tag-held", "Held"));
    if (status === "removed") tags.append(el("span", "tag tag-removed", "Removed"));
    const open = reports.get(data.id);
    if (open && open.reports.size) {
      const flag = el("span", "tag tag-report", `⚑ ${open.reports.size}`);
      flag.title = `${open.reports.size} open report${open.reports.size > 1 ? "s" : ""}`;
      tags.append(flag);
    }
    for (const badge of roleTags(data.author)) tags.append(badge);
    row.querySelector(".acts-slot").replaceChildren(actionsFor(data, status, "stream"));
    applyFilter(row);
  }

  function upsertComment(data, status, live) {
    remember(data);
    const existing = comments.get(data.id);
    if (existing) {
      existing.data = Object.assign(existing.data, data);
      existing.status = status;
      setRowStatus(existing.row, existing.data, status);
      return;
    }
    const wasPaused = paused();
    const row = buildRow(data, status);
    comments.set(data.id, { data, status, row });
    // In cursor order: nearly always at the end.
    let after = streamList.lastElementChild;
    while (after && data.cursor && after.dataset.cursor && before(data.cursor, after.dataset.cursor)) {
      after = after.previousElementSibling;
    }
    if (after) after.after(row); else streamList.prepend(row);
    $("stream-empty").hidden = true;
    if (live) {
      recent.push(Date.now());
      showRate();
      if (!wasPaused) {
        trimRows();
        scrollToBottom();
      } else if (row === streamList.lastElementChild) {
        unseen += 1;
        moreButton.textContent = `${unseen} new ↓`;
        moreButton.hidden = hovering;
      }
    } else if (!wasPaused) {
      scrollToBottom();
    }
  }

  function trimRows() {
    while (streamList.children.length > MAX_ROWS) {
      const first = streamList.firstElementChild;
      comments.delete(Number(first.dataset.id));
      first.remove();
    }
  }

  function applyStatus(data, status) {
    remember(data);
    upsertComment(data, status, false);
    if (status === "held") addHeld(data); else removeHeld(data.id);
    refreshReportCard(data.id);
  }

  // Filter: by author name or text, and removed rows on/off.
  const filterInput = $("stream-filter");
  const showRemoved = $("show-removed");
  function applyFilter(row) {
    const needle = filterInput.value.trim().toLowerCase();
    let hide = !showRemoved.checked && row.dataset.status === "removed";
    if (!hide && needle) {
      const name = row.querySelector(".uname").textContent.toLowerCase();
      const text = row.querySelector(".txt").textContent.toLowerCase();
      hide = !(name.includes(needle) || text.includes(needle));
    }
    row.hidden = hide;
  }
  function applyFilterAll() {
    for (const row of streamList.children) applyFilter(row);
  }
  filterInput.addEventListener("input", applyFilterAll);
  showRemoved.addEventListener("change", applyFilterAll);

  scroller.addEventListener("mouseenter", () => { hovering = true; $("stream-paused").hidden = false; });
  scroller.addEventListener("mouseleave", () => {
    hovering = false;
    $("stream-paused").hidden = true;
    if (stick) {
      trimRows();
      scrollToBottom();
    } else if (unseen) {
      moreButton.hidden = false;
    }
  });
  scroller.addEventListener("scroll", () => {
    stick = atBottom();
    if (stick && unseen) { unseen = 0; moreButton.hidden = true; }
  });
  moreButton.addEventListener("click", () => { trimRows(); scrollToBottom(); });
  streamList.addEventListener("click", onActionClick);

  // ---- held queue --------------------------------------------------------------------

  function card(data, kind) {
    const node = el("li", `card card-${kind}`);
    node.dataset.id = data.id;
    const head = el("div", "card-head");
    head.append(authorNode(data.author), el("time", "t", clock(data.created)));
    node.append(head, el("p", "txt", data.text));
    return node;
  }

  function addHeld(data) {
    remember(data);
    const list = $("held-list");
    let node = list.querySelector(`[data-id="${data.id}"]`);
    if (!node) {
      node = card(data, "held");
      node.append(actionsFor(data, "held", "held"));
      let after = list.lastElementChild;
      while (after && before(data.cursor, known.get(Number(after.dataset.id)).cursor)) after = after.previousElementSibling;
      if (after) after.after(node); else list.prepend(node);
    }
    held.set(data.id, data);
    updateCounts();
  }

  function removeHeld(id) {
    const node = $("held-list").querySelector(`[data-id="${id}"]`);
    if (node) node.remove();
    held.delete(id);
    updateCounts();
  }

  $("held-list").addEventListener("click", onActionClick);

  // ---- reports -----------------------------------------------------------------------

  function addReport(report) {
    let group = reports.get(report.comment);
    if (!group) {
      group = { reports: new Map() };
      reports.set(report.comment, group);
    }
    group.reports.set(report.id, report);
    const data = known.get(report.comment);
    if (data) {
      refreshReportCard(report.comment);
    } else {
      // A comment older than what this page has seen: ask for it.
      api("GET", url(cfg.urls.comment, report.comment))
        .then((comment) => { remember(comment); refreshReportCard(report.comment); })
        .catch(() => refreshReportCard(report.comment));
    }
    const entry = comments.get(report.comment);
    if (entry) setRowStatus(entry.row, entry.data, entry.status);
    updateCounts();
  }

  function statusOf(id) {
    const entry = comments.get(id);
    if (entry) return entry.status;
    const data = known.get(id);
    return (data && data.status) || "visible";
  }

  function refreshReportCard(commentId) {
    const group = reports.get(commentId);
    const list = $("reports-list");
    const old = list.querySelector(`[data-id="${commentId}"]`);
    if (!group || !group.reports.size) {
      if (old) old.remove();
      return;
    }
    const data = known.get(commentId) || { id: commentId, author: { id: 0, name: "…" }, text: "(loading)", created: null };
    const status = statusOf(commentId);
    const node = card(data, "report");
    node.dataset.status = status;
    const count = group.reports.size;
    const head = node.querySelector(".card-head");
    head.prepend(el("span", "tag tag-report", `⚑ ${count}`));
    if (status !== "visible") head.append(el("span", `tag tag-${status}`, status === "held" ? "Held" : "Removed"));
    const reasons = el("ul", "reasons");
    for (const report of [...group.reports.values()].slice(-3)) {
      const li = el("li");
      li.append(el("span", "reporter", report.reporter.name), el("span", "reason", report.reason || "no reason given"));
      reasons.append(li);
    }
    if (count > 3) reasons.append(el("li", "more", `+ ${count - 3} more`));
    node.append(reasons);
    if (data.author.id) node.append(actionsFor(data, status, "report"));
    if (old) old.replaceWith(node); else list.prepend(node);
  }

  function dropReports(commentId, reportId) {
    const group = reports.get(commentId);
    if (!group) return;
    if (reportId === undefined) group.reports.clear(); else group.reports.delete(reportId);
    if (!group.reports.size) reports.delete(commentId);
    refreshReportCard(commentId);
    const entry = comments.get(commentId);
    if (entry) setRowStatus(entry.row, entry.data, entry.status);
    updateCounts();
  }

  $("reports-list").addEventListener("click", onActionClick);

  function updateCounts() {
    const setCount = (id, n) => { const node = $(id); node.textContent = n; node.dataset.n = n; };
    setCount("held-count", held.size);
    let open = 0;
    for (const group of reports.values()) open += group.reports.size;
    setCount("reports-count", open);
    $("held-empty").hidden = held.size > 0;
    $("reports-empty").hidden = reports.size > 0;
    document.title = `${held.size ? `(${held.size}) ` : ""}Moderate · ${cfg.title} · livecomment`;
  }

  // ---- the video's switches ------------------------------------------------------------

  const stateGroup = $("c-state");
  const enabledSwitch = $("c-comments-enabled");
  const slowSelect = $("c-slow");

  function showState(state) {
    cfg.state = state;
    for (const button of stateGroup.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.value === state));
    }
    const pill = $("c-state-pill");
    pill.className = `state-pill state-${state}`;
    pill.textContent = state.charAt(0).toUpperCase() + state.slice(1);
  }

  function showSettings(settings) {
    if (typeof settings.comments_enabled === "boolean") {
      cfg.commentsEnabled = settings.comments_enabled;
      enabledSwitch.checked = settings.comments_enabled;
    }
    if (typeof settings.slow_mode_seconds === "number") {
      cfg.slowModeSeconds = settings.slow_mode_seconds;
      const value = String(settings.slow_mode_seconds);
      if (![...slowSelect.options].some((o) => o.value === value)) {
        const option = el("option", "", `${value} s`);
        option.value = value;
        slowSelect.append(option);
      }
      slowSelect.value = value;
      slowSelect.classList.toggle("on", settings.slow_mode_seconds > 0);
    }
  }

  async function patchVideo(changes, describe) {
    try {
      const video = await api("PATCH", cfg.urls.video, changes);
      showState(video.state);
      showSettings(video);
      toast(describe, "ok");
    } catch (exc) {
      toast(exc.message, "error");
      showState(cfg.state);
      showSettings({ comments_enabled: cfg.commentsEnabled, slow_mode_seconds: cfg.slowModeSeconds });
    } finally {
      scheduleLog(150);
    }
  }

  stateGroup.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-value]");
    if (!button || button.dataset.value === cfg.state) return;
    patchVideo({ state: button.dataset.value }, `The video is now ${button.dataset.value}`);
  });
  enabledSwitch.addEventListener("change", () => {
    const on = enabledSwitch.checked;
    patchVideo({ comments_enabled: on }, on ? "Comments are on" : "Comments are off for viewers");
  });
  slowSelect.addEventListener("change", () => {
    const seconds = Number(slowSelect.value);
    patchVideo({ slow_mode_seconds: seconds }, seconds ? `Slow mode: one comment every ${duration(seconds)}` : "Slow mode is off");
  });

  // ---- mod log -----------------------------------------------------------------------

  const VERBS = {
    remove: "removed a comment by",
    restore: "restored a comment by",
    approve: "approved a comment by",
    delete_own: "deleted their own comment",
    timeout: "timed out",
    ban: "banned",
    unban: "lifted ban on",
    resolve_report: "dismissed report on",
    pin: "pinned",
    unpin: "unpinned",
    slow_mode_seconds: "slow mode",
    comments_enabled: "comments",
    video_state: "video state",
    term_add: "added blocked term",
    term_change: "changed blocked term",
    term_delete: "deleted blocked term",
  };

  function logLine(row) {
    const li = el("li", `log-row log-${row.action}`);
    li.dataset.id = row.id;
    li.append(el("time", "t", clock(row.created)));
    const line = el("span", "log-what");
    line.append(el("b", "actor", row.actor ? row.actor.name : "system"));
    line.append(document.createTextNode(" "));
    line.append(el("span", "verb", VERBS[row.action] || row.action.replace(/_/g, " ")));
    const details = row.details || {};
    if (row.action === "slow_mode_seconds") {
      line.append(el("span", "obj", details.value ? ` ${duration(details.value)}` : " off"));
    } else if (row.action === "comments_enabled") {
      line.append(el("span", "obj", details.value ? " on" : " off"));
    } else if (row.action === "video_state") {
      line.append(el("span", "obj", ` → ${details.value}`));
    } else if ((row.action === "pin" || row.action === "unpin") && !row.target_user) {
      line.append(el("span", "obj", details.text ? ` an announcement “${snippet(details.text)}”` : " the pin"));
    } else if (row.action.startsWith("term_")) {
      line.append(el("span", "obj", ` “${details.term || ""}”`));
    } else if (row.target_user && !(row.actor && row.actor.id === row.target_user.id)) {
      line.append(document.createTextNode(" "));
      line.append(el("b", "target", row.target_user.name));
      if (row.action === "timeout") line.append(el("span", "obj", ` for ${duration(details.duration_seconds)}`));
    }
    li.append(line);
    const quoted = row.comment !== null && known.get(row.comment);
    if (quoted) li.append(el("span", "log-quote", snippet(quoted.text)));
    if (row.reason) li.append(el("span", "log-reason", row.reason));
    return li;
  }

  let logTimer = null;
  let logBusy = false;
  let logLatest = 0;

  function scheduleLog(delay = 400) {
    clearTimeout(logTimer);
    logTimer = setTimeout(refreshLog, delay);
  }

  async function refreshLog() {
    clearTimeout(logTimer);
    logTimer = setTimeout(refreshLog, LOG_REFRESH_MS);
    if (logBusy) return;
    logBusy = true;
    try {
      const page = await api("GET", cfg.urls.log);
      const rows = page.results || [];
      $("log-list").replaceChildren(...rows.map(logLine));
      $("log-empty").hidden = rows.length > 0;
      // Reports another moderator dismissed: drop them here too.
      for (const row of rows) {
        if (row.id <= logLatest) break;
        if (row.action === "resolve_report" && row.comment !== null && row.details && row.details.report_id) {
          dropReports(row.comment, row.details.report_id);
        }
      }
      if (rows.length) logLatest = Math.max(logLatest, rows[0].id);
    } catch (exc) {
      if (exc.status === 401 || exc.status === 403) toast(exc.message, "error");
    } finally {
      logBusy = false;
    }
  }
  $("log-refresh").addEventListener("click", () => refreshLog());

  // ---- bans --------------------------------------------------------------------------

  async function refreshBans() {
    try {
      const page = await api("GET", cfg.urls.bans);
      const rows = page.results || [];
      const list = $("bans-list");
      list.replaceChildren(...rows.map((ban) => {
        const li = el("li", "ban");
        li.dataset.user = ban.user.id;
        li.dataset.expires = ban.expires_at || "";
        const who = authorNode(ban.user);
        const kind = el("span", `tag ${ban.expires_at ? "tag-timeout" : "tag-ban"}`, ban.expires_at ? "Time-out" : "Ban");
        const left = el("span", "left", remaining(ban.expires_at));
        const by = el("span", "by", ban.by ? `by ${ban.by.name}` : "");
        const lift = el("button", "act act-lift", "Lift");
        lift.type = "button";
        lift.title = `Let ${ban.user.name} post again`;
        lift.addEventListener("click", async () => {
          lift.disabled = true;
          try { await liftBan(ban.user); } catch (exc) { toast(exc.message, "error"); lift.disabled = false; }
        });
        li.append(kind, who, left, by, lift);
        if (ban.reason) li.append(el("span", "ban-reason", ban.reason));
        return li;
      }));
      $("bans-empty").hidden = rows.length > 0;
      const count = $("bans-count");
      count.textContent = rows.length;
      count.dataset.n = rows.length;
    } catch (exc) {
      /* kept as it was; the next refresh tries again */
    }
  }

  // Time-outs count down without a request.
  setInterval(() => {
    let expired = false;
    for (const li of $("bans-list").children) {
      if (!li.dataset.expires) continue;
      li.querySelector(".left").textContent = remaining(li.dataset.expires);
      if (new Date(li.dataset.expires).getTime() <= Date.now()) expired = true;
    }
    if (expired) refreshBans();
    showRate();
  }, 1000);

  function showRate() {
    // Comments in the last minute.
    const cutoff = Date.now() - 60000;
    while (recent.length && recent[0] < cutoff) recent.shift();
    $("c-rate").textContent = recent.length;
  }

  // ---- the stream --------------------------------------------------------------------

  const connNode = $("c-conn");
  function setConn(state, text) {
    connNode.dataset.state = state;
    connNode.textContent = text;
    $("console").dataset.conn = state;
  }

  const HANDLERS = {
    comment(data) {
      // New, or approved / restored (then data.cursor is the original one).
      const known_ = comments.get(data.id);
      const changed = known_ && known_.status !== "visible";
      upsertComment(data, "visible", isLive() && !known_);
      if (held.has(data.id)) removeHeld(data.id);
      refreshReportCard(data.id);
      if (changed) scheduleLog();
    },
    "comment.held"(data) {
      upsertComment(data, "held", isLive());
      addHeld(data);
    },
    "comment.removed"(data) {
      const entry = comments.get(data.id);
      if (entry) upsertComment(Object.assign({}, entry.data), "removed", false);
      const info = known.get(data.id);
      if (info) info.status = "removed";
      removeHeld(data.id);
      refreshReportCard(data.id);
      scheduleLog();
    },
    "report.created"(data) {
      addReport(data);
      scheduleLog();
    },
    pin(data) {
      showPin(data);
      scheduleLog();
    },
    "pin.cleared"() {
      showPin(null);
      scheduleLog();
    },
    viewers(data) {
      $("c-viewers").textContent = Number(data.count).toLocaleString();
    },
    "video.state"(data) {
      showState(data.state);
      scheduleLog();
    },
    "video.settings"(data) {
      showSettings(data);
      scheduleLog();
    },
  };

  const CONN_TEXT = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…" };

  function startStream() {
    let state = null;
    openStream({
      streamPath: cfg.streamUrl,
      wsPath: `/ws/videos/${cfg.videoId}/`,
      heartbeatSeconds: cfg.heartbeatSeconds,
      withCredentials: true,
      onState(next, message) {
        // The backlog arrives right after the stream (re)opens; what comes later is live.
        if (next === "live" && state !== "live") openedAt = performance.now();
        state = next;
        setConn(next, message || CONN_TEXT[next] || next);
      },
      onEvent(type, data) {
        const handle = HANDLERS[type];
        if (handle && data) handle(data);
      },
    });
  }

  // ---- start -------------------------------------------------------------------------

  showSettings({ comments_enabled: cfg.commentsEnabled, slow_mode_seconds: cfg.slowModeSeconds });
  showState(cfg.state);
  $("c-viewers").textContent = Number(cfg.viewers || 0).toLocaleString();
  for (const [id, data] of Object.entries(cfg.reportedComments || {})) known.set(Number(id), data);
  for (const data of cfg.held || []) {
    upsertComment(data, "held", false);
    addHeld(data);
  }
  for (const report of cfg.reports || []) addReport(report);
  updateCounts();
  startStream();
  refreshLog();
  refreshBans();
  setInterval(refreshBans, BANS_REFRESH_MS);
})();
