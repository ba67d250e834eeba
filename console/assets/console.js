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

  // The audit page appends each new event that passes its filters.
  const followed = document.querySelector("table[data-follow] tbody");
  function follow(event) {
    const table = followed.parentElement;
    if (event.stream.indexOf(table.dataset.stream) === -1) return;
    if (event.event_type.indexOf(table.dataset.type) === -1) return;
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
    // One connection for the page's life; EventSource reconnects with Last-Event-ID.
    const feed = new EventSource("/ui/live");
    const indicator = document.getElementById("live-status");
    let opens = 0;
    feed.onopen = function () {
      opens += 1;
      main.dataset.feedOpens = String(opens);
      if (indicator) indicator.textContent = "● live";
    };
    feed.onerror = function () {
      if (indicator) indicator.textContent = "reconnecting…";
    };
    feed.onmessage = function (message) {
      if (message.lastEventId) seen = message.lastEventId;
      if (followed) {
        try { follow(JSON.parse(message.data)); } catch (_) { /* not an event */ }
      }
      if (document.querySelector("[data-live]")) refresh();
    };
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

  // The time slider picks a moment between the deployment's creation and its end (or now).
  const slider = document.getElementById("as-of-slider");
  if (slider) {
    slider.addEventListener("change", function () {
      const from = Date.parse(slider.dataset.from);
      const to = slider.dataset.to ? Date.parse(slider.dataset.to) : Date.now();
      if (isNaN(from) || isNaN(to)) return;
      const at = new Date(from + ((to - from) * Number(slider.value)) / 100);
      const field = document.getElementById("as-of");
      field.value = at.toISOString();
      field.form.submit();
    });
  }
})();
