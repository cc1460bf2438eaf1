// Remediator console: live refresh. Pages are complete without this script; it only keeps
// the parts marked `data-live="URL"` current by fetching that URL (a server-rendered HTML
// fragment of the same part) every few seconds and swapping it in. Nothing else runs here.
(function () {
  'use strict';
  var meta = document.querySelector('meta[name="console-refresh-ms"]');
  var every = Math.max(250, parseInt(meta ? meta.content : '2000', 10) || 2000);
  var stopped = false;
  var busy = false;

  function stamp(text) {
    var el = document.querySelector('[data-live-stamp]');
    if (el) { el.textContent = text; }
  }

  function refresh(el) {
    var url = el.getAttribute('data-live');
    return fetch(url, {
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'Accept': 'text/html' }
    }).then(function (response) {
      if (response.status === 401) {
        stopped = true;
        stamp('session ended: log in again');
        return null;
      }
      if (!response.ok) { throw new Error('HTTP ' + response.status); }
      return response.text();
    }).then(function (html) {
      if (html !== null && html !== el.innerHTML) { el.innerHTML = html; }
      el.removeAttribute('data-stale');
    }).catch(function () {
      // Keep the last good content, marked stale, and try again on the next tick.
      el.setAttribute('data-stale', 'true');
    });
  }

  function tick() {
    if (stopped || busy || document.hidden) { return; }
    var parts = document.querySelectorAll('[data-live]');
    if (parts.length === 0) { return; }
    busy = true;
    Promise.all(Array.prototype.map.call(parts, refresh)).then(function () {
      busy = false;
      if (!stopped) { stamp('live · updated ' + new Date().toLocaleTimeString()); }
    });
  }

  // "Select all" for the dead-letter selection; without the script each box is ticked alone.
  document.addEventListener('change', function (event) {
    var box = event.target;
    if (!box.matches || !box.matches('input[data-select-all]')) { return; }
    var boxes = document.querySelectorAll('input[name="id"][type="checkbox"]');
    Array.prototype.forEach.call(boxes, function (b) { b.checked = box.checked; });
  });

  document.addEventListener('DOMContentLoaded', function () {
    if (document.querySelector('[data-live]')) {
      stamp('live');
      setInterval(tick, every);
    }
  });
})();
