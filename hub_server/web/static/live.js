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
    if (update.reload_hint) {
      var hint = document.getElementById("alarms-reload");
      if (hint) { hint.hidden = false; }
    }
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
