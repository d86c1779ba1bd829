// The health overview refreshes itself: every data-refresh seconds it reads the stored results
// from /health/ (JSON, with the page's session) and updates the tiles. No websockets; a check
// that appears or goes away reloads the page, and so does a lost login (to reach the login page).
(function () {
  "use strict";
  const root = document.getElementById("health-overview");
  if (!root) {
    return;
  }
  const STATUSES = ["ok", "unknown", "warning", "critical"];
  const seconds = Math.max(5, Number(root.dataset.refresh) || 10);

  function setStatus(element, status) {
    STATUSES.forEach((name) => element.classList.remove("health-" + name));
    element.classList.add("health-" + status);
  }

  function ago(iso) {
    const elapsed = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    const units = [[86400, "day"], [3600, "hour"], [60, "minute"]];
    for (const [size, unit] of units) {
      if (elapsed >= size) {
        const count = Math.floor(elapsed / size);
        return count + " " + unit + (count === 1 ? "" : "s");
      }
    }
    return Math.floor(elapsed) + " seconds";
  }

  function setTime(tile, field, iso) {
    const element = tile.querySelector('[data-field="' + field + '"]');
    if (element && iso) {
      element.dateTime = iso;
      element.title = iso;
      element.textContent = ago(iso);
    }
  }

  function update(tile, check) {
    setStatus(tile, check.status);
    const badge = tile.querySelector('[data-field="status"]');
    setStatus(badge, check.status);
    badge.textContent = check.status;
    tile.querySelector('[data-field="message"]').textContent = check.message;
    tile.querySelector('[data-field="latency"]').textContent = check.latency_ms + " ms";
    tile.querySelector('[data-field="alerted"]').hidden = !check.alerted;
    setTime(tile, "since", check.since);
    setTime(tile, "checked_at", check.checked_at);
  }

  async function refresh() {
    const updated = root.querySelector('[data-field="updated"]');
    try {
      const response = await fetch(root.dataset.url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.status === 401 || response.status === 403) {
        window.location.reload();
        return;
      }
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      const report = await response.json();
      const tiles = new Map(Array.from(root.querySelectorAll("[data-check]"), (tile) => [tile.dataset.check, tile]));
      if (tiles.size !== report.checks.length || report.checks.some((check) => !tiles.has(check.name))) {
        window.location.reload();
        return;
      }
      report.checks.forEach((check) => update(tiles.get(check.name), check));
      const overall = root.querySelector('[data-field="overall"]');
      setStatus(overall, report.status);
      overall.textContent = report.status;
      root.classList.remove("health-stale");
      updated.textContent = "Refreshed at " + new Date().toLocaleTimeString() + ".";
    } catch (error) {
      root.classList.add("health-stale");
      updated.textContent = "Could not refresh (" + error.message + "); trying again in " + seconds + " s.";
    }
  }

  window.setInterval(refresh, seconds * 1000);
})();
