// Live countdowns. The server renders each `.countdown` with its due time (ISO 8601 in
// `data-due`) and the time left as of the page; this ticks the text every second so an
// open page never shows a stale SLA clock. A stopped clock (`data-stopped`) stays as
// rendered. The wording matches `countdown()` in services/console/pages_incidents.py.
(function () {
  "use strict";

  function two(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400);
    var h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60);
    return (d ? d + "d " : "") + h + "h " + two(m) + "m " + two(s % 60) + "s";
  }

  function tick() {
    var now = Date.now();
    var clocks = document.querySelectorAll(".countdown[data-due]:not([data-stopped])");
    for (var i = 0; i < clocks.length; i++) {
      var el = clocks[i];
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) continue;
      var left = due - now;
      if (left > 0) {
        el.textContent = span(left) + " left";
        el.classList.remove("breached");
      } else {
        el.textContent = (el.getAttribute("data-late") || "breached") + " " + span(left) + " ago";
        el.classList.add("breached");
      }
    }
  }

  function start() {
    tick();
    window.setInterval(tick, 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
  // Content swapped in by htmx may bring new clocks.
  document.addEventListener("htmx:afterSwap", tick);
})();
