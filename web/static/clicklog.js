/* Tell the search log which result was opened (web/insights.py, POST /api/click).
 * Only the search's random id, the article id and its rank are sent. */
(function () {
  "use strict";
  var marker = document.querySelector("[data-search-log]");
  var hits = document.querySelector("ol.hits");
  if (!marker || !hits) { return; }
  var searchId = marker.getAttribute("data-search-log");
  var url = marker.getAttribute("data-click-url");

  function report(link) {
    var match = /\/articles\/([^?#]+)/.exec(link.getAttribute("href") || "");
    var item = link.closest("li");
    if (!match || !item || item.parentNode !== hits) { return; }
    var rank = Array.prototype.indexOf.call(hits.children, item) + (parseInt(hits.getAttribute("start"), 10) || 1);
    var body = JSON.stringify({ search: searchId, id: decodeURIComponent(match[1]), rank: rank });
    if (navigator.sendBeacon && navigator.sendBeacon(url, body)) { return; }
    if (window.fetch) {
      fetch(url, { method: "POST", body: body, keepalive: true, headers: { "Content-Type": "application/json" } })
        .catch(function () {});
    }
  }

  function onClick(event) {
    var link = event.target.closest && event.target.closest("a[href]");
    if (link && (event.type === "click" || event.button === 1)) { report(link); }
  }

  hits.addEventListener("click", onClick);
  hits.addEventListener("auxclick", onClick);
})();
