/*
 * livecomment: chat replay -- the chat panel of an ended video follows its
 * recording (docs/realtime.md, "Chat replay in the page").
 *
 * An ES module, no build step. chat.js hands over to startReplay() instead of
 * opening the live stream when the page has a player and the video has ended.
 * The panel holds the comments with offset_ms <= the player's currentTime, in
 * offset order (ties in stream order), from REPLAY_BEHIND_MS before the
 * playhead on: comments appear as the recording reaches them, a seek either way
 * re-syncs at once (from what is loaded, else one fetch), a pause pauses the
 * chat. Only a window around the playhead is fetched from
 * GET /api/v1/videos/<id>/replay/: from REPLAY_BEHIND_MS before it to
 * REPLAY_AHEAD_MS after, page by page while playing, never the whole history.
 */
export const REPLAY_BEHIND_MS = 60_000;
export const REPLAY_AHEAD_MS = 30_000;
const PAGE = 200;
const TICK_MS = 100;

// 754120 -> "12:34", 3723000 -> "1:02:03", -2000 -> "-0:02".
function clock(ms) {
  const sign = ms < 0 ? "-" : "";
  const total = Math.floor(Math.abs(ms) / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return sign + (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + s;
}

/**
 * options: player (<video>), api (createApi()), replayUrl, list (<ol>),
 * render(comment) -> <li>, nodes (Map id -> <li>, chat.js's), arrived(li),
 * reset(), setStatus(state), onEmpty(bool), maxNodes (the list's bound, default 500),
 * behindMs / aheadMs (the window, default REPLAY_BEHIND_MS / REPLAY_AHEAD_MS).
 * Returns what chat.js keeps of a stream: close(), reconnect(), post().
 */
export function startReplay(options) {
  const { player, api, replayUrl, list, render, nodes, arrived, reset, setStatus, onEmpty } = options;
  const maxNodes = options.maxNodes || 500;
  const behind = options.behindMs || REPLAY_BEHIND_MS;
  const ahead = options.aheadMs || REPLAY_AHEAD_MS;
  let items = []; // loaded comments, in replay order
  let shown = 0; // items[0..shown) are in the list
  let from = 0; // the loaded range starts here (offset_ms) ...
  let nextFrom = 0; // ... and is complete up to (nextFrom, after), exclusive
  let after = null;
  let generation = 0; // a seek out of the loaded range starts a new one
  let loading = false;
  let timer = null;
  let closed = false;
  let failing = false; // the last fetch failed: retried every 2 s

  const playhead = () => Math.floor(player.currentTime * 1000);

  function clear() {
    for (let i = 0; i < shown; i++) {
      const li = nodes.get(items[i].id);
      if (li) li.remove();
      nodes.delete(items[i].id);
    }
    items = [];
    shown = 0;
  }

  function restart(t) {
    generation += 1;
    clear();
    from = t - behind;
    nextFrom = from;
    after = null;
    loading = false;
    reset();
  }

  // The next page of the window; one request at a time, chained while the
  // loaded range reaches less than half of `ahead` past the playhead.
  function load() {
    if (loading || closed) return;
    const t = playhead();
    const to = t + ahead;
    if (nextFrom - t >= ahead / 2) return; // enough loaded: the next fetch when half of it is played
    loading = true;
    const mine = generation;
    const query = new URLSearchParams({ from_ms: String(nextFrom), to_ms: String(to), limit: String(PAGE) });
    if (after) query.set("after", after);
    api.get(replayUrl + "?" + query).then(
      (page) => {
        if (mine !== generation) return; // a seek started over meanwhile
        loading = false;
        if (closed) return; // left the page: fetched again on return
        failing = false;
        for (const c of page.results) items.push(c);
        nextFrom = page.next_from_ms;
        after = page.cursor;
        sync();
      },
      () => {
        if (mine !== generation) return;
        failing = true;
        setStatus("offline");
        // Try again shortly; the next sync does.
        setTimeout(() => {
          if (mine === generation) loading = false;
          sync();
        }, 2000);
      },
    );
  }

  // Make the list hold exactly the loaded comments with offset_ms <= playhead.
  function sync() {
    if (closed) return;
    const t = playhead();
    // A seek out of what is loaded starts over there. Ahead of it by up to
    // behind + ahead (as just after a start over, before the first page)
    // the pages catch up instead.
    if (t < from || t - nextFrom > behind + ahead) restart(t);
    // Backward: take off what the playhead has not reached.
    while (shown > 0 && items[shown - 1].offset_ms > t) {
      shown -= 1;
      const li = nodes.get(items[shown].id);
      if (li) li.remove();
      nodes.delete(items[shown].id);
    }
    // Forward: add what it has.
    while (shown < items.length && items[shown].offset_ms <= t) {
      const c = items[shown];
      const li = render(c);
      li.dataset.offset = String(c.offset_ms);
      // The time in the recording, not the wall clock (which stays in the title).
      const time = li.querySelector("time");
      if (time) {
        time.title = time.textContent;
        time.textContent = clock(c.offset_ms);
      }
      list.appendChild(li);
      nodes.set(c.id, li);
      shown += 1;
      arrived(li);
    }
    // Drop what fell behind the window, and the oldest past maxNodes.
    let dropped = 0;
    while (dropped < shown && (items[dropped].offset_ms < t - behind || shown - dropped > maxNodes)) {
      dropped++;
    }
    if (dropped) {
      for (let i = 0; i < dropped; i++) {
        const li = nodes.get(items[i].id);
        if (li) li.remove();
        nodes.delete(items[i].id);
      }
      // Complete from here on: a seek back before it starts over.
      from = Math.max(t - behind, items[dropped - 1].offset_ms + 1);
      items = items.slice(dropped);
      shown -= dropped;
    }
    onEmpty(shown === 0);
    // Complete up to the playhead? Else the list may miss comments still to load.
    const complete = nextFrom > t;
    list.dataset.syncedMs = complete ? String(t) : "";
    setStatus(failing ? "offline" : player.paused ? "paused" : "replay");
    load();
  }

  function play() {
    if (timer === null) timer = setInterval(sync, TICK_MS);
    sync();
  }
  function pause() {
    clearInterval(timer);
    timer = null;
    sync();
  }

  player.addEventListener("play", play);
  player.addEventListener("playing", play);
  player.addEventListener("pause", pause);
  player.addEventListener("ended", pause);
  player.addEventListener("seeking", sync);
  player.addEventListener("seeked", sync);
  player.addEventListener("timeupdate", sync);
  player.addEventListener("loadedmetadata", sync);

  restart(playhead());
  if (player.paused) pause();
  else play();

  return {
    transport: "replay",
    lastEventId: null,
    close() {
      closed = true;
      clearInterval(timer);
      timer = null;
    },
    reconnect() {
      // Not `loading = false`: a request still on its way would then be made twice.
      closed = false;
      sync();
    },
    post() {
      return Promise.resolve(null);
    },
    // For tests: the playhead the list is complete up to.
    get syncedMs() {
      return list.dataset.syncedMs;
    },
  };
}
