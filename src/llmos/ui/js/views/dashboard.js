// Live overview: tiles, throughput and latency charts, resident models. Polls every 2 s.
import { get, optional } from "../api.js";
import { LineChart } from "../charts.js";
import { badge, bytes, card, count, h, notice, seconds, table } from "../dom.js";

const POLL_MS = 2000;

export function stateBadge(state) {
  const kind = { ready: "ok", loading: "warn", unloading: "warn" }[state] || "muted";
  return badge(state, kind);
}

export function residentTable(models, testid = "resident-models") {
  return table(
    [
      { label: "Model", cell: (m) => h("strong", {}, m.name) },
      { label: "State", cell: (m) => stateBadge(m.state) },
      {
        label: "Memory",
        num: true,
        cell: (m) =>
          m.measured_bytes ? `${bytes(m.measured_bytes)} (RSS)` : `${bytes(m.estimated_bytes)} (est.)`,
      },
      { label: "Running", num: true, cell: (m) => count(m.running) },
      { label: "Queued", num: true, cell: (m) => count(m.queued) },
      { label: "In flight", num: true, cell: (m) => count(m.in_flight) },
      {
        label: "Keep-alive",
        cell: (m) =>
          m.pinned ? badge("pinned", "ok") : m.expires_at ? `until ${new Date(m.expires_at * 1000).toLocaleTimeString()}` : m.keep_alive === null ? "forever" : "busy",
      },
    ],
    models,
    { empty: "No model is resident. Send a request, or load one from Models.", testid },
  );
}

export function render(root) {
  const tiles = h("div", { class: "tiles" });
  const tputCanvas = h("canvas", { class: "chart", "data-testid": "chart-throughput" });
  const latCanvas = h("canvas", { class: "chart", "data-testid": "chart-latency" });
  const residents = h("div", {});
  const error = h("div", {});
  root.append(
    h("h1", {}, "Dashboard"),
    error,
    tiles,
    h("div", { class: "two" }, card("Throughput", tputCanvas), card("Latency (last 60 s)", latCanvas)),
    card("Resident models", residents),
  );
  const tput = new LineChart(tputCanvas, { series: ["tokens/s", "requests/min"], format: (v) => v.toFixed(v < 10 ? 1 : 0) });
  const lat = new LineChart(latCanvas, {
    series: ["TTFT p50", "TTFT p95", "end-to-end p50"],
    unit: " s",
    format: (v) => v.toFixed(v < 1 ? 2 : 1),
  });
  let last = null;
  let timer = null;
  let alive = true;

  async function poll() {
    try {
      const [summary, ps, res] = await Promise.all([
        get("/api/metrics/summary"),
        get("/api/ps"),
        optional("/api/resources"),
      ]);
      if (!alive) return;
      error.replaceChildren();
      const now = Date.now();
      const tokens = summary.totals.completion_tokens;
      const reqs = summary.totals.requests;
      let tps = null;
      let rpm = null;
      if (last) {
        const dt = (now - last.t) / 1000;
        tps = Math.max(0, (tokens - last.tokens) / dt);
        rpm = Math.max(0, ((reqs - last.reqs) / dt) * 60);
      }
      last = { t: now, tokens, reqs };
      tput.push(now, [tps, rpm]);
      const r = summary.recent;
      lat.push(now, [r.ttft_s.p50, r.ttft_s.p95, r.e2e_s.p50]);
      const tile = (label, value, testid) =>
        h("div", { class: "tile", "data-testid": testid }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
      tiles.replaceChildren(
        tile("Resident models", count(ps.models.length), "tile-resident"),
        tile("Running", count(summary.running), "tile-running"),
        tile("Queued", count(summary.queued), "tile-queued"),
        tile("Requests", count(reqs), "tile-requests"),
        tile("Tokens generated", count(tokens), "tile-tokens"),
        tile("TTFT p50 (60 s)", seconds(r.ttft_s.p50), "tile-ttft"),
        res ? tile("Memory", `${bytes(res.used_bytes)} / ${bytes(res.budget.ram_bytes)}`, "tile-memory") : null,
      );
      residents.replaceChildren(residentTable(ps.models));
    } catch (e) {
      if (alive) error.replaceChildren(notice(`Could not refresh: ${e.message}`, "error"));
    }
    if (alive) timer = setTimeout(poll, POLL_MS);
  }
  poll();
  return () => {
    alive = false;
    clearTimeout(timer);
    tput.destroy();
    lat.destroy();
  };
}
