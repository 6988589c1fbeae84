// Each resident model's scheduler: slots, queues per tenant, predicted vs observed wait, requests.
import { get } from "../api.js";
import { badge, card, count, h, notice, seconds, table } from "../dom.js";

function stat(label, value) {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

function modelCard(s) {
  const q = s.queue_model;
  const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(0)}%`);
  return card(
    s.model,
    h(
      "div",
      { class: "stats" },
      stat("Policy", s.policy),
      stat("Slots", `${s.running} / ${s.slots} busy`),
      stat("Queued", count(s.queued)),
      stat("Utilization ρ", pct(q.utilization)),
      stat("Arrivals", `${q.arrival_rate.toFixed(2)}/s`),
      stat("Mean service", seconds(q.service_mean_s)),
      stat("Predicted wait (load-aware)", seconds(q.predicted_wait_s)),
      stat("Predicted wait (M/M/c)", seconds(q.predicted_wait_mmc_s)),
      stat("Predicted wait (M/G/1)", seconds(q.predicted_wait_mg1_s)),
      stat("Observed wait (mean)", seconds(q.observed_wait_mean_s)),
      stat("Observed wait (p95)", seconds(q.observed_wait_p95_s)),
      stat("Completed", count(s.completed)),
      stat("Preemptions", count(s.preemptions)),
      stat("Rejected", count(s.rejected)),
      stat("Accepting", s.accepting ? "yes" : "no (draining)"),
    ),
    h("h3", {}, "Tenants"),
    table(
      [
        { label: "Tenant", cell: (t) => t.tenant },
        { label: "Queued", num: true, cell: (t) => count(t.queued) },
        { label: "Running", num: true, cell: (t) => count(t.running) },
        { label: "Prompt tokens", num: true, cell: (t) => count(t.prompt_tokens) },
        { label: "Output tokens", num: true, cell: (t) => count(t.output_tokens) },
      ],
      s.tenants,
      { empty: "No tenant has used this model yet." },
    ),
    h("h3", {}, "Requests"),
    table(
      [
        { label: "Request", cell: (r) => h("code", {}, r.request_id) },
        { label: "Tenant", cell: (r) => r.tenant },
        { label: "Phase", cell: (r) => badge(r.phase, r.phase === "running" ? "ok" : "warn") },
        { label: "Urgency", num: true, cell: (r) => r.urgency },
        { label: "Position", num: true, cell: (r) => (r.position === null ? "–" : r.position) },
        { label: "Est. start", num: true, cell: (r) => seconds(r.estimated_start_s) },
        { label: "Waited", num: true, cell: (r) => seconds(r.waited_s) },
        { label: "Tokens", num: true, cell: (r) => count(r.completion_tokens) },
      ],
      s.requests,
      { empty: "Idle: no request is queued or running." },
    ),
  );
}

export function render(root) {
  const body = h("div", {});
  root.append(h("h1", {}, "Scheduler"), body);
  let alive = true;
  async function refresh() {
    try {
      const data = await get("/api/scheduler");
      if (!alive) return;
      body.replaceChildren(
        ...(data.models.length
          ? data.models.map(modelCard)
          : [notice("No model is resident, so no scheduler is running.", "info", "scheduler-empty")]),
      );
    } catch (e) {
      if (alive) body.replaceChildren(notice(`Could not read the scheduler: ${e.message}`, "error"));
    }
  }
  refresh();
  const timer = setInterval(refresh, 2000);
  return () => {
    alive = false;
    clearInterval(timer);
  };
}
