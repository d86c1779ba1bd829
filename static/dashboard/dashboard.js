// The live dashboard (/admin/dashboard/): fills the page's tiles, charts (charts.js), health checks, firing
// alerts and audit tail from LiveSocket (socket.js). Plain JS, no build step. Data is written with
// textContent, never as HTML.
(function () {
  "use strict";
  const root = document.getElementById("dashboard");
  if (!root) {
    return;
  }
  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const AUDIT_ROWS = 50;
  const field = (element, name) => element.querySelector('[data-field="' + name + '"]');

  // ---------------------------------------------------------------- connection state
  function showState(state, detail) {
    root.dataset.state = state;
    field(root, "state").textContent = state;
    field(root, "detail").textContent = detail ? "— " + detail : "";
  }

  // ---------------------------------------------------------------- tiles
  const tiles = config.tiles.map((tile) => ({ ...tile, element: root.querySelector('[data-series="' + tile.name + '"]') }));

  function formatNumber(value) {
    if (Number.isInteger(value)) {
      return String(value); // counts (queue depth, clients) read as counts
    }
    const size = Math.abs(value);
    return value.toFixed(size >= 100 ? 0 : size >= 10 ? 1 : 2);
  }

  function applyValues(values) {
    for (const tile of tiles) {
      const value = values[tile.name];
      if (!tile.element || typeof value !== "number") {
        continue;
      }
      field(tile.element, "value").textContent = formatNumber(value);
      const level = tile.crit !== undefined && value >= tile.crit ? "crit" : tile.warn !== undefined && value >= tile.warn ? "warn" : "ok";
      tile.element.dataset.level = level;
    }
  }

  // ---------------------------------------------------------------- charts (charts.js)
  const charts = new DashboardCharts(root, config);
  let range = config.range;

  async function loadHistory() {
    root.classList.add("dashboard-loading");
    try {
      await charts.load(range);
      root.classList.remove("dashboard-history-failed");
    } catch (error) {
      root.classList.add("dashboard-history-failed");
      field(root, "detail").textContent = "— could not load the history: " + error.message;
    } finally {
      root.classList.remove("dashboard-loading");
    }
  }

  function pickRange(button) {
    range = button.dataset.range;
    root.querySelectorAll("[data-range]").forEach((other) => {
      other.classList.toggle("selected", other === button);
      other.setAttribute("aria-pressed", String(other === button));
    });
    loadHistory();
  }

  // ---------------------------------------------------------------- health
  const healthList = root.querySelector(".dashboard-health-tiles");
  const checks = new Map();

  function setStatusClass(element, status) {
    element.className = element.className.replace(/\bhealth-(ok|unknown|warning|critical)\b/g, "").trim();
    element.classList.add("health-" + status);
  }

  function renderHealth(overall) {
    if (overall) {
      const badge = field(root, "overall");
      badge.textContent = overall;
      setStatusClass(badge, overall);
    }
    field(root, "no-checks").hidden = checks.size > 0;
    healthList.replaceChildren(
      ...Array.from(checks.values())
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((check) => {
          const item = document.createElement("li");
          item.className = "health-tile health-" + check.status;
          item.dataset.check = check.name;
          const title = document.createElement("h3");
          title.textContent = check.name;
          const message = document.createElement("p");
          message.className = "health-message";
          message.textContent = check.message;
          const meta = document.createElement("p");
          meta.className = "health-meta";
          meta.textContent = check.status + " · " + check.latency_ms + " ms · checked " + new Date(check.checked_at).toLocaleTimeString();
          item.append(title, message, meta);
          return item;
        })
    );
  }

  // ---------------------------------------------------------------- alerts
  const alertList = root.querySelector(".dashboard-alert-list");
  const alerts = new Map();

  function renderAlerts() {
    const shown = Array.from(alerts.values()).sort((a, b) => b.started_at.localeCompare(a.started_at));
    field(root, "no-alerts").hidden = shown.length > 0;
    alertList.replaceChildren(...shown.map(alertItem));
  }

  function alertItem(alert) {
    const item = document.createElement("li");
    item.className = "dashboard-alert severity-" + alert.severity + " state-" + alert.state;
    item.dataset.alert = alert.id;
    const badge = document.createElement("span");
    badge.className = "dashboard-severity";
    badge.textContent = alert.severity;
    const summary = document.createElement("a");
    summary.href = alert.url;
    summary.textContent = alert.summary;
    const meta = document.createElement("p");
    meta.className = "dashboard-alert-meta";
    meta.textContent = alert.source + "/" + alert.key + " · " + alert.state + " · since " + new Date(alert.started_at).toLocaleString();
    item.append(badge, " ", summary, meta);
    if (config.can_acknowledge && alert.state === "firing") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "dashboard-ack";
      button.textContent = "Acknowledge";
      button.addEventListener("click", () => acknowledge(alert.id, button));
      item.append(button);
    }
    return item;
  }

  async function acknowledge(id, button) {
    button.disabled = true;
    const response = await fetch(config.acknowledge_url.replace("/0/", "/" + id + "/"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": root.dataset.csrf, Accept: "application/json" },
    }).catch((error) => ({ ok: false, json: async () => ({ error: error.message }) }));
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      alerts.set(body.alert.id, body.alert); // the "alert" frame will say the same; no need to wait for it
      renderAlerts();
    } else {
      button.disabled = false;
      button.title = body.error || "could not acknowledge";
      button.textContent = "Retry acknowledge";
    }
  }

  // ---------------------------------------------------------------- audit tail
  const auditBody = root.querySelector(".dashboard-audit tbody");
  let events = [];

  function addEvents(more) {
    const byId = new Map([...events, ...more].map((event) => [event.id, event]));
    events = Array.from(byId.values())
      .sort((a, b) => b.id - a.id)
      .slice(0, AUDIT_ROWS);
    auditBody.replaceChildren(
      ...events.map((event) => {
        const row = document.createElement("tr");
        row.dataset.event = event.id;
        for (const text of [new Date(event.at).toLocaleTimeString(), event.actor, event.action, event.object]) {
          const cell = document.createElement("td");
          cell.textContent = text || "";
          row.append(cell);
        }
        return row;
      })
    );
  }

  // ---------------------------------------------------------------- frames
  const onSnapshot = {
    metrics: (data) => applyValues(data.values || {}),
    health: (data) => {
      checks.clear();
      (data.checks || []).forEach((check) => checks.set(check.name, check));
      renderHealth(data.overall);
    },
    alerts: (data) => {
      alerts.clear();
      (data.alerts || []).forEach((alert) => alerts.set(alert.id, alert));
      renderAlerts();
    },
    audit: (data) => {
      events = [];
      addEvents(data.events || []);
    },
  };
  const onFrame = {
    "metrics/sample": (data) => {
      applyValues(data.values || {});
      charts.addSample(data);
    },
    "health/results": (data) => {
      (data.checks || []).forEach((check) => checks.set(check.name, check));
      renderHealth(data.overall);
    },
    "alerts/alert": (alert) => {
      if (alert.state === "resolved") {
        alerts.delete(alert.id);
      } else {
        alerts.set(alert.id, alert);
      }
      renderAlerts();
    },
    "audit/event": (data) => addEvents(Array.isArray(data.events) ? data.events : [data]),
  };

  const socket = new LiveSocket(config.socket_path, config.topics, {
    state: showState,
    subscribed: (topics, denied, first) => {
      // A permission withdrawn while the page is open drops its topic: its part goes, not left stale.
      root.querySelectorAll("[data-topic]").forEach((part) => (part.hidden = !topics.includes(part.dataset.topic)));
      if (first && topics.includes("metrics")) {
        loadHistory(); // after a reconnect too: fills the charts' gap while the socket was down
      }
    },
    snapshot: (topic, data) => onSnapshot[topic] && onSnapshot[topic](data),
    frame: (topic, type, data) => {
      const apply = onFrame[topic + "/" + type];
      if (apply) {
        apply(data);
      }
    },
  });

  // ---------------------------------------------------------------- layout: wall screen, theme, size
  const redrawAll = () => charts.redraw();

  root.querySelector(".dashboard-wall-toggle").addEventListener("click", (event) => {
    const wall = document.body.classList.toggle("dashboard-wall");
    event.currentTarget.setAttribute("aria-pressed", String(wall));
    const url = new URL(location.href);
    if (wall) {
      url.searchParams.set("wall", "1");
    } else {
      url.searchParams.delete("wall");
    }
    history.replaceState(null, "", url);
    redrawAll();
  });
  root.querySelectorAll("[data-range]").forEach((button) => button.addEventListener("click", () => pickRange(button)));
  // The admin's theme toggle sets data-theme on <html>; "auto" follows the system: redraw in the new colours.
  new MutationObserver(redrawAll).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawAll);
  redrawAll();
  socket.open();
})();
