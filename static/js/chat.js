/*
 * livecomment: the live comment panel of /videos/<id>/ (docs/realtime.md, section 4).
 *
 * An ES module, no build step. One stream per tab, from livecomment-stream.js:
 * EventSource first, the WebSocket when SSE cannot connect or stays silent
 * past the heartbeat window (a buffering proxy), or when the page is opened
 * with ?transport=ws. Comments are deduplicated by id, placed in cursor
 * (stream) order, removed on comment.removed; user text only ever goes
 * through textContent.
 */
import { startReplay } from "./chat-replay.js";
import { ApiError, compareCursors as comparePos, createApi, el as make, urlFor } from "./livecomment-api.js";
import { openStream } from "./livecomment-stream.js";
import { createPin } from "./chat-pin.js";

(function () {
  var configNode = document.getElementById("lc-config");
  var chat = document.getElementById("chat");
  if (!configNode || !chat) return;
  var cfg = JSON.parse(configNode.textContent);
  var params = new URLSearchParams(window.location.search);

  // The heartbeat window (settings.REALTIME_HEARTBEAT_SECONDS) tells the
  // stream client how long silence may last before it changes transport.
  var heartbeatSeconds = parseFloat(chat.dataset.heartbeatSeconds || cfg.heartbeatSeconds || 15);
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

  function isModerator(author) {
    if (!author) return false;
    // Hook for the moderation issue: a payload that says so wins.
    if (author.is_moderator === true || author.moderator === true) return true;
    return moderators.has(author.id);
  }

  // Role badges: the author's roles as the comment carries them (author.roles,
  // fixed when it was posted); a payload without them falls back to the
  // page's list of moderators. Text, not color alone; the full word for screen readers.
  var ROLE_BADGES = {
    host: { text: "Host", label: "host", title: "Host of this video" },
    moderator: { text: "Mod", label: "moderator", title: "Moderator of this video" },
    staff: { text: "Staff", label: "staff", title: "Site staff" },
  };

  function rolesOf(author) {
    if (Array.isArray(author.roles)) return author.roles.filter(function (r) { return ROLE_BADGES[r]; });
    return isModerator(author) ? ["moderator"] : [];
  }

  function roleBadge(role) {
    var spec = ROLE_BADGES[role];
    var badge = make("span", "role-badge role-" + role);
    badge.dataset.role = role;
    badge.title = spec.title;
    var shown = make("span", null, spec.text);
    shown.setAttribute("aria-hidden", "true");
    badge.appendChild(shown);
    badge.appendChild(make("span", "visually-hidden", " (" + spec.label + ")"));
    return badge;
  }

  function render(c) {
    var author = c.author || { id: null, name: "?" };
    var roles = rolesOf(author);
    var li = make("li", "comment");
    li.dataset.id = String(c.id);
    li.dataset.cursor = c.cursor;
    var own = me && author.id === me.id;
    if (own) li.classList.add("own");
    roles.forEach(function (role) { li.classList.add("by-" + role); });
    if (roles.indexOf("moderator") >= 0 || roles.indexOf("staff") >= 0) li.classList.add("by-mod");

    var time = make("time", "time", formatTime(c.created));
    time.dateTime = c.created || "";
    li.appendChild(time);

    var who = make("span", "author", author.name);
    who.style.setProperty("--hue", authorHue(String(author.name)));
    li.appendChild(who);
    roles.forEach(function (role) { li.appendChild(roleBadge(role)); });
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
  var pin = createPin(document.getElementById("chat-pin"));

  function handleEvent(type, data) {
    switch (type) {
      case "pin":
      case "pin.cleared":
        pin.handle(type, data);
        break;
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

  // Back online: reconnect now rather than at the next retry.
  window.addEventListener("online", function () {
    if (el.status.dataset.state !== "live") stream.reconnect();
  });

  // Leaving the page (or into the back/forward cache): close the stream; on
  // return from the cache, resume from the last id.
  window.addEventListener("pagehide", function () {
    stream.close();
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) stream.reconnect();
  });

  // ------------------------------------------------------------- actions
  var api = createApi();
  var NETWORK_ERROR = "Could not reach the server; try again.";

  function flash(li, text, kind) {
    var note = li.querySelector(".note");
    if (!note) {
      note = make("span", "note");
      li.appendChild(note);
    }
    note.textContent = text;
    note.dataset.kind = kind || "info";
  }

  function errorMessage(error, fallback) {
    return (error instanceof ApiError && error.detail.message) || fallback;
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
    api.post(urlFor(cfg.reportUrl, id), { reason: reason }).then(function () {
      reported();
      flash(li, "Reported. Thanks \u2014 a moderator will take a look.", "ok");
    }, function (error) {
      var status = error.status;
      if (!status) flash(li, NETWORK_ERROR, "error");
      else if (status === 404 || status === 405) flash(li, "Reporting is not available yet. Thanks for trying!", "info");
      else if (status === 409) {
        reported();
        flash(li, "You already reported this comment.", "info");
      }
      else if (status === 401 || status === 403) flash(li, errorMessage(error, "Sign in to report comments."), "error");
      else flash(li, errorMessage(error, "Could not send the report; try again."), "error");
    });
  }

  function deleteOwn(li) {
    var id = Number(li.dataset.id);
    li.classList.add("pending");
    api.delete(urlFor(cfg.commentUrl, id)).then(function () {
      li.classList.remove("pending");
      removeComment(id);
    }, function (error) {
      li.classList.remove("pending");
      if (error.status === 404) removeComment(id);
      else if (!error.status) flash(li, NETWORK_ERROR, "error");
      else flash(li, errorMessage(error, "Could not delete the comment."), "error");
    });
  }

  function moderateRemove(li) {
    var id = Number(li.dataset.id);
    api.post(urlFor(cfg.commentUrl, id) + "moderate/", { action: "remove", reason: "" }).then(function () {
      removeComment(id);
    }, function (error) {
      if (!error.status) flash(li, NETWORK_ERROR, "error");
      else if (error.status === 404 || error.status === 405) flash(li, "Moderation from the chat is not available yet; use the admin.", "info");
      else flash(li, errorMessage(error, "Could not remove the comment."), "error");
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

  function postViaRest(text, key) {
    return api.post(cfg.commentsUrl, { text: text }, { "Idempotency-Key": key }).then(function (body) {
      if (body && body.id !== undefined) return { ok: true, comment: body };
      return { ok: false, code: "http_200", message: "The server answered 200; try again." };
    }, function (error) {
      if (!error.status) throw error; // not reached: submit() says so
      if (!error.detail.code && !error.detail.message) {
        return { ok: false, code: error.code, message: "The server answered " + error.status + "; try again." };
      }
      var r = { ok: false, code: error.code, message: error.detail.message, retryAfter: error.retryAfter, status: error.status };
      if ((error.status === 401 || error.status === 403) && (r.code === "not_authenticated" || r.code === "authentication_failed")) {
        r.message = "Your session has ended; sign in again to chat.";
      }
      return r;
    });
  }

  // Over the open WebSocket; null when there is none (or it closed first).
  function postViaSocket(text, key) {
    return stream.post({ text: text, idempotencyKey: key }).then(function (result) {
      if (!result || result.ok) return result;
      var err = result.error;
      return { ok: false, code: err.code, message: err.message, retryAfter: err.retry_after, status: 400 };
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
    postViaSocket(text, key)
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
  // An ended video with its recording on the page: the chat replays along
  // with the player (chat-replay.js) instead of opening the live stream.
  var player = cfg.replay ? document.getElementById("player") : null;
  if (player) chat.dataset.mode = "replay";
  var stream = player ? startReplay({
    player: player,
    api: api,
    replayUrl: cfg.replayUrl,
    list: el.list,
    render: render,
    nodes: nodes,
    arrived: commentArrived,
    reset: function () { stick = true; unseen = 0; updateNewButton(); },
    setStatus: setStatus,
    onEmpty: function (empty) { if (el.empty) el.empty.hidden = !empty; },
    maxNodes: MAX_NODES,
    // A page may narrow or widen the window: window.livecommentReplay = {behindMs, aheadMs}.
    behindMs: (window.livecommentReplay || {}).behindMs,
    aheadMs: (window.livecommentReplay || {}).aheadMs,
  }) : openStream({
    streamPath: cfg.streamUrl,
    wsPath: cfg.wsPath,
    transport: forced,
    heartbeatSeconds: heartbeatSeconds,
    events: ["comment", "comment.removed", "viewers", "video.state", "video.settings", "pin", "pin.cleared"],
    onEvent: handleEvent,
    onState: setStatus,
    onTransport: function (transport) {
      chat.dataset.transport = transport;
    },
  });

  // For tests and debugging: read-only view of the client's state.
  window.livecomment = {
    get transport() { return stream.transport; },
    get lastEventId() { return stream.lastEventId; },
    get commentCount() { return nodes.size; },
    get stickToBottom() { return stick; },
  };
})();
