// LiveSocket: the dashboard's connection to /ws/dashboard/ (protocol: README, "Live dashboards: the WebSocket protocol").
// It subscribes, hands snapshots and frames to the page, and keeps the page honest about what it missed:
// a seq gap asks the server for a resync (a fresh snapshot), never a silent loss. It reconnects by itself with
// exponential backoff and jitter (so a restarted server is not hit by every screen at the same instant),
// treats 40 s without any message as a dead socket (the server sends a heartbeat every 15 s), and reports its
// state: "connecting", "live", "reconnecting" or "offline".
(function () {
  "use strict";

  const SILENCE_LIMIT_MS = 40000; // almost three missed heartbeats: the socket is dead even if TCP has not noticed
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const CLOSE_NOT_LOGGED_IN = 4401;
  const CLOSE_NOT_ALLOWED = 4403;

  class LiveSocket {
    // handlers: {snapshot(topic, data), frame(topic, type, data, frame), subscribed(topics, denied, first),
    // state(state, detail)}; first is true for the first "subscribed" of each connection.
    constructor(path, topics, handlers) {
      this.url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
      this.topics = topics;
      this.handlers = handlers;
      this.socket = null;
      this.seq = new Map(); // topic -> last seq applied
      this.resyncing = new Set(); // topics waiting for the snapshot they asked for
      this.attempt = 0;
      this.retryTimer = null;
      this.lastHeard = 0;
      this.stopped = false;
      this.state = "connecting";
      setInterval(() => this.watch(), 5000);
      window.addEventListener("online", () => this.reconnectNow());
      window.addEventListener("offline", () => this.drop("the browser is offline"));
    }

    open() {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      if (!navigator.onLine) {
        this.setState("offline", "the browser is offline");
        return;
      }
      const socket = new WebSocket(this.url);
      this.socket = socket;
      this.lastHeard = Date.now();
      socket.onopen = () => this.send({ type: "subscribe", topics: this.topics });
      socket.onmessage = (event) => {
        if (socket === this.socket) {
          this.receive(event.data);
        }
      };
      socket.onclose = (event) => {
        if (socket === this.socket) {
          this.closed(event.code);
        }
      };
    }

    send(message) {
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify(message));
      }
    }

    receive(text) {
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(text);
      } catch (error) {
        console.warn("dashboard: a message that is not JSON", error);
        return;
      }
      if (frame.type === "subscribed") {
        // Also sent when the subscriptions change later (a permission lost): only the first one means "back".
        const first = this.state !== "live";
        this.attempt = 0; // the server is back and answering: the next failure starts the backoff over
        this.setState("live", "");
        this.handlers.subscribed(frame.topics || [], frame.denied || [], first);
      } else if (frame.type === "error") {
        console.warn("dashboard: the server said", frame.error);
      } else if (frame.topic && frame.type === "snapshot") {
        this.seq.set(frame.topic, frame.seq);
        this.resyncing.delete(frame.topic);
        this.handlers.snapshot(frame.topic, frame.data);
      } else if (frame.topic) {
        this.event(frame);
      } // heartbeat and pong: hearing them is all they are for
    }

    event(frame) {
      const last = this.seq.get(frame.topic);
      if (last !== undefined && frame.seq <= last) {
        return; // already in the snapshot, or a duplicate
      }
      if (last !== undefined && frame.seq > last + 1) {
        this.resync(frame.topic);
      }
      this.seq.set(frame.topic, frame.seq);
      this.handlers.frame(frame.topic, frame.type, frame.data, frame);
    }

    // Ask for a fresh snapshot of the topic (once until it comes): after a gap, or when a page wants the
    // state a frame does not carry.
    resync(topic) {
      if (!this.resyncing.has(topic)) {
        this.resyncing.add(topic);
        this.send({ type: "resync", topic: topic });
      }
    }

    closed(code) {
      this.socket = null;
      this.seq.clear(); // a new connection starts from fresh snapshots (and perhaps a restarted counter)
      this.resyncing.clear();
      if (code === CLOSE_NOT_LOGGED_IN) {
        this.stopped = true;
        this.setState("offline", "you are logged out: reload the page to log in again");
      } else if (code === CLOSE_NOT_ALLOWED) {
        this.stopped = true;
        this.setState("offline", "this account may not watch the dashboard");
      } else {
        this.retry();
      }
    }

    retry() {
      if (this.stopped || this.retryTimer !== null) {
        return;
      }
      if (!navigator.onLine) {
        this.setState("offline", "the browser is offline");
        return;
      }
      // Full jitter: a random delay up to the exponential bound spreads a crowd of screens out.
      const bound = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
      const delay = bound / 2 + Math.random() * (bound / 2);
      this.attempt += 1;
      this.setState("reconnecting", "attempt " + this.attempt + ", next in " + (delay / 1000).toFixed(1) + " s");
      this.retryTimer = setTimeout(() => this.open(), delay);
    }

    drop(reason) {
      const socket = this.socket;
      this.socket = null; // its late events are ignored: this object has moved on
      if (socket) {
        socket.close();
      }
      this.seq.clear();
      this.resyncing.clear();
      if (!navigator.onLine) {
        this.setState("offline", reason);
      } else {
        this.retry();
      }
    }

    reconnectNow() {
      if (this.stopped || this.socket) {
        return;
      }
      this.attempt = 0;
      this.open();
    }

    watch() {
      if (this.socket && Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
        this.drop("no message from the server for 40 s");
      }
    }

    setState(state, detail) {
      this.state = state;
      this.handlers.state(state, detail);
    }
  }

  window.LiveSocket = LiveSocket;
})();
