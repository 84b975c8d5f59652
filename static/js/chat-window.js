/*
 * livecomment: the chat panel in a window of its own.
 *
 * On the video page, "Pop out chat" opens /videos/<id>/chat/ in a popup
 * window sized like a chat (without script it is a link to the same page).
 * In a frame of another site (EMBED_ALLOWED_ORIGINS), links leave the frame:
 * the sign-in and sign-up pages refuse to be framed, so they open in a tab of
 * their own, which returns to this chat page once signed in. Whether the frame
 * itself is then signed in is the browser's choice: it sends the session to a
 * frame of another site only if the site set its cookies SameSite=None; Secure
 * and the browser allows third-party cookies (docs/OPERATIONS.md, "Embedding
 * the chat").
 */
(function () {
  var framed = window.top !== window.self;
  document.documentElement.dataset.framed = framed ? "1" : "0";

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    var popout = target.closest("a[data-popout]");
    if (popout) {
      var opened = window.open(popout.href, popout.target || "lc-chat", "popup,width=420,height=720");
      if (opened) {
        event.preventDefault();
        opened.focus();
      }
      return;
    }
    var link = target.closest("a[href]");
    if (!framed || !link || link.target) return;
    link.target = "_blank";
  }, true);
})();
