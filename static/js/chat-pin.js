/*
 * livecomment: the pin above the chat list (docs/realtime.md, "The pin").
 *
 * `pin` shows it (a new one replaces the one shown; the same `cursor` again --
 * the copy a stream open sends first, then the backlog's -- changes nothing),
 * `pin.cleared` takes it down, and it hides itself at `expires`. A viewer may
 * dismiss a pin: remembered per pin (its cursor) in localStorage, so that pin
 * stays hidden on reload while the next one shows. Text only via textContent.
 */
const DISMISSED_KEY = "livecomment.dismissedPins";

function dismissed() {
  try {
    return JSON.parse(window.localStorage.getItem(DISMISSED_KEY) || "[]");
  } catch (exc) {
    return [];
  }
}

function remember(cursor) {
  try {
    const kept = dismissed().filter((c) => c !== cursor).slice(-49);
    window.localStorage.setItem(DISMISSED_KEY, JSON.stringify([...kept, cursor]));
  } catch (exc) {
    // storage refused (private mode): dismissed for this page only
  }
}

export function createPin(box) {
  let current = null;
  let timer = null;
  if (!box) return { handle() {} };
  const label = box.querySelector(".pin-label");
  const body = box.querySelector(".pin-text");
  const who = box.querySelector(".pin-by");
  const close = box.querySelector(".pin-dismiss");

  function hide() {
    current = null;
    box.hidden = true;
    delete box.dataset.cursor;
    if (timer) window.clearTimeout(timer);
    timer = null;
  }

  function show(data) {
    if (!data || !data.cursor) return;
    if (current === data.cursor && !box.hidden) return;
    hide();
    const left = data.expires ? Date.parse(data.expires) - Date.now() : Infinity;
    if (left <= 0 || dismissed().includes(data.cursor)) return;
    current = data.cursor;
    const comment = data.comment;
    label.textContent = comment ? "Pinned" : "Announcement";
    body.textContent = comment ? comment.text : data.text || "";
    who.textContent = comment ? `${comment.author.name} · pinned by ${data.by.name}` : `by ${data.by.name}`;
    box.dataset.cursor = data.cursor;
    box.dataset.kind = comment ? "comment" : "announcement";
    box.hidden = false;
    if (left !== Infinity) timer = window.setTimeout(hide, Math.min(left, 2 ** 31 - 1));
  }

  close.addEventListener("click", () => {
    if (current) remember(current);
    hide();
  });

  return {
    handle(type, data) {
      if (type === "pin") show(data);
      else if (type === "pin.cleared") hide();
    },
  };
}
