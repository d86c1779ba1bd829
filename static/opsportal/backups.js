// The "Running now" panel of the backup pages: backups, verifies, drills and restores as they run (phase,
// bytes, rate), from the dashboard socket's "backups" topic (static/dashboard/socket.js does the connection,
// reconnection and resync). The snapshot lists what runs; "progress" frames update a row, "finished" marks it
// and leaves it a minute with a link to reload the page (where the new record then shows). After a "finished"
// frame the page asks for the snapshot again: it lists what finished in the last minute as recorded (a backup's
// verification, a drill's checks), which the frame does not carry. No CDN, no library.
// Loaded in the page's head by the ModelAdmin's Media: it starts once the document is parsed.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";

  const root = document.getElementById("backups-live");
  if (!root || !window.LiveSocket) {
    return;
  }
  const KEEP_FINISHED_MS = 60000;
  const policy = root.dataset.policy || "";
  const body = root.querySelector("tbody");
  const rows = new Map(); // key -> {row, timer}

  function size(bytes) {
    if (bytes === null || bytes === undefined) {
      return "";
    }
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = Number(bytes);
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit === 0 ? value : value.toFixed(1)) + " " + units[unit];
  }

  function duration(seconds) {
    const total = Math.max(0, Math.round(Number(seconds) || 0));
    const minutes = Math.floor(total / 60);
    return (minutes ? minutes + " min " : "") + (total % 60) + " s";
  }

  function keyOf(data) {
    return data.operation + ":" + (data.backup_id === null || data.backup_id === undefined ? data.policy : data.backup_id);
  }

  function cell(row, index, text) {
    row.cells[index].textContent = text;
  }

  function rowFor(data) {
    const key = keyOf(data);
    let entry = rows.get(key);
    if (!entry) {
      const row = body.insertRow();
      for (let i = 0; i < 7; i += 1) {
        row.insertCell();
      }
      entry = { row: row, timer: null };
      rows.set(key, entry);
    }
    return entry;
  }

  function show(data) {
    if (policy && data.policy !== policy) {
      return;
    }
    const entry = rowFor(data);
    const row = entry.row;
    if (!data.status && entry.timer) {
      // Shown as over, yet it reports progress (its verify, after a snapshot taken as it was written).
      clearTimeout(entry.timer);
      entry.timer = null;
      row.className = "";
      delete row.dataset.status;
    }
    row.dataset.operation = data.operation || "";
    cell(row, 0, data.operation || "");
    cell(row, 1, data.policy || "");
    cell(row, 2, data.backup_id === null || data.backup_id === undefined ? "" : "#" + data.backup_id);
    cell(row, 3, data.phase || "starting");
    const done = row.cells[4];
    done.textContent = size(data.bytes || 0) + (data.total ? " of " + size(data.total) : "");
    if (data.total) {
      const bar = document.createElement("progress");
      bar.max = data.total;
      bar.value = Math.min(data.bytes || 0, data.total);
      done.append(" ", bar);
    }
    cell(row, 5, data.rate ? size(data.rate) + "/s" : "");
    cell(row, 6, data.elapsed !== undefined && data.elapsed !== null ? duration(data.elapsed) : "");
    root.hidden = false;
  }

  function finish(data) {
    if (policy && data.policy !== policy) {
      return;
    }
    show(data);
    const entry = rows.get(keyOf(data));
    const failed = data.status !== "succeeded" || data.verification === "failed";
    entry.row.className = failed ? "backups-live-failed" : "backups-live-succeeded";
    entry.row.dataset.status = failed ? "failed" : "succeeded";
    const phase = entry.row.cells[3];
    phase.textContent = outcome(data) + (data.error ? ": " + data.error : "") + " ";
    const reload = document.createElement("a");
    reload.href = location.href;
    reload.textContent = "reload";
    phase.append(reload);
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => remove(keyOf(data)), KEEP_FINISHED_MS);
  }

  function outcome(data) {
    if (data.status !== "succeeded") {
      return "FAILED";
    }
    if (data.operation === "drill") {
      return data.checks_total ? "passed (" + data.checks_passed + "/" + data.checks_total + " checks)" : "passed";
    }
    if (data.operation === "backup" && data.verification) {
      return { ok: "done, verified OK", failed: "done, verification FAILED" }[data.verification] || "done, not verified";
    }
    return "done";
  }

  function remove(key) {
    const entry = rows.get(key);
    if (entry) {
      clearTimeout(entry.timer);
      entry.row.remove();
      rows.delete(key);
    }
    root.hidden = rows.size === 0;
  }

  function snapshot(data) {
    // What runs now replaces the running rows; finished rows stay until their time is up.
    const running = new Set((data.running || []).map(keyOf));
    rows.forEach((entry, key) => {
      if (!entry.timer && !running.has(key)) {
        remove(key);
      }
    });
    (data.running || []).forEach(show);
    (data.finished || []).forEach(finish);
  }

  const socket = new window.LiveSocket(root.dataset.socket, ["backups"], {
    state: (state, detail) => {
      root.querySelector('[data-field="state"]').textContent = state === "live" ? "" : "(" + state + (detail ? ": " + detail : "") + ")";
    },
    subscribed: () => {},
    snapshot: (topic, data) => topic === "backups" && snapshot(data),
    frame: (topic, type, data) => {
      if (topic !== "backups") {
        return;
      }
      if (type === "progress") {
        show(data);
      } else if (type === "finished") {
        finish(data);
        socket.resync("backups"); // how it ended, as recorded
      }
    },
  });
  socket.open();
});
