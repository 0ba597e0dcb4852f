// Refreshes the page's <main> every 2 seconds from the same URL with ?fragment=1, so that the
// dashboard stays live without a reload. Filters update the URL (history.replaceState) and
// refresh at once.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  var form = document.getElementById("filters");
  var busy = false;

  function query() {
    var params = new URLSearchParams(form ? new FormData(form) : undefined);
    return params;
  }

  function refresh() {
    if (busy) { return; }
    busy = true;
    var params = query();
    var shown = params.toString();
    params.set("fragment", "1");
    fetch(location.pathname + "?" + params.toString(), { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error(r.status); }
        return r.text();
      })
      .then(function (html) {
        main.innerHTML = html;
        main.dataset.refreshed = String(Number(main.dataset.refreshed || 0) + 1);
        live.className = "live";
        live.textContent = "live";
        var url = location.pathname + (shown ? "?" + shown : "");
        if (url !== location.pathname + location.search) { history.replaceState(null, "", url); }
      })
      .catch(function () {
        live.className = "live stale";
        live.textContent = "hub unreachable";
      })
      .finally(function () { busy = false; });
  }

  if (form) {
    form.addEventListener("input", refresh);
    form.addEventListener("change", refresh);
    form.addEventListener("submit", function (e) { e.preventDefault(); refresh(); });
  }
  setInterval(refresh, 2000);
})();
