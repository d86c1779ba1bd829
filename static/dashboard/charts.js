// DashboardCharts: the live dashboard's uPlot charts (uPlot is vendored under static/vendor/uplot). Each
// chart shows its series over the chosen range up to now: history from /admin/dashboard/series, then one
// point more per live sample. Colours come from the admin's CSS variables, so a redraw follows its theme.
(function () {
  "use strict";
  const PALETTE = ["#2f7ed8", "#d9534f", "#3a9d5d", "#e0a030"]; // readable on the light and the dark admin
  const RECENT_SECONDS = 15 * 60; // live samples kept to replay over history that arrives after them

  // History has one list of [t, avg, min, max] per series; a chart needs one x column shared by its series.
  function align(names, series) {
    const rows = new Map();
    names.forEach((name, index) => {
      for (const [at, average] of series[name] || []) {
        if (!rows.has(at)) {
          rows.set(at, names.map(() => null));
        }
        rows.get(at)[index] = average;
      }
    });
    const xs = Array.from(rows.keys()).sort((a, b) => a - b);
    return [xs, ...names.map((_, index) => xs.map((at) => rows.get(at)[index]))];
  }

  class DashboardCharts {
    // root: the page's element (its CSS variables give the colours); config: the page's JSON configuration.
    constructor(root, config) {
      this.root = root;
      this.config = config;
      this.range = config.range;
      this.recent = [];
      this.request = 0;
      this.charts = Array.from(root.querySelectorAll("[data-chart]"), (section) => {
        const definition = config.charts[Number(section.dataset.chart)];
        return {
          definition,
          element: section.querySelector(".dashboard-plot"),
          data: [[], ...definition.series.map(() => [])],
          plot: null,
        };
      });
      const resized = new ResizeObserver(() => this.resize());
      this.charts.forEach((chart) => resized.observe(chart.element));
    }

    redraw() {
      this.charts.forEach((chart) => this.draw(chart));
    }

    resize() {
      for (const chart of this.charts) {
        if (chart.plot) {
          chart.plot.setSize({ width: Math.max(200, chart.element.clientWidth), height: this.height() });
        }
      }
    }

    height() {
      return document.body.classList.contains("dashboard-wall") ? 340 : 200;
    }

    draw(chart) {
      if (chart.plot) {
        chart.plot.destroy();
      }
      const style = getComputedStyle(this.root);
      const text = style.getPropertyValue("--body-fg").trim() || "#333";
      const grid = style.getPropertyValue("--hairline-color").trim() || "#ddd";
      const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
      const options = {
        width: Math.max(200, chart.element.clientWidth),
        height: this.height(),
        // The x axis always spans the chosen range up to now, data or not: a quiet series reads as quiet.
        scales: { x: { time: true, range: () => this.bounds(chart) } },
        series: [
          {},
          ...chart.definition.series.map((name, index) => ({
            label: chart.definition.labels[index],
            stroke: PALETTE[index % PALETTE.length],
            width: 2,
          })),
        ],
        axes: [axis, { ...axis, size: 60 }],
      };
      chart.plot = new uPlot(options, chart.data, chart.element);
    }

    bounds(chart) {
      const xs = chart.data[0];
      const end = Math.max(Date.now() / 1000, xs.length ? xs[xs.length - 1] : 0);
      return [end - this.config.ranges[this.range], end];
    }

    append(chart, sample) {
      const xs = chart.data[0];
      if (xs.length && sample.at <= xs[xs.length - 1]) {
        return; // history already has it
      }
      xs.push(sample.at);
      chart.definition.series.forEach((name, index) => {
        const value = sample.values[name];
        chart.data[index + 1].push(typeof value === "number" ? value : null);
      });
      const oldest = sample.at - this.config.ranges[this.range];
      const drop = xs.findIndex((at) => at >= oldest);
      if (drop > 0) {
        chart.data = chart.data.map((column) => column.slice(drop));
      }
    }

    // A metrics "sample" frame's data: {"at": Unix seconds, "values": {name: value}}.
    addSample(sample) {
      if (typeof sample.at !== "number" || !sample.values) {
        return;
      }
      this.recent.push(sample);
      this.recent = this.recent.filter((item) => item.at >= sample.at - RECENT_SECONDS);
      for (const chart of this.charts) {
        this.append(chart, sample);
        chart.plot.setData(chart.data);
      }
    }

    // Reads the chosen range's history, then replays the live samples that came meanwhile. Throws the
    // endpoint's reason when it refuses; a response for a range no longer chosen is dropped.
    async load(range) {
      this.range = range;
      const request = (this.request += 1);
      const names = [...new Set(this.charts.flatMap((chart) => chart.definition.series))];
      const query = new URLSearchParams([["range", range], ...names.map((name) => ["names", name])]);
      const response = await fetch(this.config.series_url + "?" + query, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        throw new Error(body.error || "HTTP " + response.status);
      }
      if (request !== this.request) {
        return;
      }
      for (const chart of this.charts) {
        chart.data = align(chart.definition.series, body.series);
        this.recent.forEach((sample) => this.append(chart, sample));
        chart.plot.setData(chart.data);
      }
    }
  }

  window.DashboardCharts = DashboardCharts;
})();
