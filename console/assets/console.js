// The console's only script: live regions that follow the event feed, the artifact upload
// with its progress, and the time slider. Served from /ui/assets (no inline script runs).
"use strict";

(function () {
  const main = document.getElementById("main");
  const csrf = main ? main.dataset.csrf : undefined;

  // Regions marked data-live are re-read from this page's own URL when the fleet changes:
  // at most one read in flight, and none more often than once a second.
  let refreshing = false;
  let again = false;
  let last = 0;
  // The newest event heard: the page is read once the projections have applied it.
  let seen = "";
  function refresh() {
    const now = Date.now();
    if (refreshing || now - last < 1000) {
      again = true;
      if (!refreshing) setTimeout(refresh, 1000 - (now - last));
      return;
    }
    refreshing = true;
    again = false;
    last = now;
    const headers = seen ? { "X-Deployments-Log-Position": seen } : {};
    fetch(window.location.href, { credentials: "same-origin", headers: headers })
      .then(function (response) {
        if (response.url.indexOf("/ui/sign-in") !== -1) {
          window.location.reload();
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) return;
        const fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (region) {
          const update = region.id && fresh.getElementById(region.id);
          if (update && update.innerHTML !== region.innerHTML) region.innerHTML = update.innerHTML;
        });
      })
      .catch(function () {})
      .finally(function () {
        refreshing = false;
        if (again) setTimeout(refresh, 1000);
      });
  }

  // The audit page appends each new event that passes its filters, as the API filters: a
  // stream name that starts with the stream filter, a type equal to the type filter.
  const followed = document.querySelector("table[data-follow] tbody");
  function follow(event) {
    const table = followed.parentElement;
    if (event.stream.indexOf(table.dataset.stream) !== 0) return;
    if (table.dataset.type && event.event_type !== table.dataset.type) return;
    const row = document.createElement("tr");
    [String(event.position), event.occurred_at, event.stream, event.event_type, event.actor || ""]
      .forEach(function (value) {
        const cell = document.createElement("td");
        cell.textContent = value;
        row.appendChild(cell);
      });
    followed.appendChild(row);
  }

  if (csrf && (document.querySelector("[data-live]") || followed)) {
    // One connection for the page's life, which EventSource reconnects with Last-Event-ID.
    // The audit page starts it after the newest event it shows.
    const indicator = document.getElementById("live-status");
    const start = followed ? followed.parentElement.dataset.after : "";
    let opens = 0;
    let feed = null;
    let delay = 5000;
    function connect() {
      const after = seen || start;
      feed = new EventSource("/ui/live" + (after ? "?after=" + encodeURIComponent(after) : ""));
      feed.onopen = function () {
        opens += 1;
        delay = 5000;
        main.dataset.feedOpens = String(opens);
        if (indicator) indicator.textContent = "● live";
      };
      feed.onerror = function () {
        if (indicator) indicator.textContent = "reconnecting…";
        if (feed.readyState !== EventSource.CLOSED) return;
        // The browser gave up (the session ended, or an answer it does not retry): once the
        // page still reads (a page read that goes to sign-in reloads there), start again
        // after the last event heard, waiting longer each time.
        setTimeout(function () {
          fetch(window.location.href, { credentials: "same-origin", method: "HEAD" })
            .then(function (response) {
              if (response.url.indexOf("/ui/sign-in") !== -1) window.location.reload();
              else connect();
            })
            .catch(connect);
        }, delay);
        delay = Math.min(delay * 2, 60000);
      };
      feed.onmessage = function (message) {
        if (message.lastEventId) seen = message.lastEventId;
        if (followed) {
          try { follow(JSON.parse(message.data)); } catch (_) { /* not an event */ }
        }
        if (document.querySelector("[data-live]")) refresh();
      };
    }
    connect();
    window.addEventListener("pagehide", function () { feed.close(); });
  }

  // The upload form: sent by XMLHttpRequest for its progress events, the API's answer shown.
  const upload = document.getElementById("upload");
  if (upload && csrf) {
    upload.addEventListener("submit", function (submitted) {
      submitted.preventDefault();
      const bar = document.getElementById("upload-progress");
      const result = document.getElementById("upload-result");
      const button = upload.querySelector("button[type=submit]");
      const request = new XMLHttpRequest();
      request.open("POST", "/ui/releases/upload");
      request.setRequestHeader("X-CSRF-Token", csrf);
      bar.hidden = false;
      bar.value = 0;
      button.disabled = true;
      result.textContent = "Uploading…";
      result.className = "";
      request.upload.onprogress = function (progress) {
        if (progress.lengthComputable) bar.value = Math.round((progress.loaded * 100) / progress.total);
      };
      request.onload = function () {
        button.disabled = false;
        if (request.status === 201) {
          bar.value = 100;
          result.textContent = "Uploaded.";
          upload.reset();
          refresh();
          return;
        }
        let message = "The server answered " + request.status + ".";
        try { message = JSON.parse(request.responseText).error || message; } catch (_) { /* keep */ }
        result.textContent = "Refused: " + message;
        result.className = "error";
      };
      request.onerror = function () {
        button.disabled = false;
        result.textContent = "The upload did not reach the server.";
        result.className = "error";
      };
      request.send(new FormData(upload));
    });
  }

  // The time slider picks a moment between the deployment's creation and its end (or now)
  // into the time field; the Show button goes there, so arrow keys can move it step by step.
  const slider = document.getElementById("as-of-slider");
  if (slider) {
    slider.addEventListener("input", function () {
      const from = Date.parse(slider.dataset.from);
      const to = slider.dataset.to ? Date.parse(slider.dataset.to) : Date.now();
      if (isNaN(from) || isNaN(to)) return;
      const at = new Date(from + ((to - from) * Number(slider.value)) / 100);
      document.getElementById("as-of").value = at.toISOString();
    });
  }
})();
