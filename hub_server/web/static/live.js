// Live dashboard updates: the server sends ready-made text for elements marked data-live="<id>".
(function () {
  "use strict";
  if (!window.EventSource) { return; }
  var stateEl = document.getElementById("live-state");
  var announcer = document.getElementById("live-announcer");

  function setState(on) {
    if (!stateEl) { return; }
    stateEl.setAttribute("data-live-state", on ? "on" : "off");
    stateEl.textContent = stateEl.getAttribute(on ? "data-text-on" : "data-text-off");
  }

  function each(id, fn) {
    var nodes = document.querySelectorAll('[data-live="' + CSS.escape(id) + '"]');
    for (var i = 0; i < nodes.length; i++) { fn(nodes[i]); }
  }

  function apply(update) {
    var text = update.text || {};
    Object.keys(text).forEach(function (id) {
      each(id, function (el) {
        if (el.textContent !== text[id]) {
          el.textContent = text[id];
          el.removeAttribute("data-flash");
          void el.offsetWidth; // restart the highlight animation
          el.setAttribute("data-flash", "");
        }
      });
    });
    var state = update.state || {};
    Object.keys(state).forEach(function (id) {
      each(id, function (el) { el.setAttribute("data-state", state[id]); });
      each(id + "-box", function (el) { el.setAttribute("data-state", state[id]); });
    });
    if (update.announce && announcer) { announcer.textContent = update.announce; }
    if (update.kind === "flow" && lacksLine(update.device, text)) { reload(); }
    if (update.reload_hint) {
      var hint = document.getElementById("alarms-reload");
      if (hint) { hint.hidden = false; }
    }
  }

  // A device page shows a row per line, direction and class counted since local midnight: the day's first
  // count (or a new line) has no row to land in, so the page is drawn again to get one.
  function lacksLine(device, text) {
    if (!device || !document.querySelector('[data-live-grow="' + CSS.escape(device) + '"]')) { return false; }
    var prefix = "line-" + device + "-";
    return Object.keys(text).some(function (id) {
      return id.indexOf(prefix) === 0 && !document.querySelector('[data-live="' + CSS.escape(id) + '"]');
    });
  }

  function reload() {
    // At most once per ten seconds, so a figure the page cannot show never turns into a reload loop.
    var last = Number(window.sessionStorage.getItem("live-reload-at") || 0);
    if (Date.now() - last < 10000) { return; }
    window.sessionStorage.setItem("live-reload-at", String(Date.now()));
    source.close();
    window.location.reload();
  }

  var source = new EventSource("/live");
  source.addEventListener("open", function () { setState(true); });
  source.addEventListener("error", function () { setState(false); });
  source.addEventListener("hello", function () { setState(true); document.documentElement.setAttribute("data-live-ready", ""); });
  source.addEventListener("update", function (e) {
    try { apply(JSON.parse(e.data)); } catch (err) { /* one bad message must not stop the stream */ }
  });
  source.addEventListener("reload", function () { source.close(); window.location.reload(); });
})();
