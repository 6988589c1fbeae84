// Live overview: tiles, throughput and latency charts, resident models. Polls every 2 s.
import { get, optional } from "../api.js";
import { LineChart } from "../charts.js";
import { badge, bytes, card, count, h, notice, seconds, table } from "../dom.js";
import { clusterCard } from "./cluster.js";

const POLL_MS = 2000;

export function stateBadge(state) {
  const kind = { ready: "ok", loading: "warn", unloading: "warn" }[state] || "muted";
  return badge(state, kind);
}

export function residentTable(models, testid = "resident-models", perModel = new Map()) {
  const recent = (m) => (perModel.get(m.name) || {}).recent || null;
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
      { label: "Tokens/s (60 s)", num: true, cell: (m) => (recent(m) ? recent(m).tokens_per_s.toFixed(1) : "–") },
      { label: "TTFT p50 (60 s)", num: true, cell: (m) => seconds(recent(m) ? recent(m).ttft_s.p50 : null) },
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
  const cluster = h("div", {});
  const error = h("div", {});
  root.append(
    h("h1", {}, "Dashboard"),
    error,
    tiles,
    h("div", { class: "two" }, card("Throughput (last 5 min)", tputCanvas), card("Latency", latCanvas)),
    card("Resident models", residents),
    cluster,
  );
  const tput = new LineChart(tputCanvas, { series: ["tokens/s", "requests/min"] });
  const lat = new LineChart(latCanvas, { series: ["TTFT p50", "TTFT p95", "end-to-end p50"], unit: " s" });
  let timer = null;
  let alive = true;

  async function poll() {
    try {
      const [summary, ps, res, clu] = await Promise.all([
        get("/api/metrics/summary"),
        optional("/api/ps"),
        optional("/api/resources"),
        optional("/api/cluster"),
      ]);
      if (!alive) return;
      error.replaceChildren();
      const now = Date.now();
      const tokens = summary.totals.completion_tokens;
      const reqs = summary.totals.requests;
      const hist = summary.history.map((p) => [now + p.t * 1000, p]);
      tput.set(hist.map(([t, p]) => [t, [p.tokens_per_s, p.requests_per_min]]));
      lat.set(hist.map(([t, p]) => [t, [p.ttft_p50_s, p.ttft_p95_s, p.e2e_p50_s]]));
      const r = summary.recent;
      const tile = (label, value, testid, sub = null) =>
        h(
          "div",
          { class: "tile", "data-testid": testid },
          h("div", { class: "label" }, label),
          h("div", { class: "value" }, value),
          sub ? h("div", { class: "sub" }, sub) : null,
        );
      tiles.replaceChildren(
        ps ? tile("Resident models", count(ps.models.length), "tile-resident") : null,
        tile("Running", count(summary.running), "tile-running"),
        tile("Queued", count(summary.queued), "tile-queued"),
        tile("Generations since start", count(reqs), "tile-requests", "this server's, since it started; Usage counts every request"),
        tile("Tokens generated", count(tokens), "tile-tokens"),
        tile("TTFT p50 (60 s)", seconds(r.ttft_s.p50), "tile-ttft"),
        res ? tile("Model memory", bytes(res.used_bytes), "tile-memory", `of ${bytes(res.budget.ram_bytes)} budget`) : null,
      );
      const clusterView = clusterCard(clu);
      cluster.replaceChildren(...(clusterView ? [clusterView] : []));
      residents.replaceChildren(
        ps ? residentTable(ps.models, "resident-models", new Map(summary.models.map((m) => [m.model, m]))) : notice("Your key may not list models (it lacks models:read).", "info"),
      );
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
