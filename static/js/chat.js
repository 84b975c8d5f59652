/*
 * livecomment: the live comment panel of /videos/<id>/ (docs/realtime.md, section 4).
 *
 * Plain JS, no build step. One stream per tab:
 *   - EventSource to /api/v1/videos/<id>/stream first (backlog of recent
 *     comments, then live events); the browser resumes it with Last-Event-ID;
 *   - the WebSocket /ws/videos/<id>/?last_event_id=... when SSE cannot
 *     connect, or stays silent past the heartbeat window (a buffering proxy),
 *     or when the page is opened with ?transport=ws.
 * Comments are deduplicated by id, placed in cursor (stream) order, removed on
 * comment.removed; user text only ever goes through textContent.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("lc-config");
  var chat = document.getElementById("chat");
  if (!configNode || !chat) return;
  var cfg = JSON.parse(configNode.textContent);
  var params = new URLSearchParams(window.location.search);

  // The heartbeat window comes from settings.REALTIME_HEARTBEAT_SECONDS via
  // data-heartbeat-seconds. SSE that delivers nothing within it (plus a grace
  // for the first viewers count) is treated as buffered; a WebSocket that
  // receives no frame (pings included) for two windows is treated as dead.
  var heartbeatMs = Math.max(50, parseFloat(chat.dataset.heartbeatSeconds || cfg.heartbeatSeconds || 15) * 1000);
  var SSE_SILENCE_MS = heartbeatMs + 3000;
  var WS_SILENCE_MS = 2 * heartbeatMs + 3000;
  var MAX_NODES = cfg.maxNodes || 500;
  var forced = params.get("transport"); // "ws" | "sse" | null
  var me = cfg.user;
  var moderators = new Set(cfg.moderatorIds || []);

  var el = {
    scroll: document.getElementById("chat-scroll"),
    list: document.getElementById("chat-list"),
    empty: document.getElementById("chat-empty"),
    newBtn: document.getElementById("new-comments"),
    status: document.getElementById("conn-status"),
    banner: document.getElementById("state-banner"),
    pill: document.getElementById("state-pill"),
    viewers: document.getElementById("viewer-count"),
    form: document.getElementById("compose"),
    text: document.getElementById("compose-text"),
    send: document.getElementById("compose-send"),
    error: document.getElementById("compose-error"),
    count: document.getElementById("compose-count"),
  };

  // ---------------------------------------------------------------- cursors
  // A cursor/position is "<ms>-<seq>" (a Redis stream ID); compare numerically.
  function parsePos(pos) {
    var dash = String(pos).indexOf("-");
    if (dash < 0) return [Number(pos) || 0, 0];
    return [Number(pos.slice(0, dash)) || 0, Number(pos.slice(dash + 1)) || 0];
  }
  function comparePos(a, b) {
    var x = parsePos(a), y = parsePos(b);
    return x[0] - y[0] || x[1] - y[1];
  }

  // ------------------------------------------------------------ the list
  var nodes = new Map(); // comment id -> <li>
  var stick = true; // auto-scroll while the user is at the bottom
  var unseen = 0;
  var scrollQueued = false;

  function authorHue(name) {
    var h = 0;
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return h % 360;
  }

  function formatTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function isModerator(author) {
    if (!author) return false;
    // Hook for the moderation issue: a payload that says so wins.
    if (author.is_moderator === true || author.moderator === true) return true;
    return moderators.has(author.id);
  }

  function render(c) {
    var author = c.author || { id: null, name: "?" };
    var li = make("li", "comment");
    li.dataset.id = String(c.id);
    li.dataset.cursor = c.cursor;
    var own = me && author.id === me.id;
    if (own) li.classList.add("own");
    if (isModerator(author)) li.classList.add("by-mod");

    var time = make("time", "time", formatTime(c.created));
    time.dateTime = c.created || "";
    li.appendChild(time);

    var who = make("span", "author", author.name);
    who.style.setProperty("--hue", authorHue(String(author.name)));
    li.appendChild(who);
    if (isModerator(author)) {
      var badge = make("span", "mod-badge", "MOD");
      badge.title = "Moderator";
      li.appendChild(badge);
    }
    li.appendChild(make("span", "text", c.text));

    var actions = make("span", "actions");
    if (own) {
      var del = make("button", "act delete", "Delete");
      del.type = "button";
      del.dataset.action = "delete";
      del.title = "Delete your comment";
      actions.appendChild(del);
    } else if (me) {
      if (me && moderators.has(me.id)) {
        var rm = make("button", "act remove", "Remove");
        rm.type = "button";
        rm.dataset.action = "remove";
        rm.title = "Remove this comment for everyone (moderator)";
        actions.appendChild(rm);
      }
      var rep = make("button", "act report", "Report");
      rep.type = "button";
      rep.dataset.action = "report";
      rep.title = "Report this comment to the moderators";
      actions.appendChild(rep);
    } else {
      var signin = make("a", "act report", "Report");
      signin.href = cfg.loginUrl;
      signin.title = "Sign in to report comments";
      actions.appendChild(signin);
    }
    li.appendChild(actions);
    return li;
  }

  function oldestCursor() {
    var first = el.list.firstElementChild;
    return first ? first.dataset.cursor : null;
  }

  // Insert in cursor order; returns the node, or null if already shown or too old.
  function addComment(c) {
    if (!c || c.id === undefined || !c.cursor) return null;
    if (nodes.has(c.id)) return null;
    if (nodes.size >= MAX_NODES && comparePos(c.cursor, oldestCursor()) < 0) return null;
    var li = render(c);
    var after = el.list.lastElementChild;
    while (after && comparePos(after.dataset.cursor, c.cursor) > 0) after = after.previousElementSibling;
    el.list.insertBefore(li, after ? after.nextElementSibling : el.list.firstElementChild);
    nodes.set(c.id, li);
    if (el.empty) el.empty.hidden = true;
    trim();
    return li;
  }

  function removeComment(id) {
    var li = nodes.get(id);
    if (!li) return;
    nodes.delete(id);
    li.remove();
  }

  // Keep at most MAX_NODES comments in the DOM; keep the reading position.
  function trim() {
    var removedHeight = 0;
    while (nodes.size > MAX_NODES) {
      var first = el.list.firstElementChild;
      if (!first) break;
      if (!stick) removedHeight += first.offsetHeight;
      nodes.delete(Number(first.dataset.id));
      first.remove();
    }
    if (removedHeight) el.scroll.scrollTop -= removedHeight;
  }

  function atBottom() {
    return el.scroll.scrollHeight - el.scroll.scrollTop - el.scroll.clientHeight < 32;
  }

  function scrollToBottom() {
    el.scroll.scrollTop = el.scroll.scrollHeight;
  }

  function queueScroll() {
    if (scrollQueued) return;
    scrollQueued = true;
    window.requestAnimationFrame(function () {
      scrollQueued = false;
      if (stick) scrollToBottom();
    });
  }

  function updateNewButton() {
    if (unseen > 0 && !stick) {
      el.newBtn.textContent = unseen === 1 ? "1 new comment \u2193" : unseen + " new comments \u2193";
      el.newBtn.hidden = false;
    } else {
      el.newBtn.hidden = true;
    }
  }

  function commentArrived(li) {
    if (stick) {
      scrollToBottom();
      queueScroll();
    } else {
      unseen += 1;
      updateNewButton();
    }
  }

  el.scroll.addEventListener("scroll", function () {
    stick = atBottom();
    if (stick) {
      unseen = 0;
      updateNewButton();
    }
  }, { passive: true });

  el.newBtn.addEventListener("click", function () {
    stick = true;
    unseen = 0;
    scrollToBottom();
    updateNewButton();
  });

  window.addEventListener("resize", function () { if (stick) queueScroll(); });

  // ------------------------------------------------------ state and status
  var STATUS_TEXT = {
    connecting: "connecting\u2026",
    live: "live",
    reconnecting: "reconnecting\u2026",
    offline: "offline",
  };
  function setStatus(state, text) {
    el.status.dataset.state = state;
    el.status.textContent = text || STATUS_TEXT[state] || state;
    chat.dataset.connection = state;
  }

  var STATE_LABEL = { live: "Live", ended: "Ended", scheduled: "Upcoming" };
  function setVideoState(state) {
    cfg.state = state;
    if (el.pill) {
      el.pill.className = "state-pill state-" + state;
      el.pill.textContent = STATE_LABEL[state] || state;
    }
    if (state === "ended") {
      el.banner.textContent = "Stream ended";
      el.banner.hidden = false;
    } else if (state === "scheduled") {
      el.banner.textContent = "This stream has not started yet";
      el.banner.hidden = false;
    } else {
      el.banner.hidden = true;
    }
    updateComposer();
  }
  if (cfg.state === "scheduled") setVideoState("scheduled");

  // Slow mode and comments on/off, changed live by a moderator.
  function applySettings(data) {
    if (typeof data.slow_mode_seconds === "number") cfg.slowModeSeconds = data.slow_mode_seconds;
    if (typeof data.comments_enabled === "boolean") cfg.commentsEnabled = data.comments_enabled;
    var note = document.getElementById("slow-note");
    if (note) {
      note.textContent = cfg.slowModeSeconds ? "Slow mode: one comment every " + cfg.slowModeSeconds + " s" : "";
      note.hidden = !cfg.slowModeSeconds;
    }
    updateComposer();
  }

  // The post box is open while the video is live and comments are on.
  function composerOpen() {
    return cfg.commentsEnabled && cfg.state === "live";
  }
  function updateComposer() {
    if (!el.text) return;
    el.text.disabled = !composerOpen();
    if (!cfg.commentsEnabled) el.text.placeholder = "Comments are turned off";
    else if (cfg.state === "ended") el.text.placeholder = "The stream has ended; chat is closed";
    else if (cfg.state === "scheduled") el.text.placeholder = "Chat opens when the stream starts";
    else el.text.placeholder = "Chat\u2026";
    updateSendState();
  }

  function setViewers(count) {
    if (el.viewers && typeof count === "number") el.viewers.textContent = count.toLocaleString();
  }

  // ---------------------------------------------------------- events
  var lastEventId = null; // position of the last stream event seen

  function handleEvent(type, id, data) {
    if (id && (!lastEventId || comparePos(id, lastEventId) > 0)) lastEventId = id;
    switch (type) {
      case "comment":
        var li = addComment(data);
        if (li) commentArrived(li);
        break;
      case "comment.removed":
        if (data) removeComment(data.id);
        break;
      case "viewers":
        if (data) setViewers(data.count);
        break;
      case "video.state":
        if (data && data.state) setVideoState(data.state);
        break;
      case "video.settings":
        if (data) applySettings(data);
        break;
      default:
        break; // moderator-only and future events: not for this panel
    }
  }

  // --------------------------------------------------------- transports
  var EVENT_TYPES = ["comment", "comment.removed", "viewers", "video.state", "video.settings"];
  var mode = forced === "ws" || !window.EventSource ? "ws" : "sse";
  var source = null; // EventSource
  var socket = null; // WebSocket
  var sseProven = false; // this tab's SSE has delivered at least one event
  var silenceTimer = null;
  var retryTimer = null;
  var attempts = 0;
  var stopped = false;

  function clearTimers() {
    clearTimeout(silenceTimer);
    clearTimeout(retryTimer);
    silenceTimer = retryTimer = null;
  }

  function resumeQuery() {
    return lastEventId ? "?last_event_id=" + encodeURIComponent(lastEventId) : "";
  }

  function backoff() {
    var delay = Math.min(5000, 500 * Math.pow(2, attempts)) * (0.75 + Math.random() * 0.5);
    attempts += 1;
    return delay;
  }

  function scheduleReconnect(delay) {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay === undefined ? backoff() : delay);
  }

  function connect() {
    clearTimers();
    if (stopped) return;
    if (mode === "sse") connectSSE();
    else connectWS();
  }

  function fallBackToWebSocket(why) {
    if (forced === "sse") return false;
    if (window.console) console.info("livecomment: SSE " + why + "; using the WebSocket");
    closeSSE();
    mode = "ws";
    chat.dataset.transport = "ws";
    attempts = 0;
    connect();
    return true;
  }

  function closeSSE() {
    if (source) {
      source.close();
      source = null;
    }
  }

  function connectSSE() {
    chat.dataset.transport = "sse";
    closeSSE();
    var es = new EventSource(cfg.streamUrl + resumeQuery());
    source = es;
    var heard = false;
    function heardSomething() {
      if (!heard) {
        heard = true;
        sseProven = true;
        attempts = 0;
        clearTimeout(silenceTimer);
        setStatus("live");
      }
    }
    silenceTimer = setTimeout(function () {
      if (!heard && source === es) {
        if (!fallBackToWebSocket("stayed silent")) {
          closeSSE();
          setStatus("reconnecting");
          scheduleReconnect();
        }
      }
    }, SSE_SILENCE_MS);
    es.onopen = function () {
      // The response started; the silence watchdog still checks that events
      // actually come through (a buffering proxy sends headers, then nothing).
      if (source === es) setStatus("live");
    };
    EVENT_TYPES.forEach(function (type) {
      es.addEventListener(type, function (event) {
        if (source !== es) return;
        heardSomething();
        var data = null;
        try {
          data = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        handleEvent(type, event.lastEventId || null, data);
      });
    });
    es.onerror = function () {
      if (source !== es) return;
      if (!sseProven) {
        // Never delivered anything here: it cannot connect. Try the WebSocket.
        if (fallBackToWebSocket("could not connect")) return;
      }
      setStatus("reconnecting");
      if (es.readyState === EventSource.CLOSED) {
        // An HTTP error (e.g. 503 while the server starts): the browser gave
        // up; reconnect ourselves, resuming from the last id.
        closeSSE();
        scheduleReconnect();
      }
      // Otherwise the browser retries by itself with Last-Event-ID.
    };
  }

  function wsUrl() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + cfg.wsPath + resumeQuery();
  }

  function armWsWatchdog(ws) {
    clearTimeout(silenceTimer);
    silenceTimer = setTimeout(function () {
      if (socket !== ws) return;
      // No frame, not even a ping, for two heartbeat windows: a dead link.
      dropSocket();
      setStatus("reconnecting");
      scheduleReconnect(0);
    }, WS_SILENCE_MS);
  }

  function dropSocket() {
    if (!socket) return;
    var ws = socket;
    socket = null;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close();
    } catch (err) {
      /* already closed */
    }
    failPendingPosts();
  }

  function connectWS() {
    chat.dataset.transport = "ws";
    dropSocket();
    var ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (err) {
      setStatus("offline", "cannot connect");
      return;
    }
    socket = ws;
    var refusal = null;
    armWsWatchdog(ws);
    ws.onopen = function () {
      if (socket !== ws) return;
      attempts = 0;
      setStatus("live");
    };
    ws.onmessage = function (message) {
      if (socket !== ws) return;
      armWsWatchdog(ws);
      var frame;
      try {
        frame = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      if (!frame || frame.event === "ping") return;
      if (frame.event === "ack" || (frame.event === "error" && frame.ref)) {
        settlePost(frame);
        return;
      }
      if (frame.event === "error") {
        refusal = frame.error || {};
        return;
      }
      handleEvent(frame.event, frame.id || null, frame.data);
    };
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      clearTimeout(silenceTimer);
      failPendingPosts();
      if (event.code === 4404 || event.code === 4400 || event.code === 4401 || event.code === 4403) {
        setStatus("offline", (refusal && refusal.message) || "offline");
        return;
      }
      setStatus("reconnecting");
      scheduleReconnect();
    };
  }

  // Back online or back to the tab: reconnect now rather than at the next retry.
  window.addEventListener("online", function () {
    if (el.status.dataset.state !== "live") {
      attempts = 0;
      connect();
    }
  });

  // Leaving the page (or into the back/forward cache): close the stream; on
  // return from the cache, resume from the last id.
  window.addEventListener("pagehide", function () {
    stopped = true;
    clearTimers();
    closeSSE();
    dropSocket();
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && stopped) {
      stopped = false;
      attempts = 0;
      setStatus("reconnecting");
      connect();
    }
  });

  // ------------------------------------------------------------- actions
  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function api(method, url, body, extraHeaders) {
    var headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    Object.keys(extraHeaders || {}).forEach(function (k) { headers[k] = extraHeaders[k]; });
    return fetch(url, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      return response.text().then(function (text) {
        var json = null;
        try {
          json = text ? JSON.parse(text) : null;
        } catch (err) {
          json = null;
        }
        return { status: response.status, ok: response.ok, json: json, headers: response.headers };
      });
    });
  }

  function urlFor(template, id) {
    return template.replace("{id}", encodeURIComponent(id));
  }

  function flash(li, text, kind) {
    var note = li.querySelector(".note");
    if (!note) {
      note = make("span", "note");
      li.appendChild(note);
    }
    note.textContent = text;
    note.dataset.kind = kind || "info";
  }

  function errorMessage(result, fallback) {
    var err = result.json && result.json.error;
    return (err && err.message) || fallback;
  }

  var REPORT_REASONS = [["spam", "Spam"], ["abuse", "Harassment or hate"], ["other", "Something else"]];
  var reportMenu = null;

  function closeReportMenu() {
    if (reportMenu) {
      reportMenu.remove();
      reportMenu = null;
    }
  }

  function openReportMenu(li) {
    closeReportMenu();
    var menu = make("div", "report-menu");
    menu.setAttribute("role", "menu");
    menu.appendChild(make("span", "report-title", "Report this comment as"));
    REPORT_REASONS.forEach(function (pair) {
      var item = make("button", "report-reason", pair[1]);
      item.type = "button";
      item.setAttribute("role", "menuitem");
      item.dataset.reason = pair[0];
      menu.appendChild(item);
    });
    var cancel = make("button", "report-cancel", "Cancel");
    cancel.type = "button";
    menu.appendChild(cancel);
    li.appendChild(menu);
    reportMenu = menu;
  }

  function report(li, reason) {
    closeReportMenu();
    var id = Number(li.dataset.id);
    function reported() {
      var button = li.querySelector("button[data-action=report]");
      if (button) {
        button.textContent = "Reported";
        button.disabled = true;
      }
    }
    api("POST", urlFor(cfg.reportUrl, id), { reason: reason }).then(function (result) {
      if (result.ok) {
        reported();
        flash(li, "Reported. Thanks \u2014 a moderator will take a look.", "ok");
      } else if (result.status === 404 || result.status === 405) {
        flash(li, "Reporting is not available yet. Thanks for trying!", "info");
      } else if (result.status === 409) {
        reported();
        flash(li, "You already reported this comment.", "info");
      }
      else if (result.status === 401 || result.status === 403) flash(li, errorMessage(result, "Sign in to report comments."), "error");
      else flash(li, errorMessage(result, "Could not send the report; try again."), "error");
    }, function () {
      flash(li, "Could not reach the server; try again.", "error");
    });
  }

  function deleteOwn(li) {
    var id = Number(li.dataset.id);
    li.classList.add("pending");
    api("DELETE", urlFor(cfg.commentUrl, id)).then(function (result) {
      li.classList.remove("pending");
      if (result.ok || result.status === 404) removeComment(id);
      else flash(li, errorMessage(result, "Could not delete the comment."), "error");
    }, function () {
      li.classList.remove("pending");
      flash(li, "Could not reach the server; try again.", "error");
    });
  }

  function moderateRemove(li) {
    var id = Number(li.dataset.id);
    api("POST", urlFor(cfg.commentUrl, id) + "moderate/", { action: "remove", reason: "" }).then(function (result) {
      if (result.ok) removeComment(id);
      else if (result.status === 404 || result.status === 405) flash(li, "Moderation from the chat is not available yet; use the admin.", "info");
      else flash(li, errorMessage(result, "Could not remove the comment."), "error");
    }, function () {
      flash(li, "Could not reach the server; try again.", "error");
    });
  }

  el.list.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    var li = target.closest("li.comment");
    if (!li) return;
    if (target.matches(".report-reason")) return report(li, target.dataset.reason);
    if (target.matches(".report-cancel")) return closeReportMenu();
    var button = target.closest("button[data-action]");
    if (!button) return;
    var action = button.dataset.action;
    if (action === "report") openReportMenu(li);
    else if (action === "delete") deleteOwn(li);
    else if (action === "remove") moderateRemove(li);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closeReportMenu();
  });

  // ------------------------------------------------------------- posting
  var pendingPosts = new Map(); // ref -> callbacks (posting over the WebSocket)
  function settlePost(frame) {
    var pending = pendingPosts.get(frame.ref);
    if (!pending) return;
    pendingPosts.delete(frame.ref);
    pending(frame);
  }
  function failPendingPosts() {
    pendingPosts.forEach(function (callback) { callback(null); });
    pendingPosts.clear();
  }

  function randomKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  var sending = false;
  var queued = false; // Enter pressed while a comment was on its way: send the box after it
  var slowUntil = 0;
  var slowTimer = null;
  var lastAttempt = null; // {text, key}: a retry of the same text reuses its Idempotency-Key

  function showError(text) {
    if (!el.error) return;
    el.error.textContent = text || "";
    el.error.hidden = !text;
  }

  function updateSendState() {
    if (!el.send) return;
    var slow = slowUntil > Date.now();
    el.send.disabled = sending || slow || !composerOpen();
    el.send.textContent = slow ? Math.ceil((slowUntil - Date.now()) / 1000) + "s" : "Send";
  }

  function startSlowCountdown(seconds) {
    slowUntil = Date.now() + seconds * 1000;
    clearInterval(slowTimer);
    function tick() {
      var left = Math.ceil((slowUntil - Date.now()) / 1000);
      if (left <= 0) {
        clearInterval(slowTimer);
        slowTimer = null;
        slowUntil = 0;
        showError("");
        updateSendState();
        return;
      }
      showError("Slow mode is on: you can comment again in " + left + " s.");
      updateSendState();
    }
    tick();
    slowTimer = setInterval(tick, 250);
  }

  function updateCount() {
    if (!el.count || !el.text) return;
    var length = el.text.value.length;
    var max = cfg.maxLength || 500;
    el.count.textContent = length > max * 0.8 ? length + "/" + max : "";
    el.count.classList.toggle("over", length > max);
  }

  function autosize() {
    el.text.style.height = "auto";
    el.text.style.height = Math.min(el.text.scrollHeight, 120) + "px";
  }

  function postResult(status, body, headers) {
    var err = body && body.error;
    if (status >= 200 && status < 300 && body && body.id !== undefined) return { ok: true, comment: body };
    if (!err) return { ok: false, code: "http_" + status, message: "The server answered " + status + "; try again." };
    var retry = err.retry_after;
    if (retry === undefined && headers) retry = Number(headers.get("Retry-After")) || undefined;
    return { ok: false, code: err.code, message: err.message, retryAfter: retry, status: status };
  }

  function postViaRest(text, key) {
    return api("POST", cfg.commentsUrl, { text: text }, { "Idempotency-Key": key }).then(function (result) {
      if (result.status === 401 || result.status === 403) {
        var r = postResult(result.status, result.json, result.headers);
        if (r.code === "not_authenticated" || r.code === "authentication_failed") r.message = "Your session has ended; sign in again to chat.";
        return r;
      }
      return postResult(result.status, result.json, result.headers);
    });
  }

  function postViaSocket(text, key) {
    return new Promise(function (resolve) {
      var ref = "r" + key;
      var timer = setTimeout(function () {
        pendingPosts.delete(ref);
        resolve(null);
      }, 8000);
      pendingPosts.set(ref, function (frame) {
        clearTimeout(timer);
        if (!frame) return resolve(null);
        if (frame.event === "ack") resolve({ ok: true, comment: frame.data });
        else resolve(postResult(400, { error: frame.error || {} }));
      });
      try {
        socket.send(JSON.stringify({ action: "post", text: text, idempotency_key: key, ref: ref }));
      } catch (err) {
        // The socket is closing: the REST API takes it, with the same key.
        clearTimeout(timer);
        pendingPosts.delete(ref);
        resolve(null);
      }
    });
  }

  function submit() {
    if (!el.text) return;
    if (sending) {
      // The stream often shows a comment before its POST answers; the next
      // one, typed meanwhile, goes out as soon as the first is through.
      queued = true;
      return;
    }
    var text = el.text.value.trim();
    if (!text) return;
    if (slowUntil > Date.now()) return;
    var max = cfg.maxLength || 500;
    if (text.length > max) {
      showError("That is " + text.length + " characters; the limit is " + max + ".");
      return;
    }
    var key = lastAttempt && lastAttempt.text === text ? lastAttempt.key : randomKey();
    lastAttempt = { text: text, key: key };
    sending = true;
    updateSendState();
    showError("");
    // Over the open WebSocket when that is the transport; else (or if the
    // socket drops meanwhile) the REST API with the same Idempotency-Key.
    var attempt = socket && socket.readyState === WebSocket.OPEN ? postViaSocket(text, key) : Promise.resolve(null);
    attempt
      .then(function (result) { return result || postViaRest(text, key); })
      .then(function (result) {
        sending = false;
        var next = queued;
        queued = false;
        if (result.ok) {
          lastAttempt = null;
          // What was typed after this comment went out stays in the box.
          if (el.text.value.trim() === text) {
            el.text.value = "";
            next = false;
          }
          autosize();
          updateCount();
          var c = result.comment;
          if (c.status && c.status !== "visible") {
            showError(c.status === "held" ? "Your comment is waiting for a moderator's review." : "Your comment is not visible.");
          } else {
            stick = true;
            var li = addComment(c);
            if (li) commentArrived(li);
            scrollToBottom();
            updateNewButton();
          }
          if (cfg.slowModeSeconds && !(me && moderators.has(me.id))) startSlowCountdown(cfg.slowModeSeconds);
        } else if (result.code === "slow_mode" && result.retryAfter) {
          startSlowCountdown(Number(result.retryAfter));
        } else if (result.code === "throttled" && result.retryAfter) {
          showError((result.message || "Too many comments.") + "");
        } else {
          showError(result.message || "Your comment was not sent; try again.");
          if (result.code === "duplicate") lastAttempt = null;
          next = false; // the error is for the person to read first
        }
        updateSendState();
        el.text.focus();
        if (next) submit();
      })
      .catch(function () {
        sending = false;
        queued = false;
        updateSendState();
        showError("Could not reach the server; your comment was not sent. Press Enter to try again.");
      });
  }

  if (el.form) {
    el.form.addEventListener("submit", function (event) {
      event.preventDefault();
      submit();
    });
    el.text.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submit();
      }
    });
    el.text.addEventListener("input", function () {
      autosize();
      updateCount();
      if (el.error && el.error.textContent && !slowUntil) showError("");
    });
    updateComposer();
  }

  // ---------------------------------------------------------------- start
  chat.dataset.transport = mode;
  setStatus("connecting");
  connect();

  // For tests and debugging: read-only view of the client's state.
  window.livecomment = {
    get transport() { return mode; },
    get lastEventId() { return lastEventId; },
    get commentCount() { return nodes.size; },
    get stickToBottom() { return stick; },
  };
})();
