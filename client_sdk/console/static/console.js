// refcheck console: the only script, served from this console (no inline script, no CDN).
// It does no cryptography and sends nothing anywhere: it only hides the page when the console
// locks itself after the idle time, and offers printing.
(function () {
  "use strict";
  var idle = parseInt(document.body.getAttribute("data-idle-seconds") || "0", 10);
  if (idle > 0) {
    var timer = null;
    var arm = function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(function () { window.location.replace("/unlock?locked=1"); }, (idle + 1) * 1000);
    };
    ["keydown", "mousedown", "touchstart"].forEach(function (name) {
      document.addEventListener(name, arm, { passive: true });
    });
    arm();
  }
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();
// Re-screening: poll the progress (same origin) and show the results page when done.
(function () {
  "use strict";
  var box = document.getElementById("rescreen");
  if (!box || box.getAttribute("data-finished") === "1") { return; }
  var bar = document.getElementById("bar");
  var text = document.getElementById("bar-text");
  var tick = function () {
    fetch(box.getAttribute("data-progress-url"), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        bar.max = p.total; bar.value = p.done; text.textContent = p.done + " / " + p.total;
        if (p.finished) { window.location.reload(); } else { setTimeout(tick, 700); }
      })
      .catch(function () { setTimeout(tick, 2000); });
  };
  setTimeout(tick, 300);
})();
