// Progressive enhancement only: the form works without this file.
(function () {
  "use strict";
  var input = document.getElementById("code");
  var keys = document.getElementById("keys");
  if (input && keys) {
    keys.hidden = false;
    keys.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-key]");
      if (!button) { return; }
      var key = button.getAttribute("data-key");
      if (key === "clear") { input.value = ""; }
      else if (key === "back") { input.value = input.value.slice(0, -1); }
      else if (input.value.length < 12) { input.value += key; }
      input.focus();
    });
  }
  var status = document.getElementById("door-status");
  if (status) {
    var url = status.getAttribute("data-status-url");
    var timer = null;
    var poll = function () {
      fetch(url, { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (s) {
        if (status.textContent !== s.text) { status.textContent = s.text; }
        if (s.phase === "closed" || s.phase === "not-opened") {
          clearInterval(timer);
          setTimeout(function () { window.location.href = status.getAttribute("data-home"); }, 15000);
        }
      }).catch(function () { /* the next poll tries again */ });
    };
    timer = setInterval(poll, 1000);
    poll();
  }
})();
